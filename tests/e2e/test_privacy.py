"""Private data never leaves the browser, and a retried batch keeps its ids.

A corpus of hostile pages, served from another origin than the Hitmetrix server, puts a
unique canary string in every place private data hides: hidden and file inputs, value
attributes, textarea text, every input type, selects, outputs, contenteditable and
designMode editors (also inside frames), attributes of masked and blocked elements, text
and attributes set by script after load, query strings, token fragments and referrers.
Real Chromium visits it; once the visit is stored, every file of the data directory is
searched (inside gzip, zstd and ClickHouse blocks) for every canary. Positive controls
(visible text, an allowed query value, a public attribute, a frame's text) must be found,
which proves the search sees into the store and the recordings.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, FilePayload, Page, Response

from tests.datadir import decoded_views
from tests.e2e.conftest import StaticSite
from tests.support import ServerProcess, wait_for

pytestmark = pytest.mark.e2e

# Where private data hides: canary name -> what the case is. Each page writes %Name% for the canary.
SECRETS = {
    "HiddenValue": "value of an <input type=hidden>",
    "FileName": "file name picked in an <input type=file>",
    "ValueAttr": "value attribute of an input whose live value is empty",
    "TextareaDefault": "default text of a textarea whose live value is empty",
    "TextareaTyped": "text typed into a textarea",
    "DesignTyped": "text typed into a designMode iframe",
    "FrameEditableTyped": "text typed into a contenteditable inside an iframe",
    "MaskedFrameLate": "text set by script in a frame inside a masked element",
    "EditableTyped": "text typed into a contenteditable",
    "EditableTitle": "title attribute of a contenteditable",
    "MaskText": "text of a masked element",
    "MaskTitle": "title inside .hm-mask",
    "MaskAlt": "alt inside .hm-mask",
    "MaskPlaceholder": "placeholder inside .hm-mask",
    "MaskAria": "aria-label inside .hm-mask",
    "MaskDescribed": "aria-description inside .hm-mask",
    "MaskAttrValue": "value attribute inside .hm-mask",
    "MaskLabel": "option label inside .hm-mask",
    "MaskData": "data-* inside .hm-mask",
    "MaskContent": "content of a <meta> inside .hm-mask",
    "MaskHref": "link inside .hm-mask",
    "MaskAbbr": "abbr title inside .hm-mask",
    "DataMaskTitle": "title inside [data-hm-mask]",
    "DataMaskData": "data-* of a [data-hm-mask] element",
    "DataMaskText": "text inside [data-hm-mask]",
    "BlockTitle": "title of an .hm-block element",
    "BlockData": "data-* of an .hm-block element",
    "BlockAria": "aria-label of an .hm-block element",
    "BlockText": "text inside .hm-block",
    "BlockInnerTitle": "title inside .hm-block",
    "BlockInput": "input value inside .hm-block",
    "BlockDescribed": "aria-description of an .hm-block element",
    "BlockPlaceholder": "placeholder inside .hm-block",
    "BlockLabel": "option label inside .hm-block",
    "BlockContent": "content of a <meta> inside .hm-block",
    "BlockImgAlt": "alt of a blocked image",
    "BlockImgTitle": "title of a blocked image",
    "BlockMutTitle": "title changed on an .hm-block element",
    "DataBlockToken": "data-* of a [data-hm-block] element",
    "DataBlockAlt": "alt inside [data-hm-block]",
    "DataBlockText": "text inside [data-hm-block]",
    "ScriptText": "text set by script into a masked element after load",
    "ScriptHtml": "HTML set by script into a masked element after load",
    "ScriptTitle": "title in HTML set by script into a masked element",
    "MutTitle": "title attribute changed on a masked element",
    "MutAria": "aria-label changed on a masked element",
    "MutData": "data-* changed on a masked element",
    "MutValue": "setAttribute('value') on an input",
    "MutHiddenProp": "script-set value of a hidden input",
    "MutTextProp": "script-set value of a text input",
    "CheckboxValue": "value attribute of a checkbox",
    "SelectValue": "value of the chosen <option>",
    "SelectText": "text of the chosen <option>",
    "OutputInit": "text of an <output>",
    "OutputSet": "value set on an <output>",
    "EmailTyped": "text typed into type=email",
    "TelTyped": "text typed into type=tel",
    "SearchTyped": "text typed into type=search",
    "UrlTyped": "text typed into type=url",
    "TextTyped": "text typed into type=text",
    "PasswordTyped": "text typed into type=password",
    "QueryValue": "query-string value of the page URL",
    "QueryToken": "second query-string value",
    "FragToken": "token in the URL fragment",
    "FragState": "second fragment value",
    "ReferrerToken": "query-string value of the referrer",
    "SpaQuery": "query-string value of a pushState URL",
}
# Inputs that only take their own formats: canaries made of digits, a date, a colour.
FORMATTED = {
    "NumberTyped": "number typed into type=number",
    "DateTyped": "date picked in type=date",
    "ColorTyped": "colour picked in type=color",
    "RangeSet": "value of a type=range",
}
TYPED_IN_FRAMES = {"DesignTyped": 53, "FrameEditableTyped": 59}
# Must be found: they prove the search sees into events, recordings and frames.
CONTROLS = {
    "VisibleText": "a visible paragraph outside any mask",
    "UtmSource": "utm_source value (always allowed)",
    "PublicTitle": "title attribute outside masks",
    "FrameText": "text of a same-origin frame",
    "LateText": "unmasked text added by script after load",
    "EndMarker": "the last change before leaving",
}
# Must be sent by the tracker (the server may scrub it too: it does not know this site's allow-list).
WIRE_CONTROLS = {"RefAllowed": "ref value (allowed by data-allow-query)"}

MAIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Privacy corpus</title>
<script async src="%SERVER%/hm.js" data-key="%KEY%" data-api="%SITE%" data-allow-query="ref, page"></script>
</head><body>
<p id="visible" title="%PublicTitle%">%VisibleText%</p>
<form id="fields" onsubmit="return false">
  <input type="hidden" name="csrf" value="%HiddenValue%">
  <input type="file" id="file">
  <input id="value-attr" value="%ValueAttr%">
  <textarea id="textarea-default">%TextareaDefault%</textarea>
  <textarea id="textarea-typed"></textarea>
  <input type="checkbox" id="checkbox" value="%CheckboxValue%">
  <select id="select"><option value="plain">Plain</option><option value="%SelectValue%">%SelectText%</option></select>
  <output id="output">%OutputInit%</output>
  <input type="email" id="email"><input type="tel" id="tel"><input type="number" id="number" step="any">
  <input type="search" id="search"><input type="date" id="date"><input type="color" id="color">
  <input type="range" id="range" min="0" max="999999999999" step="1"><input type="url" id="url">
  <input type="text" id="text"><input type="password" id="password">
  <input type="hidden" id="hidden-prop"><input type="text" id="text-prop"><input type="text" id="mut-value">
</form>
<div contenteditable="true" id="editable" title="%EditableTitle%"></div>
<div class="hm-mask" id="masked" title="%MaskTitle%" aria-label="%MaskAria%" aria-description="%MaskDescribed%"
     data-secret="%MaskData%">
  %MaskText%
  <img alt="%MaskAlt%" width="1" height="1" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
  <input placeholder="%MaskPlaceholder%" value="%MaskAttrValue%">
  <select><option label="%MaskLabel%" value="x">x</option></select>
  <meta name="note" content="%MaskContent%">
  <a href="/profile?user=%MaskHref%">profile</a> <abbr title="%MaskAbbr%">abbr</abbr>
  <span id="masked-live">placeholder</span> <span id="masked-html"></span>
  <iframe id="masked-frame" src="/late.html"></iframe>
</div>
<section data-hm-mask data-user="%DataMaskData%" title="%DataMaskTitle%">%DataMaskText%</section>
<div class="hm-block" id="blocked" title="%BlockTitle%" data-user="%BlockData%" aria-label="%BlockAria%"
     aria-description="%BlockDescribed%" style="width: 200px; height: 40px">
  %BlockText% <span title="%BlockInnerTitle%">inner</span>
  <input value="%BlockInput%" placeholder="%BlockPlaceholder%">
  <select><option label="%BlockLabel%">x</option></select> <meta name="note" content="%BlockContent%">
</div>
<img class="hm-block" alt="%BlockImgAlt%" title="%BlockImgTitle%" width="10" height="10"
     src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<div data-hm-block data-token="%DataBlockToken%"><img alt="%DataBlockAlt%">%DataBlockText%</div>
<iframe id="editor" src="/editor.html"></iframe>
<iframe id="frame-editable" src="/editable.html"></iframe>
<iframe id="frame" src="/frame.html"></iframe>
<div id="late"></div>
<script>
  // Live values emptied before the snapshot: only the HTML still holds them.
  document.getElementById('value-attr').value = '';
  document.getElementById('textarea-default').value = '';
</script>
</body></html>
"""
# The next URL is kept in a script (never recorded), not in a link (recorded page content).
START_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Start</title>
<script async src="%SERVER%/hm.js" data-key="%KEY%" data-api="%SITE%"></script></head>
<body><p>start</p><script>window.next = "%MAIN%";</script></body></html>
"""
EDITOR_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body style="min-height: 50px">
<script>document.designMode = 'on';</script></body></html>
"""
EDITABLE_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head>
<body><div contenteditable="true" id="ce" style="min-height: 20px"></div></body></html>
"""
FRAME_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><p>%FrameText%</p></body></html>"""
LATE_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body><p id="late">empty</p></body></html>"""


def canaries(tag: str) -> dict[str, str]:
    """Every canary (secrets and controls) with this run's tag; formatted inputs get values they accept."""
    values = {name: f"{name}{tag}" for name in (*SECRETS, *CONTROLS, *WIRE_CONTROLS)}
    # Typed into frames, these are looked for masked in the recording: lengths no other canary has.
    for name in TYPED_IN_FRAMES:
        values[name] += "x" * (TYPED_IN_FRAMES[name] - len(values[name]))
    digits = str(int(tag, 16)).zfill(8)[-8:]
    values["NumberTyped"] = f"{digits[:4]}.{digits[4:]}"
    values["DateTyped"] = f"2{digits[:3]}-0{int(digits[3]) % 9 + 1}-1{digits[4]}"
    values["ColorTyped"] = "#" + tag[:6]
    values["RangeSet"] = "4" + digits + "123"
    return values


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"%(\w+)%", lambda m: values[m.group(1)], template)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    s = ServerProcess(tmp_path / "data", demo=True).start()
    yield s
    s.stop()


def demo_project(server: ServerProcess) -> dict[str, Any]:
    return next(p for p in server.api("/api/v1/projects").json() if p["name"] == "demo")


def files_containing_each(root: Path, needles: dict[str, str]) -> dict[str, list[str]]:
    """For each needle, the files under root whose raw or decompressed content holds it (UTF-8 or UTF-16)."""
    forms = {name: (value.encode(), value.encode("utf-16-le")) for name, value in needles.items()}
    found: dict[str, list[str]] = {name: [] for name in needles}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        views = list(decoded_views(path))
        for name, encoded in forms.items():
            if any(form in view for view in views for form in encoded):
                found[name].append(str(path.relative_to(root)))
    return found


def wire_text(body: bytes) -> str:
    """A capture request body as text, with its recording chunks decompressed."""
    if body[:2] == b"\x1f\x8b":
        body = gzip.decompress(body)
    batch = json.loads(body)
    chunks = [gzip.decompress(base64.b64decode(chunk["data"])).decode() for chunk in batch.get("recording", [])]
    return "\n".join([body.decode(), *chunks])


def tracker_ready(page: Page) -> None:
    page.wait_for_function("() => window.hitmetrix && typeof window.hitmetrix.sessionId === 'function'")


def delivered(site: StaticSite, marker: str) -> Callable[[Response], bool]:
    """The answer to the batch holding the custom event `marker`, as the site's tap saw it.

    Waiting for it before leaving a page keeps fetches from being cut off by the navigation:
    a cut-off batch is sent again (same ids) by beacon, which this test is not about.
    """
    return lambda r: "x-tapped" in r.headers and marker.encode() in site.posts[int(r.headers["x-tapped"])]


def visit_corpus(page: Page, site: StaticSite, values: dict[str, str], artifacts: Path) -> str:
    page.goto(site.url + "/start.html?session=" + values["ReferrerToken"])
    tracker_ready(page)
    with page.expect_response(delivered(site, "start-sent")):
        page.evaluate("() => { hitmetrix.track('start-sent'); hitmetrix.flush(); }")
    page.evaluate("() => { location.href = window.next; }")  # a navigation that sends the referrer
    page.wait_for_url(re.compile(r"/main\.html"))
    tracker_ready(page)
    # The full snapshot is taken at load; the frames are recorded once loaded.
    page.wait_for_function("() => document.readyState === 'complete'")
    session_id = str(page.evaluate("() => window.hitmetrix.sessionId()"))

    page.set_input_files(
        "#file", files=[FilePayload(name=values["FileName"] + ".txt", mimeType="text/plain", buffer=b"x")]
    )
    page.type("#textarea-typed", values["TextareaTyped"])
    page.check("#checkbox")
    page.select_option("#select", values["SelectValue"])
    for field, name in [
        ("#email", "EmailTyped"),
        ("#tel", "TelTyped"),
        ("#number", "NumberTyped"),
        ("#search", "SearchTyped"),
        ("#url", "UrlTyped"),
        ("#text", "TextTyped"),
        ("#password", "PasswordTyped"),
    ]:
        page.type(field, values[name])
    page.fill("#date", values["DateTyped"])
    page.fill("#color", values["ColorTyped"])
    page.click("#editable")
    page.keyboard.type(values["EditableTyped"])
    page.frame_locator("#editor").locator("body").click()
    page.keyboard.type(values["DesignTyped"])
    page.frame_locator("#frame-editable").locator("#ce").click()
    page.keyboard.type(values["FrameEditableTyped"])
    page.evaluate(
        """(v) => {
          const $ = (id) => document.getElementById(id);
          $('range').value = v.RangeSet;
          $('range').dispatchEvent(new Event('change', { bubbles: true }));
          $('output').value = v.OutputSet;
          $('masked-live').textContent = v.ScriptText;
          $('masked-html').innerHTML = '<b title="' + v.ScriptTitle + '">' + v.ScriptHtml + '</b>';
          $('masked').setAttribute('title', v.MutTitle);
          $('masked').setAttribute('aria-label', v.MutAria);
          $('masked').dataset.secret = v.MutData;
          $('blocked').setAttribute('title', v.BlockMutTitle);
          $('mut-value').setAttribute('value', v.MutValue);
          $('hidden-prop').value = v.MutHiddenProp;
          $('text-prop').value = v.MutTextProp;
          $('late').textContent = v.LateText;
          const frame = $('masked-frame').contentDocument;
          frame.getElementById('late').textContent = v.MaskedFrameLate;
        }""",
        values,
    )
    page.evaluate("(q) => history.pushState({}, '', '/main.html?search=' + q)", values["SpaQuery"])
    page.evaluate("() => history.pushState({}, '', '/main.html?done=1')")
    assert page.evaluate("() => window.hitmetrix._errors") == 0
    page.screenshot(path=str(artifacts / "privacy-corpus.png"))
    page.evaluate("(m) => document.body.insertAdjacentHTML('beforeend', '<p>' + m + '</p>')", values["EndMarker"])
    with page.expect_response(delivered(site, "end-sent")):
        page.evaluate("() => { hitmetrix.track('end-sent'); hitmetrix.flush(); }")
    return session_id


def test_no_private_data_reaches_the_store(
    server: ServerProcess, static_site: StaticSite, browser: Browser, artifacts: Path
) -> None:
    tag = secrets.token_hex(4)
    values = canaries(tag)
    project = demo_project(server)
    main_url = (
        f"{static_site.url}/main.html?q={values['QueryValue']}&utm_source={values['UtmSource']}"
        f"&ref={values['RefAllowed']}&page=2&token={values['QueryToken']}"
        f"#access_token={values['FragToken']}&state={values['FragState']}"
    )
    static_site.forward_to = server.url  # the tracker sends to the site, which keeps a copy and forwards
    page_values = {
        **values,
        "SERVER": server.url,
        "SITE": static_site.url,
        "KEY": project["public_key"],
        "MAIN": main_url,
    }
    for name, template in [
        ("main.html", MAIN_PAGE),
        ("start.html", START_PAGE),
        ("editor.html", EDITOR_PAGE),
        ("editable.html", EDITABLE_PAGE),
        ("frame.html", FRAME_PAGE),
        ("late.html", LATE_PAGE),
    ]:
        static_site.write(name, fill(template, page_values))

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))
    session_id = visit_corpus(page, static_site, values, artifacts)
    page.goto("about:blank")  # pagehide: the tracker sends the rest by sendBeacon
    context.close()
    assert page_errors == []

    def stored() -> str | None:
        r = server.api(f"/api/v1/projects/{project['id']}/sessions/{session_id}")
        if r.status_code != 200 or sum(e["type"] == "pageleave" for e in r.json()["events"]) < 2:
            return None
        recording = server.api(f"/api/v1/projects/{project['id']}/sessions/{session_id}/recording").text
        return recording if values["EndMarker"] in recording else None

    recording = wait_for(stored, 30, 0.2, what="the whole visit in the store")
    wire = "\n".join(wire_text(body) for body in static_site.posts)
    # What left the browser: nothing private, and the values it must keep.
    missing = [f"{name} ({what})" for name, what in {**CONTROLS, **WIRE_CONTROLS}.items() if values[name] not in wire]
    assert not missing, f"controls not sent by the tracker: {missing}"
    sent = [f"{name} ({what})" for name, what in {**SECRETS, **FORMATTED}.items() if values[name] in wire]
    assert not sent, "private data left the browser:\n" + "\n".join("  " + leak for leak in sent)
    # Typing into the editors in frames was recorded, masked: not finding it would prove
    # nothing if it had not been recorded at all.
    for name in TYPED_IN_FRAMES:
        assert '"' + "*" * len(values[name]) + '"' in recording, f"{SECRETS[name]}: not recorded (masked) at all"

    server.stop()  # drain the spool into the store, then look at every byte on disk
    found = files_containing_each(server.data_dir, {**values, "session id": session_id})
    missing = [f"{name} ({CONTROLS.get(name, 'session id')})" for name in (*CONTROLS, "session id") if not found[name]]
    assert not missing, f"controls not found, so the search proves nothing: {missing}"
    leaks = {
        f"{name} ({SECRETS.get(name) or FORMATTED[name]})": found[name]
        for name in (*SECRETS, *FORMATTED)
        if found[name]
    }
    assert not leaks, "private data reached the store:\n" + "\n".join(f"  {k}: {v}" for k, v in leaks.items())
