"""The funnels page and its session lists on the real app and real chDB (seeded ground-truth traffic): access,
the same answer as the JSON endpoint (the previous period too), the definition kept in the URL and the form,
every conversion and drop-off linked to its sessions and each of those to its replay at the moment it entered,
a 400 page naming a broken step, and no 500 for hostile parameters."""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from markupsafe import escape
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.web.funnels_api import REPLAY_LEAD_MS
from tests.analytics import groundtruth as gt
from tests.web.analytics_fixtures import ZONE, generated_traffic, open_shop, signed_in
from tests.web.helpers import client, make_user

pytestmark = pytest.mark.anyio
RANGE = {"from": "2026-09-07", "to": "2026-11-08"}
# Home, then any blog post within an hour: the page's fields and the API's JSON definition of the same funnel.
FIELDS = {"s1_kind": "pageview", "s1_path": "/", "s2_kind": "pageview", "s2_match": "prefix", "s2_path": "/blog/",
          "window": "1", "window_unit": "hour"}
DEFINITION = {"steps": [{"kind": "pageview", "match": "exact", "path": "/"},
                        {"kind": "pageview", "match": "prefix", "path": "/blog/"}],
              "window_s": 3600, "order": "ordered", "exclusions": []}
HOSTILE = '<script>alert("x")</script>'


traffic = generated_traffic(seed=13, visitors=60)


@pytest.fixture
def shop(runtime: Runtime, traffic: gt.Traffic) -> int:
    shop = open_shop(runtime)
    make_user(runtime.meta, "outsider@example.com", 2)
    return shop


def island(page: str) -> dict:
    match = re.search(r"<div id=\"hm-funnels-data\" hidden data-json='([^']*)'>", page)
    assert match, "no data island in the page"
    return json.loads(html.unescape(match.group(1)))


def hrefs(page: str, css_class: str = "") -> list[str]:
    pattern = r'<a class="' + re.escape(css_class) + r'" href="([^"]*)"' if css_class else r'href="([^"]*)"'
    return [html.unescape(h) for h in re.findall(pattern, page)]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_signed_out_goes_to_sign_in_and_outsiders_get_404(app: Starlette, shop: int) -> None:
    async with client(app) as c:
        for path in ("funnels", "funnels/sessions"):
            answer = await c.get(f"/projects/{shop}/{path}", params=FIELDS)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    async with signed_in(app, "outsider@example.com") as c:
        for path in ("funnels", "funnels/sessions"):
            assert (await c.get(f"/projects/{shop}/{path}", params=FIELDS)).status_code == 404
        assert (await c.get("/projects/2/funnels")).status_code == 200


async def test_an_empty_builder_offers_an_example_not_an_error(app: Starlette, shop: int, traffic: gt.Traffic
                                                               ) -> None:
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/funnels", params=RANGE)
        assert page.status_code == 200, page.text
        assert "hm-funnels-data" not in page.text and 'role="alert"' not in page.text
        assert 'name="s1_kind"' in page.text and 'name="s2_kind"' in page.text
        assert 'class="is-current" aria-current="page">Funnels<' in page.text, "the shared bar's tab"
        # The example walks through the range's three most viewed pages, by visitors (ground truth's own count).
        top = [r["value"] for r in gt.overview_answer(traffic, shop, gt.dt.date(2026, 9, 7),
                                                      gt.dt.date(2026, 11, 8), ZONE)["top_pages"][:3]]
        example = re.search(r'id="hm-fn-example" href="([^"]*)"', page.text)
        assert example, "no example funnel"
        url = html.unescape(example.group(1))
        assert [query_of(url)[f"s{i}_path"][0] for i in (1, 2, 3)] == top
        answer = await c.get(url)
        assert answer.status_code == 200 and island(answer.text)["funnel"]["steps"][0]["sessions"] > 0


async def test_the_page_shows_the_json_endpoints_answer_with_the_previous_period(app: Starlette, shop: int) -> None:
    params = {**RANGE, **FIELDS, "compare": "previous"}
    api_params = {**RANGE, "definition": json.dumps(DEFINITION, separators=(",", ":")), "compare": "previous"}
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/funnels", params=params)
        api = await c.get(f"/api/v1/projects/{shop}/funnels", params=api_params)
    assert page.status_code == 200 and api.status_code == 200, page.text
    data = island(page.text)
    assert data["funnel"] == api.json(), "the page and the endpoint must read the same query"
    steps, previous = data["funnel"]["steps"], data["funnel"]["previous"]
    assert previous["range"] == {"from": "2026-07-06", "to": "2026-09-06", "time_zone": ZONE}
    assert steps[0]["sessions"] > steps[1]["sessions"] > 0 and steps[1]["dropped"] > 0
    assert data["labels"] == ["Pageview /", "Pageview starts with /blog/"]
    rows = re.findall(r'<tr data-step="(\d)">(.*?)</tr>', page.text, re.S)
    assert [n for n, _ in rows] == ["1", "2"]
    assert f">{steps[1]['dropped']}</a>" in rows[1][1] and f"{steps[1]['conversion']}%" in rows[1][1]
    # The JSON link is the same view.
    api_link = re.search(r'class="hm-fn-api muted" href="([^"]*)"', page.text)
    assert api_link and json.loads(query_of(html.unescape(api_link.group(1)))["definition"][0]) == DEFINITION


async def test_every_drop_off_and_conversion_opens_its_sessions_each_a_click_from_its_replay(
    app: Starlette, shop: int, traffic: gt.Traffic
) -> None:
    started = {s.session_id: s.started_ms for s in traffic.sessions}
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/funnels", params={**RANGE, **FIELDS, "country": "DE"})
        steps = island(page.text)["funnel"]["steps"]
        dropped, converted = hrefs(page.text, "hm-fn-dropped"), hrefs(page.text, "hm-fn-converted")
        assert len(dropped) == 1 and len(converted) == 2
        assert query_of(dropped[0])["country"] == ["DE"] and query_of(dropped[0])["outcome"] == ["dropped"]
        for url, want in ((dropped[0], steps[1]["dropped"]), (converted[1], steps[1]["sessions"])):
            listing = await c.get(url)
            assert listing.status_code == 200, listing.text
            ids = re.findall(r'<tr data-session="([^"]*)">', listing.text)
            assert re.search(rf"<h2>{want} sessions?\s", listing.text) and len(ids) == min(want, 50)
            replays = hrefs(listing.text, "hm-fn-replay")
            assert len(replays) == len(ids)
            for sid, replay in zip(ids, replays, strict=True):
                assert urlsplit(replay).path == f"/projects/{shop}/sessions/{sid}" and "t" in query_of(replay)
            api = await c.get(f"/api/v1/projects/{shop}/funnels/sessions",
                              params={**RANGE, "country": "DE", "definition": json.dumps(DEFINITION),
                                      "step": query_of(url)["step"][0], "outcome": query_of(url)["outcome"][0]})
            listed = api.json()["sessions"]
            assert [s["session_id"] for s in listed] == ids
            for s in listed:  # a little before the session entered, on the replay's clock (from its start)
                assert s["replay_at_s"] == max(0, (s["entered_at_ms"] - REPLAY_LEAD_MS - started[s["session_id"]])
                                               // 1000)
                assert s["replay_url"].endswith(f"?t={s['replay_at_s']}")
            replay = await c.get(replays[0])
            assert replay.status_code == 200 and ids[0] in replay.text


async def test_breakdown_rows_filter_the_funnel_and_open_their_sessions(app: Starlette, shop: int) -> None:
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/funnels", params={**RANGE, **FIELDS, "breakdown": "country"})
        values = island(page.text)["funnel"]["breakdown"]["values"]
        assert values and 'selected>Country<' in page.text
        row = next(v for v in values if v["value"])
        found = re.search(rf'<tr data-value="{row["value"]}">(.*?)</tr>', page.text, re.S)
        assert found
        view = hrefs(found.group(1))[0]
        assert query_of(view)["country"] == [row["value"]] and query_of(view)["s2_path"] == ["/blog/"]
        filtered = island((await c.get(view)).text)["funnel"]
        assert [s["sessions"] for s in filtered["steps"]] == [s["sessions"] for s in row["steps"]]


async def test_the_builder_keeps_what_was_typed_and_numbers_rows_without_gaps(app: Starlette, shop: int) -> None:
    params = {**RANGE, "s1_kind": "pageview", "s1_path": "/", "s3_kind": "custom", "s3_name": "signup",
              "s3_props": "plan=pro", "s4_kind": "", "s4_path": "/ignored", "x2_kind": "click", "x2_text": "Cancel",
              "x2_from": "1", "x2_to": "2", "order": "any", "window": "30", "window_unit": "minute"}
    async with signed_in(app) as c:
        page = await c.get(f"/projects/{shop}/funnels", params=params)
    assert page.status_code == 200, page.text
    assert 'name="s2_name" data-field="name" placeholder="signup" value="signup"' in page.text
    assert '>plan=pro</textarea>' in page.text and "/ignored" not in page.text
    assert 'name="x1_text" data-field="text" placeholder="Buy now" value="Cancel"' in page.text
    assert 'name="s3_kind"' in page.text and 'name="s4_kind"' not in page.text, "one spare row after two steps"
    assert '<option value="any" selected>' in page.text and '<option value="minute" selected>' in page.text
    data = island(page.text)["funnel"]
    assert data["order"] == "any" and data["window_s"] == 1800
    assert island(page.text)["labels"] == ["Pageview /", "Event signup (plan=pro)"]


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"s1_kind": "pageview", "s1_path": "/", "s2_kind": "pageview", "s2_match": "regex", "s2_path": "("},
         "s2_path", "Step 2: path is not a regular expression re2 accepts"),
        ({"s1_kind": "pageview", "s1_path": "/", "s2_kind": "teleport"}, "s2_kind", "Step 2: kind must be one of"),
        ({"s1_kind": "pageview", "s1_path": "/", "s2_kind": "custom"}, "s2_name", "Step 2: name is required"),
        ({"s1_kind": "pageview", "s1_path": "/", "s2_kind": "custom", "s2_name": "x", "s2_props": "plan"},
         "s2_props", "each property filter is a line key=value"),
        ({"s1_kind": "pageview", "s1_path": "/"}, "s1_kind", "steps must be a list of 2 to 10 steps"),
        ({**FIELDS, "window": "0"}, "window", "window must be a whole number"),
        ({**FIELDS, "window": "91", "window_unit": "day"}, "window", "Conversion window: window_s must be"),
        ({**FIELDS, "window_unit": "fortnight"}, "window_unit", "window_unit must be one of"),
        ({**FIELDS, "breakdown": "shoe_size"}, "breakdown", "breakdown must be one of"),
        ({**FIELDS, "order": "sideways"}, "order", "order must be one of"),
        ({**FIELDS, "x1_kind": "click", "x1_text": "No", "x1_from": "2", "x1_to": "1"}, "x1_to",
         "Exclusion 1: to_step must come after from_step"),
        ({**FIELDS, "s2_path": "x" * 501}, "s2_path", "Step 2: path must be text of at most 500"),
        ({**FIELDS, "from": "2026-13-01"}, "from", "from must be a date"),
    ],
)
async def test_a_broken_step_is_a_400_page_that_names_it(
    app: Starlette, shop: int, params: dict[str, str], field: str, message: str
) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/projects/{shop}/funnels", params=params)
    assert answer.status_code == 400, answer.text
    assert "text/html" in answer.headers["content-type"]
    alert = re.search(r'role="alert"><strong>Bad request:</strong> ([^<]*)</div>', answer.text)
    assert alert and html.unescape(alert.group(1)).startswith(message), alert and alert.group(1)
    assert "hm-funnels-data" not in answer.text
    if field.startswith(("s", "x", "window", "order", "breakdown")) and field != "from":
        assert re.search(rf'name="{field}" aria-invalid="true"', answer.text), f"{field} is not marked"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"step": "3"}, "step must be from 1 to 2"),
        ({"step": "1", "outcome": "dropped"}, "nobody drops off before step 1"),
        ({"outcome": "lost"}, "outcome must be one of"),
        ({"offset": "-1"}, "offset must be a whole number"),
    ],
)
async def test_a_bad_session_list_is_a_400_page(app: Starlette, shop: int, params: dict[str, str], message: str
                                                ) -> None:
    async with signed_in(app) as c:
        answer = await c.get(f"/projects/{shop}/funnels/sessions", params={**RANGE, **FIELDS, **params})
    assert answer.status_code == 400 and message in html.unescape(answer.text), answer.text
    async with signed_in(app) as c:
        empty = await c.get(f"/projects/{shop}/funnels/sessions", params=RANGE)
    assert empty.status_code == 400 and "the funnel has no steps" in empty.text


ODD = ["'", "\\", "{p1:String}", "a\x00b", HOSTILE, gt.ODD, "x" * 3000, "9" * 30, "-1"]
STEP_NAMES = [f"s2_{f}" for f in ("kind", "match", "path", "selector", "text", "name", "props")]
OTHER_NAMES = ["x1_kind", "x1_from", "x1_to", "order", "window", "window_unit", "breakdown", "compare", "country",
               "browser", "url", "prop_key", "step", "outcome", "offset"]


async def test_hostile_parameters_are_a_page_or_a_400_never_a_500(app: Starlette, shop: int) -> None:
    statuses: set[int] = set()
    async with signed_in(app) as c:
        for name in STEP_NAMES + OTHER_NAMES:
            base = {**RANGE, **FIELDS}
            if name.startswith("x1_") and name != "x1_kind":
                base.update(x1_kind="click", x1_text="No")
            for value in ODD:
                for path in ("funnels", "funnels/sessions"):
                    answer = await c.get(f"/projects/{shop}/{path}?" + urlencode({**base, name: value}))
                    assert answer.status_code in (200, 400), (name, value, answer.status_code)
                    assert "<script>alert" not in answer.text, (name, path)
                    statuses.add(answer.status_code)
        # A step's text is data: the hostile one is matched (by nothing) and shown back as text.
        answer = await c.get(f"/projects/{shop}/funnels", params={**RANGE, **FIELDS, "s2_path": HOSTILE})
        assert answer.status_code == 200 and f'value="{escape(HOSTILE)}"' in answer.text
        assert island(answer.text)["funnel"]["steps"][1]["sessions"] == 0
    assert statuses == {200, 400}
