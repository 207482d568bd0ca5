"""Replaying a hostile page runs none of it in the dashboard.

Two hostile recordings: a page full of scripts, handlers, `javascript:` links,
a self-submitting form and a `srcdoc` frame, recorded by the real tracker; and
a forged recording sent straight to the capture API, which contains what the
tracker would never record (scripts, `<meta>` refresh, frames pointing at the
dashboard, handler attributes set by mutations). Each is replayed to its end in
a signed-in dashboard; no canary may fire, no `/canary-hit-*` request may leave
the dashboard page, and the page's visible text must still be there.
The sanitiser's rules are also checked one by one in the page.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.dashboard import Member, demo_member, play_to_end, sign_in
from tests.support import ServerProcess, gzip_b64, make_batch, wait_for

pytestmark = pytest.mark.e2e

REPLAY_FRAME = ".replayer-wrapper iframe"
CANARY = "canary-hit"


class HostileSite:
    """A tiny static site on 127.0.0.1 (another origin than the dashboard), in a thread."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self._answer()

            def _answer(self) -> None:
                site.requests.append(f"{self.command} {self.path}")
                body = site.pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def hostile_page(hm: str, key: str, site: str) -> str:
    # Every payload targets the dashboard only: on its own origin the page stays quiet, so
    # the recording is made of a working page. The guard is `origin !== site`.
    guard = f"window.origin !== '{site}'"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Hostile page</title>
<base href="{site}/based/">
<script async src="{hm}/hm.js" data-key="{key}"></script>
<script>if ({guard}) {{ top.HM_CANARY = 1; fetch('{hm}/{CANARY}-1'); }}</script>
</head><body>
<h1 id="hostile-title">Totally harmless page</h1>
<p id="hostile-text">Nothing to see here, move along.</p>
<img id="bad-img" src="{site}/missing.png" onerror="if ({guard}) {{ top.HM_CANARY = 2; fetch('{hm}/{CANARY}-2'); }}">
<a id="jslink" href="javascript:top.HM_CANARY=3;fetch('{hm}/{CANARY}-3')">a javascript: link</a>
<a id="later" href="{site}/fine">becomes hostile later</a>
<form id="f" action="/{CANARY}-4" method="post" target="sink"><input name="a" value="1"></form>
<iframe name="sink" id="sink" style="width:10px;height:10px"></iframe>
<iframe id="framed" srcdoc="&lt;p&gt;inner frame&lt;/p&gt;&lt;script&gt;if (top.origin !== '{site}') {{
  top.HM_CANARY = 5; fetch('{hm}/{CANARY}-5') }}&lt;/script&gt;"></iframe>
<button id="handler-button" onclick="top.HM_CANARY=6">click me</button>
<script>
function later() {{
  if (!window.hitmetrix || typeof window.hitmetrix.track !== 'function') return setTimeout(later, 50);
  // Mutations: handlers and javascript: URLs set after the first snapshot.
  var img = document.createElement('img');
  img.src = '{site}/missing-too.png';
  img.setAttribute('onerror', "if ({guard}) {{ top.HM_CANARY = 7; fetch('{hm}/{CANARY}-7') }}");
  document.body.appendChild(img);
  document.getElementById('later').setAttribute('href', "javascript:top.HM_CANARY=8");
  document.getElementById('hostile-text').setAttribute('onmouseover', 'top.HM_CANARY=9');
  var added = document.createElement('p');
  added.id = 'added-text';
  added.textContent = 'Added after load';
  document.body.appendChild(added);
  window.hitmetrix.track('<img src=x onerror="top.HM_CANARY=10">', {{'<b>': '<script>x<\\/script>'}});
  window.HOSTILE_READY = true;
}}
setTimeout(later, 800);
</script>
</body></html>"""


@dataclass(frozen=True)
class Env:
    server: ServerProcess
    member: Member


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("hostile") / "data"
    member = demo_member(data_dir)
    server = ServerProcess(data_dir, demo=True).start()
    yield Env(server, member)
    server.stop()


def wait_stored(env: Env, session_id: str, check: Any) -> dict:
    def stored() -> dict | None:
        r = env.server.api(f"/api/v1/projects/{env.member.project_id}/sessions/{session_id}")
        return r.json() if r.status_code == 200 and check(r.json()) else None

    return wait_for(stored, 30, 0.2, what=f"session {session_id} in the store")


def open_replay(browser: Browser, env: Env, session_id: str) -> tuple[Page, list[str], list[str]]:
    """Sign in and open the replay; returns the page, every request URL it made, its page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, env.server.url, env.member)
    page.goto(f"{env.server.url}/projects/{env.member.project_id}/sessions/{session_id}")
    page.wait_for_function("() => window.hmReplay && (window.hmReplay.ready || window.hmReplay.error)", timeout=20_000)
    assert page.evaluate("() => window.hmReplay.error") is None
    page.wait_for_function("() => window.hmReplay.loadedChunks === window.hmReplay.totalChunks", timeout=20_000)
    return page, requests, errors


def poke_replay(page: Page) -> None:
    """Do what a viewer (or a confused click) could: follow links, submit forms, hover handlers."""
    frame = page.frame_locator(REPLAY_FRAME)
    for selector in ("#jslink", "#later", "#handler-button", "#hostile-text"):
        if frame.locator(selector).count():
            frame.locator(selector).dispatch_event("click")
            frame.locator(selector).dispatch_event("mouseover")
    if frame.locator("#f").count():
        frame.locator("#f").evaluate("f => { try { f.requestSubmit() } catch (e) {} }")
    page.wait_for_timeout(500)  # anything that would fire has had its chance


def assert_nothing_ran(page: Page, requests: list[str], errors: list[str]) -> None:
    assert page.evaluate("() => window.HM_CANARY") is None
    assert page.evaluate("() => document.querySelector('.replayer-wrapper iframe').contentWindow.HM_CANARY") is None
    assert [u for u in requests if CANARY in u] == []
    assert "/sessions/" in page.url, "the dashboard page was not navigated away"
    assert errors == [], errors
    sandbox = page.locator(REPLAY_FRAME).get_attribute("sandbox")
    assert sandbox == "allow-same-origin", sandbox
    # The rebuilt DOM holds nothing active.
    active = page.evaluate(
        """() => {
          const doc = document.querySelector('.replayer-wrapper iframe').contentDocument;
          const found = [];
          for (const el of doc.querySelectorAll('*')) {
            for (const a of el.attributes) {
              const v = a.value.replace(/[\\u0000-\\u0020]+/g, '').toLowerCase();
              if (a.name.startsWith('on') || a.name === 'srcdoc' || a.name === 'http-equiv'
                  || v.startsWith('javascript:')) found.push(el.tagName + ' ' + a.name + '=' + a.value);
            }
            if (el.tagName === 'SCRIPT' || (el.tagName === 'BASE' && el.hasAttribute('href'))) found.push(el.tagName);
          }
          return found;
        }"""
    )
    assert active == [], active


def test_hostile_page_recorded_by_the_tracker_replays_inert(browser: Browser, env: Env, artifacts: Path) -> None:
    with HostileSite() as site:
        site.pages["/hostile.html"] = hostile_page(env.server.url, env.member.project_key, site.url).encode()
        context = browser.new_context(viewport={"width": 1000, "height": 700})
        page = context.new_page()
        page.goto(site.url + "/hostile.html")
        page.wait_for_function("() => window.HOSTILE_READY === true")
        session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))
        # rrweb emits mutations from a MutationObserver callback: two frames later they are out.
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        page.evaluate("() => window.hitmetrix.flush()")
        # The self-submitting form posts into the sink frame, so this page (and its recording) stays.
        page.evaluate("() => document.getElementById('f').submit()")
        wait_for(lambda: any(CANARY + "-4" in r for r in site.requests), 10, 0.05, what="the form's own post")
        page.goto("about:blank")  # pagehide: the tracker flushes the rest
        context.close()
        assert page.is_closed()

    wait_stored(
        env,
        session_id,
        lambda body: body["recording_chunks"] and any(e["type"] == "custom" for e in body["events"]),
    )
    page, requests, errors = open_replay(browser, env, session_id)
    frame = page.frame_locator(REPLAY_FRAME)
    play_to_end(page)
    expect(frame.locator("#hostile-title")).to_have_text("Totally harmless page")
    expect(frame.locator("#added-text")).to_have_text("Added after load")
    poke_replay(page)
    assert_nothing_ran(page, requests, errors)
    # Recorded strings are shown as text in the event list, never as markup.
    custom = page.locator("li.hm-ev-custom")
    expect(custom).to_contain_text('<img src=x onerror="top.HM_CANARY=10">')
    assert page.locator("#hm-events img").count() == 0
    page.screenshot(path=str(artifacts / "replay-hostile-tracker.png"))
    page.context.close()


def forged_events(hm: str, start_ms: int) -> list[dict[str, Any]]:
    """A recording no real tracker makes: everything active, in a full snapshot and in mutations."""
    page_url = "http://127.0.0.1:9/forged.html"  # port 9 is refused at once: nothing leaves the machine

    def el(node_id: int, tag: str, attrs: dict[str, Any] | None = None, *children: dict) -> dict:
        return {"type": 2, "id": node_id, "tagName": tag, "attributes": attrs or {}, "childNodes": list(children)}

    def text(node_id: int, value: str) -> dict:
        return {"type": 3, "id": node_id, "textContent": value}

    def mouse_at(x: int, y: int) -> dict:
        return {"x": x, "y": y, "id": 10, "timeOffset": 0}

    canary = f"{hm}/{CANARY}"
    head = el(
        3,
        "head",
        {},
        el(4, "meta", {"http-equiv": "refresh", "content": f"0;url={canary}-meta"}),
        el(5, "base", {"href": f"{hm}/"}),
        el(6, "SCRIPT", {"src": f"{canary}-script-src"}, text(7, f"top.HM_CANARY=1;fetch('{canary}-1')")),
        el(8, "link", {"rel": "prefetch", "href": f"/{CANARY}-prefetch"}),
        el(9, "style", {"_cssText": "body { background: url(/bg-from-css.png) }"}),
    )
    body = el(
        10,
        "body",
        {},
        el(11, "h1", {"id": "forged-title"}, text(12, "Forged recording")),
        el(13, "img", {"src": "data:image/png;base64,AAAA", "onerror": f"top.HM_CANARY=2;fetch('{canary}-2')"}),
        el(14, "a", {"id": "jslink", "href": f" JaVa\tScRiPt:top.HM_CANARY=3;fetch('{canary}-3')"}, text(15, "link")),
        el(16, "form", {"id": "f", "action": f"/{CANARY}-4", "method": "post"},
           el(17, "button", {"formaction": f"/{CANARY}-4b"}, text(18, "go"))),
        el(19, "iframe", {"srcdoc": f"<script>top.HM_CANARY=5;fetch('{canary}-5')</script>"}),
        el(20, "iframe", {"src": f"/{CANARY}-frame"}),
        el(21, "object", {"data": f"/{CANARY}-object"}),
        el(22, "embed", {"src": f"/{CANARY}-embed"}),
        el(23, "a", {"id": "datalink", "href": "data:text/html,<script>top.HM_CANARY=6</script>"}, text(24, "d")),
        el(25, "img", {"id": "rel-img", "src": "/relative-img.png"}),
        el(26, "p", {"id": "plain"}, text(27, "Plain text that stays")),
    )
    document = {"type": 0, "id": 1, "childNodes": [el(2, "html", {}, head, body)]}
    mutation = {
        "source": 0,
        "texts": [{"id": 7, "value": f"top.HM_CANARY=11;fetch('{canary}-11')"}],
        "attributes": [
            {"id": 26, "attributes": {"onclick": "top.HM_CANARY=12", "style": "background:url(/bg-from-style.png)"}},
            {"id": 14, "attributes": {"href": "javascript:top.HM_CANARY=13"}},
            {"id": 20, "attributes": {"src": f"/{CANARY}-frame-later", "srcdoc": "<script>top.HM_CANARY=14</script>"}},
            {"id": 999, "attributes": {"src": f"/{CANARY}-unknown-node"}},
        ],
        "removes": [],
        "adds": [
            {"parentId": 10, "nextId": None, "node": el(30, "img", {"src": "data:,x", "onerror": "top.HM_CANARY=15"})},
            {"parentId": 3, "nextId": None, "node": el(31, "meta", {"http-equiv": "refresh", "content": "0;url=/x"})},
            {"parentId": 10, "nextId": None, "node": el(32, "p", {"id": "added"})},
            {"parentId": 32, "nextId": None, "node": text(33, "Added by a mutation")},
        ],
    }
    return [
        {"type": 4, "timestamp": start_ms, "data": {"href": page_url, "width": 1000, "height": 700}},
        {"type": 2, "timestamp": start_ms + 5, "data": {"node": document, "initialOffset": {"left": 0, "top": 0}}},
        {"type": 3, "timestamp": start_ms + 400, "data": mutation},
        {"type": 6, "timestamp": start_ms + 500, "data": {"plugin": "rrweb/console@1", "payload": {}}},
        {"type": 3, "timestamp": start_ms + 1500, "data": {"source": 1, "positions": [mouse_at(5, 5)]}},
    ]


def test_forged_recording_replays_inert(browser: Browser, env: Env, artifacts: Path) -> None:
    now = int(time.time() * 1000)
    session_id = "forged" + secrets.token_hex(6)
    events = forged_events(env.server.url, now - 5000)
    batch = {
        "session_id": session_id,
        "anonymous_id": "anon" + session_id,
        "sent_at": now,
        "events": [
            {"type": "pageview", "ts": now - 5000, "url": "http://127.0.0.1:9/forged.html", "title": "<b>t</b>"},
            {"type": "error", "ts": now - 4000, "url": "http://127.0.0.1:9/forged.html",
             "props": {"message": "<img src=x onerror=top.HM_CANARY=16>"}},
        ],
        "recording": [
            {"seq": 0, "first_ts": now - 5000, "last_ts": now - 3500, "count": len(events), "data": gzip_b64(events)}
        ],
    }
    answer = httpx.post(
        f"{env.server.url}/api/v1/batch", params={"key": env.member.project_key}, content=json.dumps(batch), timeout=30
    )
    assert answer.status_code == 200, answer.text
    wait_stored(env, session_id, lambda body: body["recording_chunks"] and body["events"])

    page, requests, errors = open_replay(browser, env, session_id)
    frame = page.frame_locator(REPLAY_FRAME)
    play_to_end(page)
    expect(frame.locator("#forged-title")).to_have_text("Forged recording")
    expect(frame.locator("#plain")).to_have_text("Plain text that stays")
    expect(frame.locator("#added")).to_have_text("Added by a mutation")
    poke_replay(page)
    assert_nothing_ran(page, requests, errors)
    assert page.evaluate("() => document.querySelector('.replayer-wrapper iframe').contentDocument.querySelector("
                         "'meta[http-equiv]')") is None
    # A relative image resolves against the recorded page, never the dashboard: here to an origin the
    # project does not allow, so it has no src at all (test_sanitiser_rules checks the resolution).
    assert frame.locator("#rel-img").get_attribute("src") is None
    expect(page.locator("li.hm-ev-error")).to_contain_text("<img src=x onerror=top.HM_CANARY=16>")
    page.screenshot(path=str(artifacts / "replay-hostile-forged.png"))
    page.context.close()


SANITISER_CASES = """
() => {
  const el = (id, tagName, attributes, ...childNodes) => ({type: 2, id, tagName, attributes, childNodes});
  const text = (id, textContent) => ({type: 3, id, textContent});
  const deep = {type: 2, id: 5000, tagName: 'div', attributes: {}, childNodes: []};
  let cursor = deep;
  for (let i = 1; i < 20000; i++) {
    const child = {type: 2, id: 5000 + i, tagName: 'div', attributes: {onclick: 'x'}, childNodes: []};
    cursor.childNodes.push(child);
    cursor = child;
  }
  const events = [
    {type: 4, timestamp: 1, data: {href: 'https://shop.example/a/page.html'}},
    {type: 2, timestamp: 2, data: {node: {type: 0, id: 1, childNodes: [
      el(2, 'html', {},
        el(3, 'Script', {src: 'https://evil.example/x.js', type: 'text/javascript'}, text(4, 'alert(1)')),
        el(6, 'svg:script', {href: 'https://evil.example/x.js'}),
        el(7, 'a', {href: '\\u0001 jav\\tascript:alert(1)', ONCLICK: 'alert(1)', title: 'javascript: the book'}),
        el(8, 'a', {href: 'VBScript:msgbox', 'xlink:href': 'javascript:alert(1)'}),
        el(9, 'img', {src: 'data:image/png;base64,AAAA', srcset: 'small.png 1x, javascript:alert(1) 2x',
                      rr_dataURL: 'javascript:alert(1)'}),
        el(10, 'iframe', {src: 'https://evil.example/', srcdoc: '<script>alert(1)</script>', width: '10'}),
        el(11, 'meta', {'http-equiv': 'refresh', content: '0;url=https://evil.example/'}),
        el(12, 'base', {href: 'https://evil.example/', target: '_top'}),
        el(13, 'form', {action: '/post', method: 'post'}, el(14, 'button', {formaction: '/x'})),
        el(15, 'animate', {attributeName: 'href', values: 'https://ok.example/;javascript:alert(1)'}),
        el(16, 'link', {rel: 'prefetch', href: '/prefetched'}),
        el(17, 'link', {rel: 'stylesheet', href: 'css/site.css'}),
        el(24, 'link', {_cssText: 'p { color: red }'}),
        el(18, 'a', {href: '../up.html'}),
        el(19, 'a', {href: 'data:text/html,<script>alert(1)</script>'}),
        el(20, 'p', {style: 'background: url("img/bg.png"); color: red', title: 'Data: 2024'}),
        el(21, 'object', {data: 'https://evil.example/x.swf'}),
        el(22, 'bad tag<', {}),
        el(23, 'img', {src: 'data:image/svg+xml;base64,AAAA'}),
        deep,
      )
    ]}}},
    {type: 3, timestamp: 3, data: {source: 0, texts: [{id: 4, value: 'alert(2)'}, {id: 99, value: 'kept'}],
      attributes: [
        {id: 10, attributes: {src: 'https://evil.example/later', width: '20'}},
        {id: 9, attributes: {src: 'https://ok.example/b.png', onerror: 'alert(1)'}},
        {id: 7, attributes: {href: 'javascript:alert(3)'}},
        {id: 99999, attributes: {src: 'https://evil.example/unknown', alt: 'fine'}},
        {id: 16, attributes: {href: '/again'}},
      ],
      removes: [],
      adds: [
        {parentId: 3, nextId: null, node: text(30, 'alert(4)')},
        {parentId: 2, nextId: null, node: el(31, 'SCRIPT', {}, text(32, 'alert(5)'))},
        {parentId: 2, nextId: null, node: el(33, 'img', {src: 'x.png', onload: 'alert(6)'})},
      ]}},
    {type: 6, timestamp: 4, data: {plugin: 'x'}},
    {type: 99, timestamp: 5, data: {}},
    {type: 3, data: {}},
    {type: 5, timestamp: 6, data: {tag: 'ok', payload: {}}},
  ];
  const out = window.hmReplay.sanitiseEvents(events, ['https://shop.example', 'https://ok.example']);
  const byId = {};
  let outDeep = null;
  for (const stack = [out[1].data.node]; stack.length; ) {
    const n = stack.pop();
    if (n.id < 100) byId[n.id] = {tagName: n.tagName, attributes: n.attributes, textContent: n.textContent};
    if (n.id === 5000) outDeep = n;
    else stack.push(...(n.childNodes || []));
  }
  let depth = 0;
  for (let n = outDeep; n; n = n.childNodes[0]) depth += Object.keys(n.attributes).length ? 100000 : 1;
  return {types: out.map(e => e.type), byId, mutation: out[2].data, depth};
}
"""


def test_sanitiser_rules(browser: Browser, env: Env) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, env.server.url, env.member)
    batch = make_batch(events=1, chunks=1)  # any session will do: the page carries the sanitiser
    answer = httpx.post(f"{env.server.url}/api/v1/batch", params={"key": env.member.project_key}, json=batch)
    assert answer.status_code == 200, answer.text
    wait_stored(env, batch["session_id"], lambda body: body["summary"] and body["recording_chunks"])
    page.goto(f"{env.server.url}/projects/{env.member.project_id}/sessions/{batch['session_id']}")
    page.wait_for_function("() => window.hmReplay && window.hmReplay.sanitiseEvents", polling=100, timeout=15_000)
    result = page.evaluate(SANITISER_CASES)
    context.close()

    assert result["types"] == [4, 2, 3, 5], "plugin, unknown and timestamp-less events are dropped"
    n = {int(k): v for k, v in result["byId"].items()}
    assert n[3]["tagName"] == "noscript" and n[3]["attributes"] == {}, "scripts in any case become noscript"
    assert n[4]["textContent"] == ""
    assert n[6]["tagName"] == "noscript" and n[6]["attributes"] == {}, "a prefixed SVG script too"
    assert n[7]["attributes"] == {"href": "#", "title": "javascript: the book"}
    assert n[8]["attributes"] == {"href": "#", "xlink:href": "#"}
    assert n[9]["attributes"] == {
        "src": "data:image/png;base64,AAAA",
        "srcset": "https://shop.example/a/small.png 1x",
    }, "rr_dataURL that is no image is dropped; srcset candidates resolved or dropped"
    assert n[10]["attributes"] == {"width": "10"}
    assert n[11]["attributes"] == {"content": "0;url=https://evil.example/"}, "no http-equiv: the refresh is inert"
    assert n[12]["attributes"] == {}
    assert n[13]["attributes"] == {"method": "post"} and n[14]["attributes"] == {}
    assert n[15]["attributes"] == {"attributeName": "href"}
    assert n[16]["tagName"] == "hm-inert-link" and n[16]["attributes"] == {}
    assert n[17]["attributes"] == {"rel": "stylesheet", "href": "https://shop.example/a/css/site.css"}
    assert n[24]["tagName"] == "link" and n[24]["attributes"] == {"_cssText": "p { color: red }"}, "inlined CSS"
    assert n[18]["attributes"] == {"href": "https://shop.example/up.html"}
    assert n[19]["attributes"] == {"href": "#"}
    assert n[20]["attributes"] == {
        "style": 'background: url("https://shop.example/a/img/bg.png" referrer-policy(no-referrer)); color: red',
        "title": "Data: 2024",
    }, "a kept CSS URL is fetched without a Referer (Chromium ignores the page's policy for inline CSS)"
    assert n[21]["attributes"] == {}
    assert n[22]["tagName"] == "hm-invalid"
    assert n[23]["attributes"] == {"src": "data:image/svg+xml;base64,AAAA"}
    assert result["depth"] == 20000, "a 20,000-deep tree is walked (no recursion limit), every handler dropped"

    m = result["mutation"]
    assert m["texts"] == [{"id": 4, "value": ""}, {"id": 99, "value": "kept"}]
    assert m["attributes"] == [
        {"id": 10, "attributes": {"width": "20"}},
        {"id": 9, "attributes": {"src": "https://ok.example/b.png"}},
        {"id": 7, "attributes": {"href": "#"}},
        {"id": 99999, "attributes": {"alt": "fine"}},
        {"id": 16, "attributes": {}},
    ]
    added = [a["node"] for a in m["adds"]]
    assert added[0]["textContent"] == "", "text added under a script is blanked"
    assert added[1]["tagName"] == "noscript" and added[1]["childNodes"][0]["textContent"] == ""
    assert added[2]["attributes"] == {"src": "https://shop.example/a/x.png"}


ORIGIN_AND_CSS_CASES = r"""
() => {
  const el = (id, tagName, attributes, ...childNodes) => ({type: 2, id, tagName, attributes, childNodes});
  const text = (id, textContent) => ({type: 3, id, textContent});
  const events = [
    {type: 4, timestamp: 1, data: {href: 'https://shop.example/a/page.html'}},
    {type: 2, timestamp: 2, data: {node: {type: 0, id: 1, childNodes: [
      el(2, 'html', {},
        el(3, 'head', {},
          el(4, 'meta', {NAME: ' Referrer ', content: 'unsafe-url'}),
          el(5, 'meta', {name: 'description', content: 'kept'}),
          el(6, 'link', {rel: 'stylesheet preload', href: 'https://shop.example/s.css'}),
          el(7, 'link', {rel: 'Preconnect', href: 'https://shop.example/', _cssText: ''}),
          el(8, 'link', {rel: 'stylesheet', href: 'https://evil.example/s.css'}),
          el(9, 'style', {},
            text(10, '@import "https://evil.example/i.css"; p { background: \\75 rl(//evil.example/x.png) }')),
          el(11, 'style', {_cssText: '@import url(css/ok.css); .a { cursor: url(https://evil.example/c.png), auto }'}),
        ),
        el(12, 'body', {background: 'https://evil.example/bg.png'},
          el(13, 'img', {src: 'https://evil.example/i.png', srcset: 'https://evil.example/a.png 1x, b.png 2x',
                         referrerpolicy: 'unsafe-url', attributionsrc: ''}),
          el(14, 'a', {href: 'https://evil.example/page', ping: 'https://shop.example/ping'}),
          el(15, 'a', {href: 'next.html'}),
          el(16, 'video', {poster: '//evil.example/p.png', src: 'https://ok.example/v.webm'}),
          el(17, 'image', {href: '#sym', 'xlink:href': 'https://evil.example/x.svg',
                           fill: 'url(https://evil.example/g.svg#g)'}),
          el(18, 'set', {attributeName: 'href', to: 'https://ok.example/x.png'}),
          el(19, 'div', {style:
            'background-image: image-set("https://ok.example/a.png" 1x, "https://evil.example/b.png" 2x)'}),
          el(20, 'input', {type: 'image', src: 'data:text/html,x'}),
          el(21, 'div', {style: 'background: url("https://ok.example/u.png" referrer-policy(unsafe-url))'}),
        ))]}}},
    {type: 3, timestamp: 3, data: {source: 0, texts: [{id: 10, value: '@import url(https://evil.example/later.css);'}],
      attributes: [
        {id: 5, attributes: {name: 'referrer', content: 'unsafe-url'}},
        {id: 6, attributes: {rel: 'prefetch stylesheet'}},
        {id: 13, attributes: {src: 'https://ok.example/ok.png', style: {'background-image':
          'url(https://evil.example/o.png)', color: ['red', 'important'], width: false, height: {x: 1}}}},
      ], removes: [], adds: [
        {parentId: 3, nextId: null, node: el(30, 'meta', {name: 'referrer', content: 'unsafe-url'})},
        {parentId: 9, nextId: null, node: text(31, 'p { background: url(https://evil.example/added.png) }')},
      ]}},
    {type: 3, timestamp: 4, data: {source: 8, id: 9, adds: [{rule: '.r { background: url(https://evil.example/r.png) }',
      index: 0}], replaceSync: '@import "https://evil.example/x.css";'}},
    {type: 3, timestamp: 5, data: {source: 13, id: 9, index: [0],
      set: {property: 'background', value: 'url(https://ok.example/d.png)'}}},
    {type: 3, timestamp: 6, data: {source: 15, id: 1, styleIds: [1], styles: [{styleId: 1,
      rules: [{rule: '.s { background: url(https://evil.example/s.png) }', index: 0}]}]}},
    {type: 3, timestamp: 7, data: {source: 10, family: 'f', fontSource: 'url(https://evil.example/f.woff)',
      buffer: false, descriptors: {}}},
    {type: 3, timestamp: 8, data: {source: 10, family: 'g', fontSource: ['url(https://evil.example/g.woff)'],
      buffer: false, descriptors: {}}},
    {type: 3, timestamp: 9, data: {source: 10, family: 'h', fontSource: '[1,2,3]', buffer: true, descriptors: {}}},
    {type: 3, timestamp: 10, data: {source: 9, id: 13, type: 0, commands: [{property: 'drawImage',
      args: [{rr_type: 'HTMLImageElement', src: 'https://evil.example/c.png'}]}]}},
  ];
  const out = window.hmReplay.sanitiseEvents(events, ['https://shop.example', 'https://ok.example']);
  const byId = {};
  for (const stack = [out[1].data.node]; stack.length; ) {
    const n = stack.pop();
    byId[n.id] = {tagName: n.tagName, attributes: n.attributes, textContent: n.textContent};
    stack.push(...(n.childNodes || []));
  }
  return {timestamps: out.map(e => e.timestamp), byId, incremental: out.slice(2).map(e => e.data)};
}
"""
# Chromium supports CSS URL request modifiers, so every URL it would fetch from inline CSS carries this one.
NO_REF = " referrer-policy(no-referrer)"
BLOCKED = f'url("about:invalid"{NO_REF})'


def test_sanitiser_keeps_to_allowed_origins_and_sends_no_referrer(browser: Browser, env: Env) -> None:
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, env.server.url, env.member)
    batch = make_batch(events=1, chunks=1)
    answer = httpx.post(f"{env.server.url}/api/v1/batch", params={"key": env.member.project_key}, json=batch)
    assert answer.status_code == 200, answer.text
    wait_stored(env, batch["session_id"], lambda body: body["summary"] and body["recording_chunks"])
    page.goto(f"{env.server.url}/projects/{env.member.project_id}/sessions/{batch['session_id']}")
    page.wait_for_function("() => window.hmReplay && window.hmReplay.sanitiseEvents", polling=100, timeout=15_000)
    result = page.evaluate(ORIGIN_AND_CSS_CASES)
    context.close()

    assert result["timestamps"] == [1, 2, 3, 4, 5, 6, 7, 9, 10], "a font event whose source is no string is dropped"
    n = {int(k): v for k, v in result["byId"].items()}
    assert n[4] == {"tagName": "hm-inert-meta", "attributes": {}, "textContent": None}, "any referrer meta is inert"
    assert n[5]["attributes"] == {"name": "description", "content": "kept"}
    assert n[6]["attributes"] == {"rel": "stylesheet", "href": "https://shop.example/s.css"}, "hint tokens dropped"
    assert n[7]["tagName"] == "link" and n[7]["attributes"]["rel"] == "", "no preconnect even with rrweb's _cssText"
    assert n[8]["attributes"] == {"rel": "stylesheet"}, "a stylesheet of another origin is not fetched"
    assert n[10]["textContent"] == f" p {{ background: {BLOCKED} }}", "import removed, escaped url() blocked"
    assert n[11]["attributes"] == {
        "_cssText": f'@import url("https://shop.example/a/css/ok.css"{NO_REF}); .a {{ cursor: {BLOCKED}, auto }}'
    }
    assert n[12]["attributes"] == {}
    assert n[13]["attributes"] == {"srcset": "https://shop.example/a/b.png 2x"}
    assert n[14]["attributes"] == {"href": "#"}, "a link to another origin goes nowhere; no ping"
    assert n[15]["attributes"] == {"href": "https://shop.example/a/next.html"}
    assert n[16]["attributes"] == {"src": "https://ok.example/v.webm"}
    assert n[17]["attributes"] == {"href": "#sym", "fill": BLOCKED}
    assert n[18]["attributes"] == {"attributeName": "href"}, "no URL animated in"
    assert n[19]["attributes"] == {
        "style": f'background-image: image-set(url("https://ok.example/a.png"{NO_REF}) 1x, {BLOCKED} 2x)'
    }
    assert n[20]["attributes"] == {"type": "image"}
    assert n[21]["attributes"] == {"style": f'background: url("https://ok.example/u.png"{NO_REF})'}, "no unsafe-url"

    mutation, rule, declaration, adopted, font, font_bytes, canvas = result["incremental"]
    assert mutation["texts"] == [{"id": 10, "value": ""}], "a text change of a <style> is CSS too"
    assert mutation["attributes"] == [
        {"id": 5, "attributes": {"content": "unsafe-url"}},
        {"id": 6, "attributes": {"rel": "stylesheet"}},
        {
            "id": 13,
            "attributes": {
                "src": "https://ok.example/ok.png",
                "style": {"background-image": BLOCKED, "color": ["red", "important"], "width": False},
            },
        },
    ]
    assert mutation["adds"][0]["node"]["tagName"] == "hm-inert-meta"
    assert mutation["adds"][1]["node"]["textContent"] == f"p {{ background: {BLOCKED} }}"
    assert rule["adds"] == [{"rule": f".r {{ background: {BLOCKED} }}", "index": 0}] and rule["replaceSync"] == ""
    assert declaration["set"]["value"] == f'url("https://ok.example/d.png"{NO_REF})'
    assert adopted["styles"][0]["rules"] == [{"rule": f".s {{ background: {BLOCKED} }}", "index": 0}]
    assert font["fontSource"] == BLOCKED and font_bytes["fontSource"] == "[1,2,3]"
    assert canvas["commands"] == [] and "args" not in canvas
