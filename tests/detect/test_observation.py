"""Observations built from a stored batch: every field carried, props decoded on first use, bad props empty."""

from __future__ import annotations

import dataclasses
import json

from hitmetrix.detect.observation import LazyProps, Observation, observations
from hitmetrix.model import StoredBatch, StoredEvent


def batch(*events: StoredEvent) -> StoredBatch:
    return StoredBatch(
        batch_id="b1", project_id=7, received_at=5_000, session_id="hm-1", anonymous_id="anon", user_id="u9",
        ip="203.0.113.0", country="FR", asn=64500, as_org="Example Net", browser="Chrome", device_type="desktop",
        user_agent="Mozilla/5.0", events=list(events), source="middleware", ip_key="k" * 16,
        ip_net="203.0.113.0/24", crawler="googlebot:unverified",
    )


def test_every_field_comes_from_the_batch_and_the_event() -> None:
    props = json.dumps({"method": "POST", "status": 403, "ok": True, "user_key": "uk", "user_display": "a…@x.org"})
    event = StoredEvent(event_id="e1", type="request", ts=4_000, client_ts=3_990, url="/a?b=*", name="/a",
                        props=props)
    (obs,) = observations(batch(event))
    expected = Observation(
        project_id=7, ts_ms=4_000, kind="request", session_id="hm-1", anonymous_id="anon", user_id="u9",
        source="middleware", ip_key="k" * 16, ip_net="203.0.113.0/24", ip_display="203.0.113.0", country="FR",
        asn=64500, as_org="Example Net", user_agent="Mozilla/5.0", browser="Chrome", device_type="desktop",
        crawler="googlebot:unverified", url="/a?b=*", name="/a", props=json.loads(props),
    )
    assert obs == expected
    assert {f.name: getattr(obs, f.name) for f in dataclasses.fields(obs)} == {
        f.name: getattr(expected, f.name) for f in dataclasses.fields(expected)
    }
    assert (obs.method, obs.status, obs.ok, obs.user_key, obs.user_display) == ("POST", 403, True, "uk", "a…@x.org")
    assert isinstance(obs, Observation) and dataclasses.is_dataclass(obs)


def test_props_are_decoded_only_when_read_and_bad_json_reads_as_empty() -> None:
    lazy = LazyProps('{"depth": 40}')
    assert lazy._decoded is None, "nothing decoded before a detector asks"
    assert lazy.get("depth") == 40 and lazy["depth"] == 40 and dict(lazy) == {"depth": 40} and len(lazy) == 1
    broken = LazyProps("{not json")
    assert broken.get("status", 0) == 0 and dict(broken) == {} and "status" not in broken
    no_props = StoredEvent(event_id="e2", type="click", ts=1, client_ts=1)
    (obs,) = observations(batch(no_props))
    assert dict(obs.props) == {} and obs.status == 0 and obs.method == ""


def test_observations_pass_the_fields_in_the_dataclass_order() -> None:
    from hitmetrix.detect.observation import _BUILT_FIELDS

    names = tuple(f.name for f in dataclasses.fields(Observation))
    assert names[: len(_BUILT_FIELDS)] == _BUILT_FIELDS, "a field added to Observation goes after props, defaulted"
