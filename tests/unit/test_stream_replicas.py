"""Every stream and bucket is declared with the replica count the settings give (XR_STREAM_REPLICAS), 1 by default."""

from xrunner.servicekit import streams
from xrunner.servicekit.settings import CommonSettings, load_settings


def test_streams_and_buckets_carry_the_replica_count_they_are_declared_with() -> None:
    assert {c.num_replicas for c in streams.stream_configs(60.0, 60.0, replicas=3)} == {3}
    assert {kv.replicas for kv in streams.kv_configs(replicas=3)} == {3}


def test_the_replica_count_comes_from_the_environment_and_defaults_to_one() -> None:
    assert load_settings(CommonSettings, "gateway", {}).stream_replicas == 1
    assert load_settings(CommonSettings, "gateway", {"XR_STREAM_REPLICAS": "3"}).stream_replicas == 3
