"""The wire contracts: golden event samples, tags and subjects, strict job specs, the JSON schema and defaults."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from xrunner.contracts import codec, subjects
from xrunner.contracts import events as ev
from xrunner.contracts.spec import ArtifactSpec, JobSpec, ProcessWorkload, Resources, RetryPolicy

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "events"
GOLDEN_FILES = sorted(GOLDEN.glob("*.json"))
TYPES_BY_TAG = {ev.tag_of(t): t for t in ev.ALL_EVENT_TYPES}
TAG = re.compile(r"^(?P<aggregate>[a-z]+)\.(?P<name>[a-z]+(?:_[a-z]+)*)\.v(?P<version>[1-9][0-9]*)$")
AT = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
MINIMAL = {"workload": {"kind": "process", "argv": ["true"]}}


def golden_tag(path: Path) -> str:
    """`job.submitted.v1` for both `job.submitted.v1.json` and `job.submitted.v1.docker.json`."""
    return ".".join(path.name.split(".")[:3])


def encoded_defaults(struct_type: type[msgspec.Struct]) -> dict[str, Any]:
    """The JSON value of every field of `struct_type` that has a default."""
    defaults: dict[str, Any] = {}
    for field in msgspec.structs.fields(struct_type):
        if field.default is not msgspec.NODEFAULT:
            defaults[field.encode_name] = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            defaults[field.encode_name] = field.default_factory()
    return json.loads(codec.encode(defaults))


def spec_bytes(**overrides: Any) -> bytes:
    """A minimal valid job spec as JSON, with top-level keys replaced by `overrides`."""
    return json.dumps({**MINIMAL, **overrides}).encode()


# --- golden samples -------------------------------------------------------------------------------------------------


def test_the_golden_directory_holds_samples() -> None:
    assert len(GOLDEN_FILES) >= len(ev.ALL_EVENT_TYPES) + 1


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.name)
def test_a_golden_sample_decodes_as_its_tag_and_re_encodes_to_the_same_json(path: Path) -> None:
    """Samples are never rewritten: a field added later (with a default, as evolution requires) is the only
    difference a re-encoding may show, and it must carry its default."""
    data = path.read_bytes()
    sample = json.loads(data)
    event = codec.decode_event(data)
    assert type(event) is TYPES_BY_TAG[golden_tag(path)]
    assert json.loads(codec.encode(event)) == with_added_defaults(event, sample)


def with_added_defaults(struct: msgspec.Struct, sample: dict[str, Any]) -> dict[str, Any]:
    """`sample` with the defaults of fields added since it was written, at every level of nesting."""
    added_later = {k: v for k, v in encoded_defaults(type(struct)).items() if k not in sample}
    nested = {
        f.encode_name: with_added_defaults(value, sample[f.encode_name])
        for f in msgspec.structs.fields(struct)
        if isinstance(value := getattr(struct, f.name), msgspec.Struct) and isinstance(sample.get(f.encode_name), dict)
    }
    return {**added_later, **sample, **nested}


@pytest.mark.parametrize("tag", sorted(TYPES_BY_TAG))
def test_every_event_tag_has_a_golden_sample(tag: str) -> None:
    assert (GOLDEN / f"{tag}.json").is_file(), f"add tests/golden/events/{tag}.json for the new event type"


def test_every_golden_sample_is_named_for_a_known_tag() -> None:
    assert {golden_tag(p) for p in GOLDEN_FILES} <= set(TYPES_BY_TAG)


@pytest.mark.parametrize(
    ("name", "kind"), [("job.submitted.v1.json", "process"), ("job.submitted.v1.docker.json", "docker")]
)
def test_the_submitted_samples_carry_a_full_job_spec_of_each_workload_kind(name: str, kind: str) -> None:
    event = codec.decode_event((GOLDEN / name).read_bytes())
    assert isinstance(event, ev.JobSubmitted)
    assert event.spec.workload.__struct_config__.tag == kind
    assert event.spec.resources.pool is not None and event.spec.name is not None and event.spec.labels


def test_an_unknown_event_tag_is_refused() -> None:
    data = json.loads((GOLDEN / "job.started.v1.json").read_bytes())
    with pytest.raises(msgspec.ValidationError, match=re.escape("Invalid value 'job.started.v99' - at `$.type`")):
        codec.decode_event(json.dumps({**data, "type": "job.started.v99"}).encode())


# --- tags and subjects ----------------------------------------------------------------------------------------------


def test_event_tags_are_unique() -> None:
    tags = [ev.tag_of(t) for t in ev.ALL_EVENT_TYPES]
    assert len(tags) == len(set(tags))


def test_all_event_types_lists_every_event_class_once() -> None:
    assert len(set(ev.ALL_EVENT_TYPES)) == len(ev.ALL_EVENT_TYPES)
    assert set(ev.ALL_EVENT_TYPES) == set(ev.AnyEvent.__args__)  # type: ignore[attr-defined]


@pytest.mark.parametrize("event_type", ev.ALL_EVENT_TYPES, ids=lambda t: t.__name__)
def test_an_event_tag_reads_aggregate_dot_name_dot_version(event_type: type[ev.Event]) -> None:
    assert TAG.match(ev.tag_of(event_type)), ev.tag_of(event_type)


@pytest.mark.parametrize(
    ("event_type", "token"),
    [
        (ev.JobSubmitted, "submitted"),
        (ev.JobStarted, "started"),
        (ev.JobTimedOut, "timed_out"),
        (ev.JobCancelRequested, "cancel_requested"),
        (ev.ArtifactStored, "artifact_stored"),
        (ev.ArtifactExpired, "artifact_expired"),
        (ev.TenantConfigured, "configured"),
        (ev.WorkerStarted, "started"),
        (ev.WorkerStopped, "stopped"),
    ],
)
def test_the_type_token_is_the_name_prefixed_by_the_aggregate_for_artifacts(
    event_type: type[ev.Event], token: str
) -> None:
    assert ev.type_token(event_type) == token


@pytest.mark.parametrize("event_type", ev.ALL_EVENT_TYPES, ids=lambda t: t.__name__)
def test_a_type_token_is_one_subject_token(event_type: type[ev.Event]) -> None:
    assert re.fullmatch(r"[a-z_]+", ev.type_token(event_type))


@pytest.mark.parametrize(
    ("sample", "subject"),
    [
        ("job.submitted.v1", "xr.evt.job.acme.01JPA3K7Z9Q4M2X8R5T6V0W1YB.submitted"),
        ("job.cancel_requested.v1", "xr.evt.job.acme.01JPA3K7Z9Q4M2X8R5T6V0W1YB.cancel_requested"),
        ("artifact.stored.v1", "xr.evt.job.acme.01JPA3K7Z9Q4M2X8R5T6V0W1YB.artifact_stored"),
        ("tenant.configured.v1", "xr.evt.tenant.acme.configured"),
        ("worker.started.v1", "xr.evt.worker.w-gpu-a100-03.started"),
        ("worker.stopped.v1", "xr.evt.worker.w-gpu-a100-03.stopped"),
    ],
)
def test_an_event_is_appended_on_its_documented_subject(sample: str, subject: str) -> None:
    assert subjects.event_subject(codec.decode_event((GOLDEN / f"{sample}.json").read_bytes())) == subject


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.name)
def test_every_event_subject_lies_under_the_events_stream_and_its_history(path: Path) -> None:
    event = codec.decode_event(path.read_bytes())
    subject = subjects.event_subject(event)
    assert subject.startswith(subjects.EVENTS_ALL.removesuffix(">"))
    assert len(subject.split(".")) == (6 if isinstance(event, ev.JobEvent) else 5)
    if isinstance(event, ev.JobEvent):
        assert subject.rsplit(".", 1)[0] == subjects.job_history(event.tenant, event.job_id).rsplit(".", 1)[0]


JOB_EVENTS = [e for e in (codec.decode_event(p.read_bytes()) for p in GOLDEN_FILES) if isinstance(e, ev.JobEvent)]


@pytest.mark.parametrize("event", JOB_EVENTS, ids=lambda e: ev.tag_of(type(e)))
def test_a_job_event_subject_parses_back_into_the_parts_it_was_built_from(event: ev.JobEvent) -> None:
    parsed = subjects.parse_job_event(subjects.event_subject(event))
    assert parsed == (event.tenant, event.job_id, ev.type_token(type(event)))


@pytest.mark.parametrize(
    "subject",
    ["xr.evt.tenant.acme.configured", "xr.evt.job.acme.j1", "xr.evt.job.acme.j1.queued.x", "xr.log.acme.j1", ""],
)
def test_a_subject_that_is_not_a_job_event_does_not_parse_as_one(subject: str) -> None:
    with pytest.raises(ValueError, match="not a job event subject"):
        subjects.parse_job_event(subject)


def test_an_event_without_a_subject_is_refused() -> None:
    class Orphan(ev.Event, tag="orphan.made.v1"):
        pass

    with pytest.raises(TypeError, match="no subject for Orphan"):
        subjects.event_subject(Orphan(event_id="e1", occurred_at=AT))


# --- strict job specs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (spec_bytes(colour="red"), "Object contains unknown field `colour`"),
        (spec_bytes(workload={"kind": "process", "argv": ["true"], "shell": True}), "at `$.workload`"),
        (spec_bytes(workload={"kind": "docker", "image": "alpine", "ports": [80]}), "at `$.workload`"),
        (spec_bytes(resources={"cpu": 2}), "unknown field `cpu` - at `$.resources`"),
        (spec_bytes(retry={"attempts": 3}), "unknown field `attempts` - at `$.retry`"),
        (spec_bytes(artifacts={"paths": ["out"]}), "unknown field `paths` - at `$.artifacts`"),
        (spec_bytes(workload={"kind": "process", "argv": []}), "length >= 1 - at `$.workload.argv`"),
        (spec_bytes(workload={"kind": "process"}), "missing required field `argv` - at `$.workload`"),
        (spec_bytes(workload={"kind": "shell", "argv": ["true"]}), "Invalid value 'shell' - at `$.workload.kind`"),
        (spec_bytes(resources={"pool": "a.b"}), "at `$.resources.pool`"),
        (spec_bytes(resources={"pool": "A"}), "at `$.resources.pool`"),
        (spec_bytes(resources={"pool": "x*"}), "at `$.resources.pool`"),
        (spec_bytes(resources={"pool": "gpu>"}), "at `$.resources.pool`"),
        (spec_bytes(resources={"pool": "has space"}), "at `$.resources.pool`"),
        (spec_bytes(resources={"pool": ""}), "at `$.resources.pool`"),
        (spec_bytes(resources={"pool": "-lead"}), "at `$.resources.pool`"),
        (spec_bytes(resources={"cpu_millis": -1}), "Expected `int` >= 1 - at `$.resources.cpu_millis`"),
        (spec_bytes(resources={"cpu_millis": 0}), "Expected `int` >= 1 - at `$.resources.cpu_millis`"),
        (spec_bytes(resources={"memory_mib": -256}), "at `$.resources.memory_mib`"),
        (spec_bytes(resources={"gpu": -1}), "at `$.resources.gpu`"),
        (spec_bytes(timeout_s=0), "Expected `float` > 0.0 - at `$.timeout_s`"),
        (spec_bytes(retry={"max_attempts": 0}), "at `$.retry.max_attempts`"),
        (spec_bytes(retry={"retry_on_exit_codes": [256]}), "at `$.retry.retry_on_exit_codes[0]`"),
        (spec_bytes(priority=1001), "at `$.priority`"),
        (spec_bytes(labels={"bad key": "v"}), "at `key` in `$.labels`"),
        (spec_bytes(workload={"kind": "process", "argv": ["env"], "env": {"1X": ""}}), "at `key` in `$.workload.env`"),
        (spec_bytes(workload={"kind": "docker", "image": ""}), "at `$.workload.image`"),
        (b'{"resources": {}}', "missing required field `workload`"),
    ],
)
def test_an_invalid_job_spec_is_rejected_with_the_path_of_the_fault(data: bytes, message: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        codec.decode(data, JobSpec)
    assert message in str(caught.value)


@pytest.mark.parametrize("pool", ["gpu", "gpu-a100", "a", "0", "pool_2", "x" * 63])
def test_a_subject_safe_pool_name_is_accepted(pool: str) -> None:
    assert codec.decode(spec_bytes(resources={"pool": pool}), JobSpec).resources.pool == pool


def test_a_pool_name_longer_than_a_token_allows_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"at `\$\.resources\.pool`"):
        codec.decode(spec_bytes(resources={"pool": "x" * 64}), JobSpec)


# --- json schema ----------------------------------------------------------------------------------------------------


def test_the_json_schema_defines_the_job_spec_and_every_event() -> None:
    defs = codec.json_schema()["$defs"]
    assert {"JobSpec", "ProcessWorkload", "DockerWorkload"} <= set(defs)
    assert {t.__name__ for t in ev.ALL_EVENT_TYPES} <= set(defs)


def test_the_json_schema_names_each_event_tag() -> None:
    defs = codec.json_schema()["$defs"]
    for event_type in ev.ALL_EVENT_TYPES:
        assert defs[event_type.__name__]["properties"]["type"] == {"enum": [ev.tag_of(event_type)]}


def test_the_json_schema_serialises_to_json_and_its_references_resolve() -> None:
    schema = codec.json_schema()
    text = json.dumps(schema, allow_nan=False)
    assert json.loads(text)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    refs = set(re.findall(r'"\$ref": "#/\$defs/([^"]+)"', text))
    assert refs and refs <= set(schema["$defs"])


# --- defaults -------------------------------------------------------------------------------------------------------


def test_a_minimal_job_spec_gets_the_documented_defaults() -> None:
    spec = codec.decode(spec_bytes(), JobSpec)
    assert spec == JobSpec(
        workload=ProcessWorkload(argv=["true"], env={}, cwd=None, stdin=None, network=False),
        resources=Resources(cpu_millis=1000, memory_mib=256, gpu=0, disk_mib=1024, pool=None),
        timeout_s=3600.0,
        queue_timeout_s=None,
        retry=RetryPolicy(
            max_attempts=1, backoff_s=1.0, backoff_max_s=300.0, retry_on_exit_codes=[], retry_on_worker_lost=True
        ),
        priority=0,
        labels={},
        artifacts=ArtifactSpec(globs=["out/**"]),
        name=None,
    )


def test_a_minimal_job_spec_encodes_every_default_explicitly() -> None:
    encoded = json.loads(codec.encode(codec.decode(spec_bytes(), JobSpec)))
    assert encoded["resources"] == {"cpu_millis": 1000, "memory_mib": 256, "gpu": 0, "disk_mib": 1024, "pool": None}
    assert encoded["artifacts"] == {"globs": ["out/**"]}
    assert encoded["timeout_s"] == 3600.0 and encoded["retry"]["max_attempts"] == 1


def test_two_decoded_specs_share_no_mutable_default_container() -> None:
    first, second = codec.decode(spec_bytes(), JobSpec), codec.decode(spec_bytes(), JobSpec)
    assert isinstance(first.workload, ProcessWorkload) and isinstance(second.workload, ProcessWorkload)
    pairs = [
        (first.labels, second.labels),
        (first.workload.env, second.workload.env),
        (first.retry.retry_on_exit_codes, second.retry.retry_on_exit_codes),
        (first.artifacts.globs, second.artifacts.globs),
    ]
    for mine, theirs in pairs:
        assert mine is not theirs
    first.labels["team"] = "a"
    first.artifacts.globs.append("extra/**")
    assert second.labels == {} and second.artifacts.globs == ["out/**"]
    assert codec.decode(spec_bytes(), JobSpec).artifacts.globs == ["out/**"]
