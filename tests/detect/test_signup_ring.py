"""signup_ring: sign-ups sharing a device, an address, a net or one scripted behaviour sequence."""

from __future__ import annotations

from hitmetrix.detect.detectors.signup_ring import SignupRingDetector
from hitmetrix.detect.observation import Observation
from tests.detect.replay import at, auth, browser, ip_key, only, replay, request, settings


def detector(**overrides: object) -> SignupRingDetector:
    return SignupRingDetector(settings(**overrides))


def scripted_signup(start_s: float, n: int, ip: str) -> list[Observation]:
    """One run of a sign-up script: the same steps with the same pauses, from its own session and address."""
    session = f"hm-bot-{n}"
    steps = [("pageview", 0.0), ("click", 0.3), ("click", 0.6), ("click", 0.9), ("submit", 1.2)]
    events = [browser(at(start_s + dt), kind, session=session, ip=ip) for kind, dt in steps]
    events.append(request(at(start_s + 1.3), "/signup", method="POST", route="/signup", session=session, ip=ip))
    events.append(auth(at(start_s + 1.4), "signup", f"bot{n}@mail.example", True, session=session, ip=ip))
    return events


def test_one_script_run_from_many_addresses_fires_for_its_sequence() -> None:
    events: list[Observation] = []
    for n in range(6):
        events += scripted_signup(n * 120, n, ip=f"100.{64 + n}.{n}.1")
    finding = only(replay(detector(), events))
    assert (finding.rule, finding.severity, finding.entity_kind) == ("signup_ring", "high", "device")
    assert finding.entity_value.startswith("seq:")
    assert finding.reasons == (
        "5 sessions sharing one behaviour sequence (5 steps, same order and pauses) in 1 h (threshold 5).",
    )
    assert [sid for sid, _ in finding.sessions] == [f"hm-bot-{n}" for n in range(5)]


def test_a_sequence_is_judged_when_the_tracker_batch_arrives_after_the_sign_up() -> None:
    """The server's sign-up event reaches the spool first; the tracker's last batch (and signals) after it."""
    events: list[Observation] = []
    for n in range(6):
        run = scripted_signup(n * 120, n, ip=f"100.{64 + n}.{n}.1")
        server, tracker = run[-2:], run[:-2]
        signals = browser(at(n * 120 + 1.5), "signals", session=f"hm-bot-{n}", props={"device": "feedfacecafebeef"})
        events += server + tracker + [signals]  # arrival order, not time order
    found = replay(detector(), events, by_time=False)
    assert sorted(f.reasons for f in found) == [
        ("5 sessions sharing one behaviour sequence (5 steps, same order and pauses) in 1 h (threshold 5).",),
        ("5 sign-ups sharing one device fingerprint in 1 h (threshold 5).",),
    ]
    assert all(f.numbers["signups"] == 5 for f in found)


def test_sign_ups_sharing_a_device_fingerprint_fire() -> None:
    events: list[Observation] = []
    for n in range(5):
        session = f"hm-d{n}"
        events.append(browser(at(n * 300), "signals", session=session, props={"device": "feedfacecafebeef"}))
        events.append(
            auth(at(n * 300 + 40), "signup", f"fake{n}@mail.example", True, session=session, ip=f"10.0.{n}.1")
        )
    finding = only(replay(detector(), events))
    assert finding.entity_kind == "device" and finding.entity_value.startswith("feedfacecafebeef:")
    assert finding.entity_label == "feedfacecafebeef"
    assert finding.reasons == ("5 sign-ups sharing one device fingerprint in 1 h (threshold 5).",)


def test_a_flood_from_one_address_fires_for_the_address() -> None:
    events = [auth(at(n * 30), "signup", f"flood{n}@mail.example", n % 4 != 0, ip="203.0.113.70") for n in range(10)]
    finding = only(replay(detector(), events))
    assert (finding.entity_kind, finding.entity_value, finding.severity) == ("ip", ip_key("203.0.113.70"), "medium")
    assert finding.reasons == ("10 sign-ups sharing one address in 1 h (threshold 10).",)


def test_people_signing_up_from_one_office_with_their_own_paths_are_quiet() -> None:
    events: list[Observation] = []
    for n in range(6):
        session = f"hm-person-{n}"
        t = n * 400.0
        for k in range(5 + n % 3):
            t += 1.5 + ((n * 31 + k * 17) % 23) / 2  # each person's own pauses
            events.append(browser(at(t), "click" if k % 2 else "pageview", session=session, ip="192.0.2.10"))
        events.append(browser(at(t + 1), "signals", session=session, ip="192.0.2.10", props={"device": f"{n:016x}"}))
        events.append(auth(at(t + 2), "signup", f"person{n}@example.com", True, session=session, ip="192.0.2.10"))
    assert replay(detector(), events) == []


def test_the_same_sign_ups_spread_beyond_the_window_do_not_fire() -> None:
    events: list[Observation] = []
    for n in range(8):
        events += scripted_signup(n * 1000, n, ip=f"100.{64 + n}.{n}.1")  # one every 16 min: 4 an hour
    assert replay(detector(), events) == []
