"""The labelled scenarios: scripted attackers of every kind in issue 8 and benign edge cases, each labelled with
the rules it must raise (``expect``; none for a benign one) and those it may also raise (``allow``: a script
that walks pages without JavaScript is rightly also seen as automation).

Every scenario has addresses of its own, in /24s no other scenario uses, and accounts of its own (seeded
members by number, see ``hitmetrix.web.demo.members.seeded_members``), so each alert can be attributed to
exactly one scenario. Addresses that need a country or network come from the bundled offline geo database
(checked by the runner: ``GEO_EXPECTED``); the rest come from 198.18.0.0/15, the range set aside for benchmarks.
"""

from __future__ import annotations

import concurrent.futures
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from bench.scenarios.visitor import BROWSERS, CHROME, EDGE, FIREFOX, SAFARI_MAC, Log, Visitor, now_ms
from hitmetrix.web.demo.members import SeedMember, seeded_members

MEMBERS: dict[int, SeedMember] = {m.id: m for m in seeded_members()}
# Distributed credential stuffing: one /24 each in the networks of one real operator (the offline database names
# its organisation; it has no AS numbers).
HETZNER_NETS = ("5.9", "88.198", "78.46", "144.76", "176.9", "46.4")
GEO_EXPECTED = {  # address prefix used below → (country, organisation) the bundled database must answer
    "5.9.": ("DE", "Hetzner Online GmbH"), "88.198.": ("DE", "Hetzner Online GmbH"),
    "78.46.": ("DE", "Hetzner Online GmbH"), "144.76.": ("DE", "Hetzner Online GmbH"),
    "176.9.": ("DE", "Hetzner Online GmbH"), "46.4.": ("DE", "Hetzner Online GmbH"),
    "91.64.": ("DE", "Vodafone GmbH"), "84.128.": ("DE", "Deutsche Telekom AG"), "77.160.": ("NL", "KPN B.V."),
    "1.120.": ("AU", "Telstra Limited"), "177.1.": ("BR", "V tal"), "66.249.66.": ("US", "GOOGLE"),
}
GOOGLEBOT_ADDRESS = "66.249.66.1"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
WRONG = "Winter2026!"


@dataclass
class Context:
    """What a scenario needs: the server, the demo project's tracker key, its log and its random source."""

    base_url: str
    public_key: str
    log: Log
    rng: random.Random
    quick: bool = False

    def visitor(self, address: str, user_agent: str, **kwargs: object) -> Visitor:
        return Visitor(self.base_url, self.log, address, user_agent, public_key=self.public_key,
                       rng=random.Random(self.rng.random()), **kwargs)  # type: ignore[arg-type]


@dataclass
class Scenario:
    name: str
    kind: str  # "attack" or "benign"
    expect: tuple[str, ...]
    run: Callable[[Context], None]
    summary: str
    allow: tuple[str, ...] = ()
    quick: bool = False  # part of the fast subset (tests/integration/test_scenarios.py)
    log: Log = field(default_factory=Log)


def bench_address(block: int, host: int) -> str:
    """An address of 198.18.0.0/15 (RFC 2544 benchmarking), /24 number ``block`` (0–511)."""
    return f"198.{18 + block // 256}.{block % 256}.{host}"


def email(member_id: int) -> str:
    return MEMBERS[member_id].email


def password(member_id: int) -> str:
    return MEMBERS[member_id].password


# --- attacks -------------------------------------------------------------------------------------------


def brute_force(ctx: Context) -> None:
    with ctx.visitor(bench_address(1, 7), FIREFOX) as v:
        for i in range(12):
            v.sign_in(email(11), f"guess-{i:03d}")


def stuffing_one_source(ctx: Context) -> None:
    """A leaked list replayed from one address: 15 accounts, one wrong password each, fast."""
    with ctx.visitor(bench_address(2, 9), CHROME) as v:
        for member_id in range(120, 135):
            v.sign_in(email(member_id), f"leaked-{member_id}")


def stuffing_distributed(ctx: Context) -> None:
    """24 addresses of one operator (Hetzner), each in its own /24, each trying one account once, at once."""

    def attempt(i: int, member_id: int) -> None:
        prefix = HETZNER_NETS[i % len(HETZNER_NETS)]
        with ctx.visitor(f"{prefix}.{200 + i}.{10 + i}", BROWSERS[i % len(BROWSERS)]) as v:
            v.sign_in(email(member_id), f"leaked-{member_id}")

    # A botnet's nodes try in parallel: it also keeps the attack inside the shortened stuffing window.
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for done in [pool.submit(attempt, i, m) for i, m in enumerate(range(140, 164))]:
            done.result()


def password_spraying(ctx: Context) -> None:
    """One common password against 22 accounts, one try each, paced under the (shortened) stuffing window."""
    with ctx.visitor(bench_address(3, 5), CHROME) as v:
        for member_id in range(170, 192):
            v.sign_in(email(member_id), WRONG)
            time.sleep(1.4)  # the attack's pace: fewer usernames per stuffing window than stuffing


def takeover_after_failures(ctx: Context) -> None:
    with ctx.visitor(bench_address(4, 3), FIREFOX) as v:
        for i in range(6):
            v.sign_in(email(21), f"guess-{i}")
        if not v.sign_in(email(21), password(21)):
            raise RuntimeError("the takeover's right password was refused")


def takeover_new_device_country(ctx: Context) -> None:
    """The owner signs in at home (DE, Chrome); then someone in the Netherlands on another device signs in."""
    with ctx.visitor("91.64.31.20", CHROME, js=True) as owner:
        owner.sign_in(email(31), password(31))
        owner.get("/demo/messages")
    with ctx.visitor("77.160.31.40", FIREFOX) as thief:
        thief.sign_in(email(31), password(31))
        thief.get("/demo/messages", page=False)


def takeover_impossible_travel(ctx: Context) -> None:
    """The same account (same browser) signs in from Germany, then 5 s later from Australia."""
    with ctx.visitor("91.64.41.20", CHROME, js=True) as home:
        home.sign_in(email(41), password(41))
    time.sleep(5)  # the attack's pace
    with ctx.visitor("1.120.41.30", CHROME) as away:
        away.sign_in(email(41), password(41))
        away.get("/demo/messages", page=False)


def session_hijack(ctx: Context) -> None:
    """The victim browses with its tracker cookie; a second client elsewhere replays the same hm_sid."""
    with ctx.visitor("91.64.101.20", CHROME, js=True) as victim:
        victim.sign_in(email(101), password(101))
        victim.get("/demo/members")
        stolen = victim.session_id
    with ctx.visitor("177.1.101.30", FIREFOX, session_id=stolen) as thief:
        for path in ("/demo/messages", "/demo/members/5", "/demo/account/export"):
            thief.get(path, page=False)


def scraping(ctx: Context) -> None:
    """Walks the member profiles by id, fast, with a browser user agent and no JavaScript."""
    with ctx.visitor(bench_address(5, 8), CHROME) as v:
        for member_id in range(1, 41 if not ctx.quick else 36):
            v.get(f"/demo/members/{member_id}")


def bulk_export(ctx: Context) -> None:
    """Stolen credentials of several accounts, each signed in and exported from one address."""
    with ctx.visitor(bench_address(6, 4), CHROME) as v:
        for member_id in (111, 112, 113):
            v.sign_in(email(member_id), password(member_id))
            v.get("/demo/account/export")
            v.sign_out()


def probing_errors(ctx: Context) -> None:
    with ctx.visitor(bench_address(7, 6), CHROME) as v:
        for i in range(14):
            v.get(f"/demo/page-{i}.html")


def probing_sensitive(ctx: Context) -> None:
    with ctx.visitor(bench_address(8, 6), CHROME) as v:
        for path in ("/demo/.env", "/demo/.git/config", "/demo/wp-admin/", "/demo/backup.sql", "/demo/phpmyadmin/"):
            v.get(path)


def probing_injection(ctx: Context) -> None:
    with ctx.visitor(bench_address(9, 6), CHROME) as v:
        for query in ("' OR '1'='1", "1 UNION SELECT password FROM members", "<script>alert(1)</script>",
                      "../../etc/passwd", "{{7*7}}"):
            v.get("/demo/search?" + urlencode({"q": query}))


def probing_scanner(ctx: Context) -> None:
    with ctx.visitor(bench_address(10, 6), "sqlmap/1.8.5#stable (https://sqlmap.org)") as v:
        for path in ("/demo/", "/demo/search?q=1", "/demo/members/1"):
            v.get(path)


def signup_flood(ctx: Context) -> None:
    """12 accounts from one address, form posts only (no JavaScript)."""
    run = uuid.uuid4().hex[:6]
    with ctx.visitor(bench_address(11, 12), CHROME) as v:
        for i in range(12):
            v.get("/demo/signup")
            v.post_form("/demo/signup", {"name": f"Flood {i}", "email": f"flood{i}.{run}@mailbox.example",
                                         "password": "flood-pass-123", "age": "30", "city": "Berlin", "bio": ""})
            v.http.cookies.delete("demo_session")


def signup_ring(ctx: Context) -> None:
    """One script in one browser profile: 6 sign-ups from 6 networks, the same device and the same steps."""
    run = uuid.uuid4().hex[:6]
    for i in range(6):
        with ctx.visitor(bench_address(12 + i, 20), CHROME, js=True, device="ab12cd34ef56ab78") as v:
            ts = now_ms()
            v.get("/demo/signup", pointer_moves=0, clicks=1, clicks_without_move=1, keys=0)
            v.send_events([v.event("click", ts + 100 * k, name="input") for k in range(1, 5)])
            v.post_form("/demo/signup", {"name": f"Ring {i}", "email": f"ring{i}.{run}@mailbox.example",
                                         "password": "ring-pass-123", "age": "25", "city": "Riga", "bio": "hi"})


def signup_ring_sequence(ctx: Context) -> None:
    """One script on fresh browser profiles (a new device each time) from 6 networks: only its steps and their
    pauses repeat, event for event (page, four field clicks, submit, each 700 ms apart, then the sign-up)."""
    run = uuid.uuid4().hex[:6]
    # The script's fixed pauses sit early in a power-of-two bucket, the detector's coarse gap: 700 ms in 512–1023.
    # The last gap (submit → the server's sign-up event) also holds the request's network and server time (form,
    # password hash, insert), which reached 400+ ms under the full run's load: 1100 ms leaves it ~900 ms in 1024–2047.
    step_ms, submit_to_post_ms = 700, 1100
    for i in range(6):
        with ctx.visitor(bench_address(30 + i, 20), EDGE, js=True, device=f"{0xC0FFEE00 + i:016x}") as v:
            v.get("/demo/signup", page=False)
            page_ms = now_ms()
            url = ctx.base_url + "/demo/signup"
            events = [v.event("pageview", page_ms, url=url)]
            events += [v.event("click", page_ms + step_ms * k, name="input") for k in range(1, 5)]
            events.append(v.event("submit", page_ms + step_ms * 5, name="form"))
            time.sleep(max(0.0, (page_ms + step_ms * 5 + submit_to_post_ms - now_ms()) / 1000))  # the script's pace
            v.send_events(events)
            v.post_form("/demo/signup", {"name": f"Seq {i}", "email": f"seq{i}.{run}@mailbox.example",
                                         "password": "seq-pass-1234", "age": "27", "city": "Oslo", "bio": ""},
                        track=False)


def tool_user_agent(ctx: Context) -> None:
    with ctx.visitor(bench_address(20, 6), "python-requests/2.32.3") as v:
        for path in ("/demo/", "/demo/about.html", "/demo/members", "/demo/search?q=anna"):
            v.get(path)


def no_js_client(ctx: Context) -> None:
    """A browser-looking client that never runs the tracker, reading the site's pages (few profiles)."""
    paths = ["/demo/", "/demo/about.html", "/demo/signin", "/demo/signup", "/demo/reset"]
    paths += [f"/demo/members?page={i}" for i in range(1, 9)]
    paths += [f"/demo/search?q={word}" for word in ("anna", "berlin", "jazz", "hiking", "lisbon", "yoga")]
    paths += [f"/demo/members/{member_id}" for member_id in (17, 230, 92)]
    with ctx.visitor(bench_address(21, 6), SAFARI_MAC) as v:
        for path in paths:
            v.get(path)


def fake_crawler(ctx: Context) -> None:
    """Claims to be Googlebot from an address Google's DNS does not name."""
    with ctx.visitor(bench_address(22, 6), GOOGLEBOT) as v:
        for path in ("/demo/", "/demo/members", "/demo/about.html"):
            v.get(path)


def headless_signup(ctx: Context) -> None:
    """A headless browser's tracker reports webdriver and headless hints while it signs up."""
    with ctx.visitor(bench_address(23, 6), CHROME.replace("Chrome/", "HeadlessChrome/"), js=True) as v:
        v.get("/demo/signup", webdriver=True, headless=["HeadlessChrome", "no-plugins"], pointer_moves=0,
              key_interval_ms={"median": 1, "mad": 0, "min": 0})
        v.post_form("/demo/signup", {"name": "Bot", "email": f"bot.{uuid.uuid4().hex[:6]}@mailbox.example",
                                     "password": "bot-pass-1234", "age": "22", "city": "", "bio": ""})


# --- benign ------------------------------------------------------------------------------------------------


def mistyped_password(ctx: Context) -> None:
    with ctx.visitor("91.64.51.20", SAFARI_MAC, js=True) as v:
        v.get("/demo/")
        v.pause(0.5, 1.0)
        v.sign_in(email(51), password(51) + "x")
        v.pause(1.0, 2.0)
        v.sign_in(email(51), password(51).upper())
        v.pause(1.0, 2.0)
        if not v.sign_in(email(51), password(51)):
            raise RuntimeError("the right password was refused")
        v.get("/demo/messages")


def shared_nat(ctx: Context) -> None:
    """15 people behind one carrier NAT address, each on their own device and account."""
    address = "84.128.7.9"
    people = range(61, 76) if not ctx.quick else range(61, 66)
    for n, member_id in enumerate(people):
        with ctx.visitor(address, BROWSERS[n % len(BROWSERS)], js=True, device=f"{member_id:016x}") as v:
            v.get("/demo/")
            if n == 3:
                v.sign_in(email(member_id), password(member_id) + "!")
            v.sign_in(email(member_id), password(member_id))
            for other in v.rng.sample(range(1, 300), 3):
                v.get(f"/demo/members/{other}")
            v.get("/demo/search?q=" + v.rng.choice(("anna", "berlin", "jazz", "hiking")))


def traveller(ctx: Context) -> None:
    """At home in Germany, then across the border in the Netherlands on the same laptop (same browser)."""
    with ctx.visitor("91.64.91.20", CHROME, js=True, device="0091009100910091") as home:
        home.sign_in(email(91), password(91))
        home.get("/demo/members")
    with ctx.visitor("77.160.91.40", CHROME, js=True, device="0091009100910091") as away:
        away.sign_in(email(91), password(91))
        away.get("/demo/messages")
        away.get("/demo/search?q=amsterdam")


def uptime_monitor(ctx: Context) -> None:
    """Two monitors polling the home page, one naming itself, one a bare curl in a cron job."""
    robot = "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"
    with ctx.visitor(bench_address(40, 6), robot) as a, ctx.visitor(bench_address(41, 6), "curl/8.5.0") as b:
        for _ in range(25 if not ctx.quick else 12):
            a.get("/demo/")
            b.get("/demo/")
            time.sleep(1.0)  # the monitors' interval (a real one polls every minute)


def verified_crawler(ctx: Context) -> None:
    """Googlebot from Google's address (its reverse and forward DNS agree), reading listings and profiles."""
    with ctx.visitor(GOOGLEBOT_ADDRESS, GOOGLEBOT) as v:
        for page in range(1, 4):
            v.get(f"/demo/members?page={page}")
        for member_id in range(1, 41):
            v.get(f"/demo/members/{member_id}")


def power_user(ctx: Context) -> None:
    """A fast person: signed in, searching and opening profiles from the results every second or two."""
    with ctx.visitor("91.64.95.20", CHROME, js=True, typing_ms=(95.0, 30.0, 40.0)) as v:
        v.sign_in(email(95), password(95))
        pages = 28 if not ctx.quick else 14
        for i in range(pages):
            if i % 4 == 0:
                v.get("/demo/search?q=" + v.rng.choice(("anna", "berlin", "jazz", "hiking", "lisbon", "cooking")))
            else:
                v.get(f"/demo/members/{v.rng.randrange(1, 300)}")
            v.pause(0.7, 2.0)
        v.get("/demo/messages")


SCENARIOS: list[Scenario] = [
    Scenario("brute_force", "attack", ("brute_force",), brute_force,
             "12 wrong passwords for one account from one address", quick=True),
    Scenario("credential_stuffing_one_source", "attack", ("credential_stuffing",), stuffing_one_source,
             "15 accounts, one leaked password each, from one address"),
    Scenario("credential_stuffing_distributed", "attack", ("credential_stuffing",), stuffing_distributed,
             "24 addresses in 24 /24s of one operator (Hetzner), one account each"),
    Scenario("password_spraying", "attack", ("password_spraying",), password_spraying,
             "one password against 22 accounts, one every 1.4 s"),
    Scenario("takeover_after_failures", "attack", ("account_takeover",), takeover_after_failures,
             "6 wrong passwords, then the right one"),
    Scenario("takeover_new_device_country", "attack", ("account_takeover",), takeover_new_device_country,
             "owner signs in from DE on Chrome; a Firefox in NL signs in with the password"),
    Scenario("takeover_impossible_travel", "attack", ("account_takeover",), takeover_impossible_travel,
             "the same browser signs in from DE, then 5 s later from AU"),
    Scenario("session_hijack", "attack", ("session_hijack",), session_hijack,
             "the victim's hm_sid replayed by another browser in another country"),
    Scenario("scraping", "attack", ("scraping",), scraping,
             "profiles /demo/members/1…40 walked fast, no JavaScript", allow=("automation",), quick=True),
    Scenario("bulk_export", "attack", ("scraping",), bulk_export,
             "3 stolen accounts signed in and exported from one address", allow=("automation",)),
    Scenario("probing_404_burst", "attack", ("probing",), probing_errors, "14 missing pages in a few seconds",
             allow=("automation",)),
    Scenario("probing_sensitive_paths", "attack", ("probing",), probing_sensitive,
             "/.env, /.git/config, /wp-admin/, a dump and phpMyAdmin", allow=("automation",), quick=True),
    Scenario("probing_injection", "attack", ("probing",), probing_injection,
             "SQL, XSS, traversal and template payloads in the search query", allow=("automation",)),
    Scenario("probing_scanner", "attack", ("probing",), probing_scanner, "sqlmap's user agent",
             allow=("automation",)),
    Scenario("signup_flood", "attack", ("signup_ring",), signup_flood, "12 sign-ups from one address, no JavaScript",
             allow=("automation", "scraping")),
    Scenario("signup_ring", "attack", ("signup_ring",), signup_ring,
             "6 sign-ups from 6 networks by one browser profile running the same steps", allow=("automation",)),
    Scenario("signup_ring_sequence", "attack", ("signup_ring",), signup_ring_sequence,
             "6 sign-ups from 6 networks and 6 devices, one script's steps and 700 ms pauses"),
    Scenario("tool_user_agent", "attack", ("automation",), tool_user_agent, "python-requests walking 4 pages",
             quick=True),
    Scenario("no_js_client", "attack", ("automation",), no_js_client,
             "a Safari user agent reading 22 pages of 8 kinds without running JavaScript"),
    Scenario("fake_crawler", "attack", ("automation",), fake_crawler,
             "claims Googlebot from an address Google's DNS does not name"),
    Scenario("headless_signup", "attack", ("automation",), headless_signup,
             "a headless browser whose tracker reports webdriver and headless hints", allow=("signup_ring",)),
    Scenario("mistyped_password", "benign", (), mistyped_password, "two typos, then the right password",
             quick=True),
    Scenario("shared_nat", "benign", (), shared_nat, "15 people behind one carrier NAT address, one typo"),
    Scenario("traveller", "benign", (), traveller, "DE, then NL, on the same laptop"),
    Scenario("uptime_monitor", "benign", (), uptime_monitor, "UptimeRobot and a curl cron polling the home page",
             quick=True),
    Scenario("verified_crawler", "benign", (), verified_crawler, "Googlebot from a DNS-verified address, 43 pages"),
    Scenario("power_user", "benign", (), power_user, "signed in, a page every 0.7–2 s from search results",
             quick=True),
]
