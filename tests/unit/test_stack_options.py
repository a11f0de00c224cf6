"""`xrunner up` out of the box: several supervised worker processes, each with its own id and port, whose slots add
up to 100 concurrent jobs; with an identity provider's settings in its environment, the services accept its tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xrunner.cli.stack import SERVICES, Stack, StackOptions, identity_settings
from xrunner.cli.supervisor import Child, Supervisor


@dataclass
class Recorder(Supervisor):
    """Records the children instead of launching them."""

    added: list[Child] = field(default_factory=list)

    def add(self, *children: Child) -> None:
        self.added.extend(children)


def planned(tmp_path: Path, **options: object) -> tuple[Stack, list[Child]]:
    recorder = Recorder()
    stack = Stack(StackOptions(data_dir=tmp_path, **options), recorder)  # type: ignore[arg-type]
    stack.start_services("nats://127.0.0.1:1", "postgresql://x@127.0.0.1:2/x")
    return stack, recorder.added


def test_the_default_stack_runs_100_jobs_at_once_over_several_worker_processes(tmp_path: Path) -> None:
    stack, children = planned(tmp_path)
    workers = [c for c in children if c.name.startswith("worker")]
    assert stack.opts.workers > 1
    assert stack.opts.workers * stack.opts.slots >= 100
    assert len(workers) == stack.opts.workers
    assert {c.name for c in children} - {c.name for c in workers} == set(SERVICES) - {"worker"}


def test_each_worker_process_has_its_own_id_and_port_and_is_supervised_in_the_services_layer(tmp_path: Path) -> None:
    stack, children = planned(tmp_path, workers=3, slots=7)
    workers = [c for c in children if c.name.startswith("worker")]
    envs = [c.launch.args[3] for c in workers]  # type: ignore[attr-defined]
    ports = [c.launch.args[2] for c in workers]  # type: ignore[attr-defined]
    assert [c.name for c in workers] == ["worker", "worker-2", "worker-3"]
    assert len({e["XR_WORKER_WORKER_ID"] for e in envs}) == 3
    assert {e["XR_WORKER_SLOTS"] for e in envs} == {"7"}
    assert {e["XR_WORKER_WARM_SHELLS"] for e in envs} == {"8"}
    assert {e["XR_WORKER_WARM_SHELLS"] for e in _worker_envs(tmp_path, warm_shells=0)} == {"0"}
    service_ports = {stack.port_of(s) for s in SERVICES if s != "worker"}
    assert len(set(ports)) == 3 and not set(ports) & service_ports
    assert {c.layer for c in workers} == {1}


def test_a_cluster_of_three_gives_every_service_all_three_servers_and_streams_at_three_replicas(
    tmp_path: Path,
) -> None:
    stack = Stack(StackOptions(data_dir=tmp_path, port=9000, cluster=3), Recorder())
    nodes = stack.nats_nodes()
    assert [n.name for n in nodes] == ["xr-n1", "xr-n2", "xr-n3"]  # stable: a restarted node rejoins by name
    ports = [p for n in nodes for p in (n.port, n.route_port, n.monitor_port)]
    assert len(set(ports)) == 9 and not set(ports) & {9000 + i for i in (0, 1, 2, 3, 4, 32, 41)}
    children = planned(tmp_path, port=9000, cluster=3)[1]
    env = children[0].launch.args[3]  # type: ignore[attr-defined]
    assert env["XR_STREAM_REPLICAS"] == "3"


def test_with_an_identity_providers_jwks_the_services_accept_its_tokens_and_the_secret_signs_only_tickets(
    tmp_path: Path,
) -> None:
    shell = {"XR_JWKS_URL": "http://idp/jwks", "XR_JWT_ISSUER": "http://idp", "XR_GATEWAY_CONSOLE_OIDC_CLIENT_ID": "c",
             "XR_TOKEN": "the shell's", "XR_GATEWAY_RATE": "not passed"}
    stack, children = planned(tmp_path, identity=identity_settings(shell))
    assert stack.opts.external_tokens
    for env in (c.launch.args[3] for c in children):  # type: ignore[attr-defined]
        assert "XR_JWT_SECRET" not in env and env["XR_TICKET_SECRET"] == stack.secret()
        assert {k: env[k] for k in shell if k in env} == {k: shell[k] for k in list(shell)[:3]}


def test_without_one_the_services_accept_the_stacks_own_tokens(tmp_path: Path) -> None:
    stack, children = planned(tmp_path, identity=identity_settings({"XR_GATEWAY_CONSOLE_OIDC_ISSUER": "http://idp"}))
    assert not stack.opts.external_tokens
    env = children[0].launch.args[3]  # type: ignore[attr-defined]
    assert env["XR_JWT_SECRET"] == stack.secret() and "XR_TICKET_SECRET" not in env
    assert env["XR_GATEWAY_CONSOLE_OIDC_ISSUER"] == "http://idp"


def _worker_envs(tmp_path: Path, **options: object) -> list[dict[str, str]]:
    return [c.launch.args[3] for c in planned(tmp_path, **options)[1] if c.name.startswith("worker")]  # type: ignore[attr-defined]
