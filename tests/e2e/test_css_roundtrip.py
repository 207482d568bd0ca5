"""Stylesheets come out of a real recording whole: each rule of a corpus that Chromium's CSSOM cannot
round-trip (var() shorthands, logical shorthands, nested at-rules, !important…) computes, applied from
the recording in a fresh page, to the same style as on the recorded page (tracker/src/css.ts)."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Route

from bench.fidelity.font import write_probe_font
from tests.e2e.conftest import StaticSite
from tests.support import REPO, wait_for

pytestmark = pytest.mark.e2e

TRACKER = REPO / "hitmetrix" / "web" / "static" / "hm.js"
TEXT_WIDTH = "text-width"  # not a CSS property: the probe text's rendered width, which the web font decides

VARIABLES = (
    ':root { --ff: "Courier New", monospace; --p: 5px 7px; --pb: 9px; --c: rgb(200, 10, 10); --d: 3s;'
    " --ga: 2 / 2 / 3 / 4; --anim: spin 4s linear 1s infinite; --w: 120px; }"
)
# The probes' own look, in a <style> of its own on every page (recorded or not); in the first layer, so
# that the corpus's own layer wins over it.
BASE_CSS = (
    "@layer probe { .probe { border: 4px solid rgb(1, 2, 3); padding: 2px; margin: 1px; width: 300px;"
    " position: relative; } .grid { display: grid; grid-template: repeat(3, 10px) / repeat(3, 10px); }"
    " .ctr { container-type: inline-size; width: 400px; } }"
)


@dataclass(frozen=True)
class Case:
    name: str
    rules: list[str]
    props: list[str]
    # False where the CSSOM itself keeps no trace of a declaration (a var() shorthand a later longhand of the
    # same rule resets): only the stylesheet's text has it, so rules added by script cannot be recovered.
    recoverable: bool = True
    wrap: tuple[str, str] = field(default=("", ""))

    @property
    def probe(self) -> str:
        return f'{self.wrap[0]}<div class="probe" id="{self.name}"><span>Probe text Wg</span></div>{self.wrap[1]}'


FONT = ["font-style", "font-weight", "font-size", "line-height", "font-family"]
BOX = ["border-top-width", "border-bottom-width", "border-left-width", "border-top-style", "border-left-style"]
INLINE = ["border-left-width", "border-right-width", "border-top-width", "border-left-style"]
CORPUS = [
    Case("font-var", ["#font-var { font: italic 700 1.25rem/1.7 var(--ff); }"], FONT),
    Case("font-var-reset", ['#font-var-reset { font: 1rem/1.9 var(--ff); font-feature-settings: "smcp"; }'],
         [*FONT, "font-feature-settings"], recoverable=False),
    Case("border-block-none", ["#border-block-none { border-block-start: none; border-block-end: none; }"], BOX),
    Case("border-inline-none", ["#border-inline-none { border-inline-start: none; border-inline-end: none; }"],
         INLINE),
    Case("border-block-var", ["#border-block-var { border-block: 2px dashed var(--c); }"],
         [*BOX, "border-top-color"]),
    Case("padding-var-reset", ["#padding-var-reset { padding: var(--p); padding-bottom: var(--pb); }"],
         ["padding-top", "padding-right", "padding-bottom", "padding-left"], recoverable=False),
    Case("inset-var", ["#inset-var { position: absolute; inset: var(--pb) 5px; }"], ["top", "right", "bottom", "left"]),
    Case("margin-inline-important", [
        "#margin-inline-important { margin-inline: var(--pb) 3px !important; }",
        "#margin-inline-important { margin-left: 50px; margin-right: 60px; }",
    ], ["margin-left", "margin-right"]),
    Case("grid-area-var", ["#grid-area-var { grid-area: var(--ga); }"],
         ["grid-row-start", "grid-column-start", "grid-row-end", "grid-column-end"],
         wrap=('<div class="grid">', "</div>")),
    Case("transition-var", ["#transition-var { transition: opacity var(--d) ease-in 0.1s; }"],
         ["transition-property", "transition-duration", "transition-timing-function", "transition-delay"]),
    Case("animation-var-reset", ["#animation-var-reset { animation: var(--anim); animation-delay: 0.2s; }"],
         ["animation-name", "animation-duration", "animation-delay", "animation-iteration-count"], recoverable=False),
    Case("animation-var", ["#animation-var { animation: spin var(--d) linear infinite paused; }"],
         ["animation-name", "animation-duration", "animation-play-state"]),
    Case("keyframes-var", [
        "@keyframes grow { from { width: 0px; }"
        " to { width: var(--w); border-block-start: none; border-block-end: none; } }",
        "#keyframes-var { animation: grow 10s linear -5s paused; }",
    ], ["width", "border-top-width"]),
    Case("background-var-reset", [
        "#background-var-reset { background: var(--c) linear-gradient(red, blue); background-repeat: no-repeat; }"
    ], ["background-color", "background-image", "background-repeat"], recoverable=False),
    Case("gap-var", ["#gap-var { display: grid; gap: var(--pb) 3px; }"], ["row-gap", "column-gap"]),
    Case("text-decoration-var", ["#text-decoration-var { text-decoration: underline wavy var(--c); }"],
         ["text-decoration-line", "text-decoration-style", "text-decoration-color"]),
    Case("custom-properties", [
        "#custom-properties { --local: 12px; --empty: ; padding-left: var(--local); margin-top: var(--empty, 7px); }"
    ], ["padding-left", "margin-top"]),
    Case("important-var", [
        "#important-var { padding: var(--p) !important; }",
        "#important-var { padding: 1px; }",
    ], ["padding-top", "padding-right"]),
    Case("media-nested", ["@media (min-width: 1px) { #media-nested { border-block-start: none;"
                          " border-block-end: none; inset-inline: var(--pb); } }"], [*BOX, "left", "right"]),
    Case("supports-nested", ["@supports (display: grid) { @media screen { #supports-nested {"
                             " border-inline-start: none; border-inline-end: none; margin-inline: var(--pb); } } }"],
         [*INLINE, "margin-left"]),
    Case("layer-nested", ["@layer base { #layer-nested { border-block-start: none; border-block-end: none; } }"], BOX),
    Case("container-nested", ["@container (min-width: 10px) { #container-nested { border-inline-start: none;"
                              " border-inline-end: none; } }"], INLINE, wrap=('<div class="ctr">', "</div>")),
    Case("css-nesting", ["#css-nesting { color: rgb(0, 90, 0); & span { display: block; border-block-start: none;"
                         " border-block-end: none; border: 3px solid; } }"], ["color"]),
    Case("font-face", [
        '@font-face { font-family: "HM Probe"; src: url("probe.ttf") format("truetype"); }',
        '#font-face { font-family: "HM Probe", monospace; }',
    ], [TEXT_WIDTH, "font-family"]),
]
KEYFRAMES = "@keyframes spin { from { rotate: 0deg; } to { rotate: 360deg; } }"


def rules_of(cases: list[Case]) -> list[str]:
    return [VARIABLES, *[r for c in cases for r in c.rules], KEYFRAMES]


def body(cases: list[Case]) -> str:
    return "".join(c.probe for c in cases)


def page_html(head: str, cases: list[Case], script: str = "", tracker_first: bool = False) -> str:
    """The tracker tag after the page's script (it finds the sheets made), or first in the head (it sees them
    being made: insertRule, replace and replaceSync give it their text)."""
    tracker = '<script src="/hm.js" data-key="hm_pk_roundtrip" data-api="/api/v1/batch"></script>'
    first, last = (tracker, "") if tracker_first else ("", tracker)
    return (
        f"<!doctype html><html><head><meta charset=utf-8>{first}<style>{BASE_CSS}</style>{head}</head>"
        f"<body>{body(cases)}<script>{script}</script>{last}</body></html>"
    )


RECOVERABLE = [c for c in CORPUS if c.recoverable]
DELIVERIES = {
    # How the page gets the corpus, and the cases that delivery must keep.
    "style": CORPUS,  # a <style> untouched by script keeps its text
    "link": CORPUS,  # a linked sheet that lost declarations stays a link
    "link-recoverable": RECOVERABLE,  # a linked sheet the recorder rebuilds rule by rule
    "insert-rule": RECOVERABLE,  # CSS-in-JS: rules added with insertRule
    "adopted": RECOVERABLE,  # a constructed sheet in document.adoptedStyleSheets
    # The same, the tracker loaded first: the text script gives is kept, so even what the CSSOM loses is not lost.
    "insert-rule-tracker-first": CORPUS,
    "adopted-tracker-first": CORPUS,
    "adopted-replace-tracker-first": CORPUS,  # replace(): the text arrives when its promise settles
}


def write_pages(site: StaticSite) -> None:
    shutil.copy(TRACKER, site.root / "hm.js")
    write_probe_font(site.root / "probe.ttf")
    (site.root / "all.css").write_text("\n".join(rules_of(CORPUS)))
    (site.root / "recoverable.css").write_text("\n".join(rules_of(RECOVERABLE)))
    rules = json.dumps(rules_of(RECOVERABLE))
    site.write("style.html", page_html(f"<style>\n{chr(10).join(rules_of(CORPUS))}\n</style>", CORPUS))
    site.write("link.html", page_html('<link rel="stylesheet" href="all.css">', CORPUS))
    site.write("link-recoverable.html", page_html('<link rel="stylesheet" href="recoverable.css">', RECOVERABLE))
    site.write(
        "insert-rule.html",
        page_html(
            '<style id="js"></style>',
            RECOVERABLE,
            f"const s = document.getElementById('js').sheet;"
            f" for (const r of {rules}) s.insertRule(r, s.cssRules.length);",
        ),
    )
    all_rules = json.dumps(rules_of(CORPUS))
    site.write(
        "insert-rule-tracker-first.html",
        page_html(
            '<style id="js"></style>',
            CORPUS,
            f"const s = document.getElementById('js').sheet;"
            f" for (const r of {all_rules}) s.insertRule(r, s.cssRules.length);",
            tracker_first=True,
        ),
    )
    site.write(
        "adopted-tracker-first.html",
        page_html(
            "",
            CORPUS,
            f"const s = new CSSStyleSheet(); s.replaceSync({all_rules}.join('\\n'));"
            " document.adoptedStyleSheets = [s];",
            tracker_first=True,
        ),
    )
    site.write(
        "adopted-replace-tracker-first.html",
        page_html(
            "",
            CORPUS,
            f"const s = new CSSStyleSheet(); window.sheetReady = s.replace({all_rules}.join('\\n'))"
            ".then(() => { document.adoptedStyleSheets = [s]; });",
            tracker_first=True,
        ),
    )
    site.write(
        "adopted.html",
        page_html(
            "",
            RECOVERABLE,
            f"const s = new CSSStyleSheet(); s.replaceSync({rules}.join('\\n')); document.adoptedStyleSheets = [s];",
        ),
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticSite]:
    if not TRACKER.exists():
        pytest.fail(f"{TRACKER} is missing: run `make tracker`")
    s = StaticSite(tmp_path_factory.mktemp("css-site"))
    write_pages(s)
    yield s
    s.stop()


def recorded_events(browser: Browser, url: str) -> list[dict[str, Any]]:
    """The rrweb events the real tracker sends for a visit, up to its full snapshot and what follows it."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    events: list[dict[str, Any]] = []

    def capture(route: Route) -> None:
        batch = json.loads(route.request.post_data_buffer or b"{}")
        for chunk in batch.get("recording", []):
            events.extend(json.loads(gzip.decompress(base64.b64decode(chunk["data"]))))
        route.fulfill(status=200, json={"ok": True})

    page.route("**/api/v1/batch*", capture)
    page.goto(url)
    page.wait_for_function("() => window.hitmetrix && window.hitmetrix.sessionId()")
    page.evaluate("() => document.fonts.ready.then(() => window.hitmetrix.flush())")
    wait_for(lambda: any(e["type"] == 2 for e in events), 15, 0.05, what="the full snapshot")
    page.evaluate("() => window.hitmetrix.flush()")
    page.wait_for_timeout(300)  # let an adopted-stylesheet event that follows the snapshot arrive too
    assert page.evaluate("() => window.hitmetrix._errors") == 0
    context.close()
    return events


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.get("childNodes", [])))


def recorded_head(events: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The stylesheets of the recording, as markup for a fresh page; and how each was kept."""
    snapshot = next(e for e in events if e["type"] == 2)["data"]["node"]
    head, kinds = [], []
    for n in nodes(snapshot):
        attrs = n.get("attributes", {})
        if n.get("tagName") == "style":
            text = attrs.get("_cssText")
            if text is None:
                text = "".join(c.get("textContent", "") for c in n.get("childNodes", []))
            head.append(f"<style>{text}</style>")
            kinds.append("style _cssText" if "_cssText" in attrs else "style text")
        elif n.get("tagName") == "link":
            if "_cssText" in attrs:
                head.append(f"<style>{attrs['_cssText']}</style>")
                kinds.append("link _cssText")
            else:
                head.append(f'<link rel="stylesheet" href="{attrs["href"]}">')
                kinds.append("link href")
    for e in events:
        if e["type"] == 3 and e["data"].get("source") == 15:  # rrweb's adopted-stylesheet event
            for style in e["data"].get("styles", []):
                head.append("<style>" + "".join(r["rule"] for r in style["rules"]) + "</style>")
                kinds.append("adopted")
    return "".join(head), kinds


def computed(page: Page, cases: list[Case]) -> dict[str, dict[str, str]]:
    return page.evaluate(
        """async ([cases, textWidth]) => {
          if (window.sheetReady) await window.sheetReady;
          await document.fonts.ready;
          const out = {};
          for (const [name, props] of cases) {
            const el = document.getElementById(name);
            const style = getComputedStyle(el);
            out[name] = {};
            for (const p of props) {
              out[name][p] = p === textWidth ? String(el.querySelector('span').getBoundingClientRect().width)
                                              : style.getPropertyValue(p);
            }
          }
          return out;
        }""",
        [[[c.name, c.props] for c in cases], TEXT_WIDTH],
    )


def styles_with(browser: Browser, site: StaticSite, name: str, head: str, cases: list[Case]) -> dict:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.goto(site.write(name, f"<!doctype html><html><head><meta charset=utf-8>{head}</head><body>"
                               f"{body(cases)}</body></html>"))
    styles = computed(page, cases)
    context.close()
    return styles


def originals(browser: Browser, site: StaticSite, delivery: str, cases: list[Case]) -> dict:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    page.route("**/api/v1/batch*", lambda route: route.fulfill(status=200, json={"ok": True}))
    page.goto(f"{site.url}/{delivery}.html")
    styles = computed(page, cases)
    context.close()
    return styles


def mismatches(want: dict, got: dict) -> dict[str, dict[str, tuple[str, str]]]:
    return {
        name: diff
        for name, props in want.items()
        if (diff := {p: (v, got[name][p]) for p, v in props.items() if got[name][p] != v})
    }


@pytest.mark.parametrize("delivery", list(DELIVERIES))
def test_each_rule_computes_the_same_from_the_recording(delivery: str, site: StaticSite, browser: Browser) -> None:
    cases = DELIVERIES[delivery]
    want = originals(browser, site, delivery, cases)
    bare = styles_with(browser, site, f"bare-{delivery}.html", f"<style>{BASE_CSS}</style>", cases)
    inert = [c.name for c in cases if want[c.name] == bare[c.name]]
    assert inert == [], f"cases whose rules change nothing on the recorded page, so would prove nothing: {inert}"

    events = recorded_events(browser, f"{site.url}/{delivery}.html")
    head, kinds = recorded_head(events)
    expected_kind = {
        "style": "style _cssText",
        "link": "link href",
        "link-recoverable": "link _cssText",
        "insert-rule": "style _cssText",
        "adopted": "adopted",
        "insert-rule-tracker-first": "style _cssText",
        "adopted-tracker-first": "adopted",
        "adopted-replace-tracker-first": "adopted",
    }[delivery]
    assert expected_kind in kinds, kinds
    got = styles_with(browser, site, f"replayed-{delivery}.html", head, cases)
    assert mismatches(want, got) == {}


def test_the_corpus_defeats_the_cssom_text_that_rrweb_reads(site: StaticSite, browser: Browser) -> None:
    """Control: the rules' own cssText (what rrweb serialises unaided) loses most of the corpus, so the
    round-trip test above would catch a recorder that fell back to it."""
    context = browser.new_context()
    page = context.new_page()
    page.route("**/api/v1/batch*", lambda route: route.fulfill(status=200, json={"ok": True}))
    page.goto(f"{site.url}/style.html")
    cssom = page.evaluate("() => Array.from(document.styleSheets[1].cssRules, (r) => r.cssText).join('\\n')")
    context.close()
    want = originals(browser, site, "style", CORPUS)
    got = styles_with(browser, site, "cssom.html", f"<style>{BASE_CSS}</style><style>{cssom}</style>", CORPUS)
    lost = set(mismatches(want, got))
    assert {"border-block-none", "padding-var-reset", "font-var-reset", "background-var-reset", "media-nested"} <= lost
