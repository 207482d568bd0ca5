"""A replay makes the viewer's browser contact no host the project has not allowed, and never names the dashboard.

Chromium runs with every host name except 127.0.0.1 and localhost resolved to a "listener" on 127.0.0.1
(`--host-resolver-rules`), which records every connection and every request (Host, path, Referer). A forged
recording names host1.evil.test … hostN.evil.test, one host per way a page can make a browser fetch something:
images, srcset, picture, video, audio, tracks, objects, embeds, frames, image inputs, links of every rel,
referrer and refresh metas, base, pings, CSS in style attributes, `<style>` text, rrweb's inlined `_cssText`,
stylesheet-rule, style-declaration and adopted-stylesheet events, font events, SVG images, uses, filters and
animations. Replayed to its end in a signed-in dashboard, the listener sees no connection at all, and no request
Chromium makes names the dashboard in a Referer.

Controls keep this from passing for the wrong reason: the same markup served as a plain page does reach the
listener (the vectors are live in this Chromium and the host mapping works); with the sanitiser bypassed, the CSP
the replay iframe inherits still blocks what it governs (the iframe's inheritance is checked, not assumed); and a
project whose allowed origin is a second listener gets its images and stylesheet, without a Referer.
"""

from __future__ import annotations

import html
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Response, sync_playwright

from hitmetrix.web.security import content_security_policy, replay_origins
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.e2e.dashboard import (
    Member,
    demo_member,
    forge_recording,
    play_to_end,
    project_member,
    sign_in,
    wait_replay_loaded,
)
from tests.support import ServerProcess

pytestmark = pytest.mark.e2e

REPLAY_FRAME = ".replayer-wrapper iframe"
EVIL_SUFFIX = ".evil.test"
PAGE_URL = "http://page.evil.test/index.html"


def png_bytes(width: int, height: int) -> bytes:
    """A tiny opaque PNG, so that a test can tell a loaded image (its natural size) from a broken one."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + b"\x20\x80\xc0\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png_bytes(2, 3)


@dataclass(frozen=True)
class Seen:
    method: str
    host: str
    path: str
    referer: str | None


@dataclass
class Connection:
    """One accepted connection: `http`, `tls` (host from the ClientHello's SNI), `silent` (sent nothing: a
    preconnect), or `pending` until its first bytes arrive."""

    kind: str = "pending"
    host: str = ""


SILENT_AFTER_S = 2.0


def tls_server_name(hello: bytes) -> str:
    """The SNI host name of a TLS ClientHello ('' if there is none or it cannot be read)."""
    try:
        pos = 5 + 4 + 2 + 32  # record header, handshake header, version, random
        pos += 1 + hello[pos]  # session id
        pos += 2 + int.from_bytes(hello[pos : pos + 2], "big")  # cipher suites
        pos += 1 + hello[pos]  # compression methods
        end = pos + 2 + int.from_bytes(hello[pos : pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            kind, size = int.from_bytes(hello[pos : pos + 2], "big"), int.from_bytes(hello[pos + 2 : pos + 4], "big")
            if kind == 0:  # server_name: list length, name type, name length, name
                length = int.from_bytes(hello[pos + 7 : pos + 9], "big")
                return hello[pos + 9 : pos + 9 + length].decode("ascii")
            pos += 4 + size
    except (IndexError, UnicodeDecodeError):
        return ""
    return ""


class Listener:
    """A threaded HTTP server on 127.0.0.1 that records every connection and request, and answers anything."""

    def __init__(self) -> None:
        self.connections: list[Connection] = []
        self.requests: list[Seen] = []
        self.pages: dict[str, bytes] = {}
        self.by_socket: dict[socket.socket, Connection] = {}
        self.lock = threading.Lock()
        listener = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request: Any, client_address: Any) -> None:
                with listener.lock:
                    listener.connections.append(Connection())
                    listener.by_socket[request] = listener.connections[-1]
                super().process_request(request, client_address)

        class Handler(BaseHTTPRequestHandler):
            def handle(self) -> None:
                with listener.lock:
                    connection = self.connection_record = listener.by_socket.pop(self.request)
                self.request.settimeout(SILENT_AFTER_S)
                try:
                    first = self.request.recv(4096, socket.MSG_PEEK)
                except OSError:  # nothing within SILENT_AFTER_S: a preconnect, kept open for later use
                    first = b""
                self.request.settimeout(None)
                if not first:
                    connection.kind = "silent"
                elif first[0] == 0x16:  # a TLS handshake record: Chromium's https:// (we answer none)
                    connection.kind, connection.host = "tls", tls_server_name(first)
                else:
                    connection.kind = "http"
                    super().handle()

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._answer()

            def do_POST(self) -> None:  # noqa: N802
                self._answer()

            def _answer(self) -> None:
                path = self.path.split("?")[0]
                host = self.headers.get("Host", "")
                self.connection_record.host = host
                with listener.lock:
                    listener.requests.append(Seen(self.command, host, self.path, self.headers.get("Referer")))
                body, kind = listener.pages.get(path), "text/html; charset=utf-8"
                if self.headers.get("User-Agent", "").startswith("Hitmetrix-AssetFetcher"):
                    # The dashboard's asset capture (test_replay_assets.py covers it) is refused here, so that
                    # the replay falls back to the allowed origin itself, which is what this file checks.
                    self.send_response(403)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if body is None and path.endswith(".png"):
                    body, kind = PNG, "image/png"
                elif body is None and path.endswith(".css"):
                    body, kind = b"body { outline: 0 }", "text/css"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def activity(self) -> tuple[int, int, int]:
        """Connections, requests, and connections not yet classified (the quiet wait waits for those too)."""
        with self.lock:
            pending = sum(1 for c in self.connections if c.kind == "pending")
            return len(self.connections), len(self.requests), pending

    def reset(self) -> None:
        with self.lock:
            self.connections.clear()
            self.requests.clear()

    def unexplained(self, recorded_hosts: set[str]) -> list[str]:
        """Everything but Chromium's own background TLS (to hosts the recording never names): HTTP requests,
        silent connections (preconnects) and TLS to a recorded host."""
        with self.lock:
            out = [f"{r.method} http://{r.host}{r.path} (Referer: {r.referer})" for r in self.requests]
            for c in self.connections:
                if c.kind == "silent" or c.kind == "pending":
                    out.append(f"a {c.kind} connection (a preconnect?)")
                elif c.kind == "tls" and (not c.host or c.host in recorded_hosts or c.host.endswith(EVIL_SUFFIX)):
                    out.append(f"TLS to {c.host or 'an unnamed host'}")
            return out

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


# --- The forged recording: one element tree, written both as rrweb's serialized nodes and as plain HTML ----------


@dataclass
class El:
    tag: str
    attrs: dict[str, Any] = field(default_factory=dict)
    children: list[El | str] = field(default_factory=list)
    svg: bool = False
    # Only rrweb can express it (`_cssText`, or a trick the HTML parser would not keep): left out of the plain page.
    recording_only: bool = False
    node_id: int = 0


class Hosts:
    """Hands out one host per vector, and remembers which vector each host stands for."""

    def __init__(self) -> None:
        self.vectors: dict[str, str] = {}

    def url(self, vector: str, path: str = "/x.png", scheme: str = "http") -> str:
        host = f"host{len(self.vectors) + 1}{EVIL_SUFFIX}"
        self.vectors[host] = vector
        return f"{scheme}://{host}{path}"

    def name(self, host: str) -> str:
        return f"{host} ({self.vectors.get(host, '?')})"


def hostile_tree(h: Hosts) -> El:
    """A page that names a different host in each way of making the browser fetch something."""
    font_css = (
        f"@import url({h.url('<style> @import url()', '/import1.css')});\n"
        f'@import "{h.url("<style> @import string", "/import2.css")}";\n'
        f"@font-face {{ font-family: evilfont; src: url({h.url('<style> @font-face src', '/f.woff')}) }}\n"
        f".bg {{ background: url({h.url('<style> background url()')}) }}\n"
        f".esc {{ background-image: \\75 rl({h.url('<style> escaped url()')}) }}\n"
        ".text-font { font-family: evilfont }\n"
    )
    head = El(
        "head",
        children=[
            El("meta", {"name": "referrer", "content": "unsafe-url"}),
            El("meta", {"http-equiv": "refresh", "content": f"30;url={h.url('meta refresh', '/refresh')}"}),
            El("base", {"href": h.url("base href", "/")}),
            El("link", {"rel": "stylesheet", "href": h.url("link stylesheet", "/s.css")}),
            El("link", {"rel": "preload", "as": "image", "href": h.url("link preload")}),
            El("link", {"rel": "prefetch", "href": h.url("link prefetch", "/prefetch")}),
            El("link", {"rel": "preconnect", "href": h.url("link preconnect", "/")}),
            El("link", {"rel": "dns-prefetch", "href": h.url("link dns-prefetch", "/")}),
            El("link", {"rel": "modulepreload", "href": h.url("link modulepreload", "/m.js")}),
            El("link", {"rel": "prerender", "href": h.url("link prerender", "/prerender")}),
            El("link", {"rel": "icon", "href": h.url("link icon", "/favicon.png")}),
            El("link", {"rel": "manifest", "href": h.url("link manifest", "/manifest.json")}),
            El(
                "link",
                {"rel": "stylesheet preload", "as": "style", "href": h.url("link stylesheet+preload", "/sp.css")},
            ),
            El(
                "link",
                {"rel": "preconnect", "href": h.url("link preconnect with rrweb _cssText", "/"), "_cssText": ""},
                recording_only=True,
            ),
            El("style", {}, [font_css]),
            El(
                "style",
                {
                    "_cssText": f"@import '{h.url('_cssText @import', '/import3.css')}';\n"
                    f".cur {{ cursor: url({h.url('_cssText cursor url()')}), auto }}"
                },
                recording_only=True,
            ),
        ],
    )
    svg = El(
        "svg",
        {"width": "120", "height": "60", "xmlns": "http://www.w3.org/2000/svg"},
        [
            El("image", {"href": h.url("svg image href"), "width": "10", "height": "10"}, svg=True),
            El("image", {"xlink:href": h.url("svg image xlink:href"), "width": "10", "height": "10"}, svg=True),
            El("use", {"href": h.url("svg use href", "/u.svg#a")}, svg=True),
            El("filter", {"id": "f1"}, [El("feImage", {"href": h.url("svg feImage href")}, svg=True)], svg=True),
            El(
                "rect", {"width": "10", "height": "10", "fill": f"url({h.url('svg fill url()', '/p.svg#g')})"}, svg=True
            ),
            El(
                "rect",
                {
                    "width": "10",
                    "height": "10",
                    "filter": f"url({h.url('svg filter url()', '/f.svg#f')})",
                    "mask": f"url({h.url('svg mask url()', '/m.svg#m')})",
                },
                svg=True,
            ),
            El(
                "image",
                {"width": "10", "height": "10"},
                [El("set", {"attributeName": "href", "to": h.url("svg <set> to"), "begin": "0s"}, svg=True)],
                svg=True,
            ),
        ],
        svg=True,
    )
    body = El(
        "body",
        {"background": h.url("body background attribute")},
        [
            El("h1", {"id": "title"}, ["A page that names many hosts"]),
            El("img", {"src": h.url("img src"), "width": "10", "height": "10"}),
            El("img", {"srcset": f"{h.url('img srcset 1x')} 1x, {h.url('img srcset 2x')} 2x", "width": "10"}),
            El("img", {"src": h.url("https img src", scheme="https"), "width": "10"}),
            El(
                "picture",
                {},
                [
                    El("source", {"srcset": h.url("picture source srcset"), "type": "image/png"}),
                    El("img", {"src": "data:image/png;base64,AAAA", "width": "10"}),
                ],
            ),
            El("video", {"poster": h.url("video poster"), "src": h.url("video src", "/v.webm"), "preload": "auto"}),
            El(
                "video",
                {"preload": "auto"},
                [
                    El("source", {"src": h.url("video source src", "/v2.webm")}),
                    El("track", {"src": h.url("track src", "/t.vtt"), "default": "", "kind": "subtitles"}),
                ],
            ),
            El("audio", {"src": h.url("audio src", "/a.ogg"), "preload": "auto"}),
            El("object", {"data": h.url("object data", "/o.bin"), "width": "10", "height": "10"}),
            El("embed", {"src": h.url("embed src", "/e.bin"), "width": "10", "height": "10"}),
            El("iframe", {"src": h.url("iframe src", "/frame.html"), "width": "10", "height": "10"}),
            El("input", {"type": "image", "src": h.url("input type=image src"), "alt": "go"}),
            El(
                "a",
                {
                    "id": "pinged",
                    "href": h.url("a href (navigation on click)", "/page"),
                    "ping": h.url("a ping", "/ping"),
                },
                ["a link with a ping"],
            ),
            El("img", {"src": "data:image/png;base64,AAAA", "referrerpolicy": "unsafe-url", "width": "1"}),
            El("div", {"style": f"width:10px;height:10px;background:url({h.url('style background url()')})"}),
            El(
                "div",
                {"style": f'width:10px;height:10px;background-image:image-set("{h.url("style image-set()")}" 1x)'},
            ),
            El("div", {"style": f"width:10px;height:10px;cursor:url({h.url('style cursor url()')}), auto"}),
            El(
                "div",
                {
                    "style": f"width:10px;height:10px;background:red;mask-image:url({h.url('style mask-image')});"
                    f"-webkit-mask-image:url({h.url('style -webkit-mask-image')})"
                },
            ),
            El("div", {"style": f"width:10px;height:10px;filter:url({h.url('style filter url()', '/f.svg#f')})"}),
            El("div", {"class": "bg", "style": "width:10px;height:10px"}),
            El("div", {"class": "esc", "style": "width:10px;height:10px"}),
            El("div", {"class": "cur", "style": "width:10px;height:10px"}),
            El("div", {"class": "added-rule adopted", "id": "rule-target", "style": "width:10px;height:10px"}),
            El("p", {"class": "text-font"}, ["Text in a font from another host"]),
            El("p", {"id": "font-event-text", "style": "font-family: evilfont2"}, ["Text in a font from a font event"]),
            El(
                "table",
                {"background": h.url("table background attribute")},
                [
                    El("tbody", {}, [El("tr", {}, [El("td", {}, ["cell"])])]),
                ],
            ),
            El("canvas", {"id": "canvas", "width": "10", "height": "10"}),
            svg,
            El("p", {"id": "plain"}, ["Plain text that stays"]),
        ],
    )
    return El("html", {}, [head, body])


def number(tree: El, first_id: int = 2) -> dict[str, int]:
    """Give every element (and text) an rrweb id; returns the ids of elements that have an `id` attribute."""
    next_id = first_id
    named: dict[str, int] = {}
    stack: list[El] = [tree]
    while stack:
        node = stack.pop()
        node.node_id = next_id
        next_id += 1
        if "id" in node.attrs:
            named[node.attrs["id"]] = node.node_id
        next_id += sum(1 for c in node.children if isinstance(c, str))
        stack.extend(reversed([c for c in node.children if isinstance(c, El)]))
    return named


def serialized(node: El) -> dict[str, Any]:
    children: list[dict[str, Any]] = []
    text_id = node.node_id + 1
    for child in node.children:
        if isinstance(child, str):
            children.append(
                {"type": 3, "id": text_id, "textContent": child, **({"isStyle": True} if node.tag == "style" else {})}
            )
            text_id += 1
        else:
            children.append(serialized(child))
    out: dict[str, Any] = {
        "type": 2,
        "id": node.node_id,
        "tagName": node.tag,
        "attributes": dict(node.attrs),
        "childNodes": children,
    }
    if node.svg or node.tag == "svg":
        out["isSVG"] = True
    return out


def as_html(node: El | str) -> str:
    if isinstance(node, str):
        return html.escape(node, quote=False)
    if node.recording_only:
        return ""
    attrs = "".join(f' {name}="{html.escape(str(value))}"' for name, value in node.attrs.items())
    inner = "".join(c if isinstance(c, str) and node.tag == "style" else as_html(c) for c in node.children)
    return f"<{node.tag}{attrs}>{inner}</{node.tag}>"


def find(tree: El, predicate: Any) -> El:
    stack: list[El] = [tree]
    while stack:
        node = stack.pop()
        if predicate(node):
            return node
        stack.extend(c for c in node.children if isinstance(c, El))
    raise LookupError("no such element in the tree")


def hostile_events(h: Hosts, start_ms: int, page_url: str) -> tuple[list[dict[str, Any]], El]:
    """The recording (full snapshot and incremental events, all naming other hosts) and its element tree."""
    tree = hostile_tree(h)
    rules_style = El("style", {"id": "rules-target"}, [".placeholder { color: inherit }"])
    find(tree, lambda n: n.tag == "head").children.append(rules_style)
    number(tree)
    head = find(tree, lambda n: n.tag == "head")
    body = find(tree, lambda n: n.tag == "body")
    style_text = find(tree, lambda n: n.tag == "style" and bool(n.children) and "@font-face" in str(n.children[0]))
    stylesheet_link = find(tree, lambda n: n.tag == "link" and n.attrs.get("rel") == "stylesheet")
    first_img = find(tree, lambda n: n.tag == "img" and "src" in n.attrs)
    first_div = find(tree, lambda n: n.tag == "div")
    plain = find(tree, lambda n: n.attrs.get("id") == "plain")
    canvas = find(tree, lambda n: n.tag == "canvas")
    added = 10_000
    mutation = {
        "source": 0,
        "texts": [
            {
                "id": style_text.node_id + 1,
                "value": str(style_text.children[0])
                + f"@import url({h.url('mutation: <style> text change @import', '/import4.css')});\n",
            }
        ],
        "attributes": [
            {"id": first_img.node_id, "attributes": {"src": h.url("mutation: img src change")}},
            {
                "id": first_div.node_id,
                "attributes": {"style": {"background-image": f"url({h.url('mutation: style object change')})"}},
            },
            {"id": plain.node_id, "attributes": {"style": f"background:url({h.url('mutation: style attribute')})"}},
            {
                "id": stylesheet_link.node_id,
                "attributes": {"rel": "preconnect", "href": h.url("mutation: link rel → preconnect", "/")},
            },
            {"id": body.node_id, "attributes": {"background": h.url("mutation: body background change")}},
        ],
        "removes": [],
        "adds": [
            {
                "parentId": body.node_id,
                "nextId": None,
                "node": {
                    "type": 2,
                    "id": added,
                    "tagName": "img",
                    "attributes": {"id": "added-img", "src": h.url("mutation: added img"), "width": "10"},
                    "childNodes": [],
                },
            },
            {
                "parentId": head.node_id,
                "nextId": None,
                "node": {
                    "type": 2,
                    "id": added + 1,
                    "tagName": "link",
                    "attributes": {"rel": "preconnect", "href": h.url("mutation: added link preconnect", "/")},
                    "childNodes": [],
                },
            },
            {
                "parentId": head.node_id,
                "nextId": None,
                "node": {
                    "type": 2,
                    "id": added + 2,
                    "tagName": "meta",
                    "attributes": {"name": "referrer", "content": "unsafe-url"},
                    "childNodes": [],
                },
            },
            {
                "parentId": body.node_id,
                "nextId": None,
                "node": {"type": 2, "id": added + 3, "tagName": "p", "attributes": {"id": "added"}, "childNodes": []},
            },
            {"parentId": added + 3, "nextId": None, "node": {"type": 3, "id": added + 4, "textContent": "Added later"}},
        ],
    }
    style_rule = {
        "source": 8,
        "id": rules_style.node_id,
        "adds": [
            {"rule": f".added-rule {{ background-image: url({h.url('StyleSheetRule insertRule')}) }}", "index": 1}
        ],
    }
    declaration = {
        "source": 13,
        "id": rules_style.node_id,
        "index": [1],
        "set": {"property": "border-image-source", "value": f"url({h.url('StyleDeclaration setProperty')})"},
    }
    adopted = {
        "source": 15,
        "id": 1,
        "styleIds": [7],
        "styles": [
            {
                "styleId": 7,
                "rules": [
                    {"rule": f".adopted::after {{ content: url({h.url('AdoptedStyleSheet rule')}) }}", "index": 0},
                ],
            }
        ],
    }
    font = {
        "source": 10,
        "family": "evilfont2",
        "fontSource": f"url({h.url('font event', '/f2.woff')})",
        "buffer": False,
        "descriptors": {},
    }
    canvas_draw = {
        "source": 9,
        "id": canvas.node_id,
        "type": 0,
        "commands": [
            {
                "property": "drawImage",
                "args": [{"rr_type": "HTMLImageElement", "src": h.url("canvas drawImage")}, 0, 0],
            },
        ],
    }
    document = {"type": 0, "id": 1, "childNodes": [serialized(tree)]}
    events = [
        {"type": 4, "timestamp": start_ms, "data": {"href": page_url, "width": 1000, "height": 700}},
        {"type": 2, "timestamp": start_ms + 5, "data": {"node": document, "initialOffset": {"left": 0, "top": 0}}},
        {"type": 3, "timestamp": start_ms + 300, "data": mutation},
        {"type": 3, "timestamp": start_ms + 400, "data": style_rule},
        {"type": 3, "timestamp": start_ms + 500, "data": declaration},
        {"type": 3, "timestamp": start_ms + 600, "data": adopted},
        {"type": 3, "timestamp": start_ms + 700, "data": font},
        {"type": 3, "timestamp": start_ms + 800, "data": canvas_draw},
        {
            "type": 3,
            "timestamp": start_ms + 1500,
            "data": {"source": 1, "positions": [{"x": 5, "y": 5, "id": body.node_id, "timeOffset": 0}]},
        },
    ]
    return events, tree


class Traffic:
    """Every request a page (and its frames) makes from now on, and how many are still in flight."""

    def __init__(self, page: Page) -> None:
        self.requests: list[Request] = []
        self.failures: dict[str, str] = {}
        self.pending: set[int] = set()
        self.live_polls = 0
        page.on("request", self._started)
        page.on("requestfinished", lambda r: self.pending.discard(id(r)))
        page.on("requestfailed", self._failed)

    def _started(self, request: Request) -> None:
        if urlsplit(request.url).path.endswith("/recording/chunks"):
            # A session recorded moments ago is live: the page asks the dashboard for newer chunks every
            # few seconds. That is the dashboard itself, never another host, and it never goes quiet.
            self.live_polls += 1
            return
        self.requests.append(request)
        self.pending.add(id(request))

    def _failed(self, request: Request) -> None:
        self.pending.discard(id(request))
        self.failures[request.url] = request.failure or ""

    def reset(self) -> None:
        self.requests.clear()
        self.failures.clear()


def wait_quiet(
    page: Page, traffic: Traffic, listeners: list[Listener], quiet_s: float = 1.5, timeout_s: float = 30
) -> None:
    """Until nothing is in flight and neither Chromium nor the listeners saw anything new for `quiet_s` (polled)."""
    page.wait_for_load_state("networkidle")
    deadline = time.monotonic() + timeout_s

    def state() -> tuple[int, list[tuple[int, int, int]]]:
        return len(traffic.requests), [listener.activity() for listener in listeners]

    last, quiet_since = state(), time.monotonic()
    while time.monotonic() < deadline:
        page.wait_for_timeout(100)  # the poll interval; it also lets Playwright deliver request events
        now = state()
        busy = traffic.pending or any(pending for _, _, pending in now[1])
        if now != last or busy:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
    raise AssertionError(f"the network never went quiet: {len(traffic.pending)} requests in flight, {last}")


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


@dataclass
class World:
    server: ServerProcess
    member: Member
    allowed_member: Member
    evil: Listener
    allowed: Listener
    browser: Browser


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    evil, allowed = Listener(), Listener()
    data_dir = tmp_path_factory.mktemp("no-contact") / "data"
    member = demo_member(data_dir)
    allowed_member = project_member(data_dir, member, "allowed-origin", allowed_origins=allowed.url)
    server = ServerProcess(data_dir, demo=True).start()
    # Every other host name resolves to the evil listener; the dashboard and the allowed listener stay on 127.0.0.1.
    rules = f"MAP * 127.0.0.1:{evil.port}, EXCLUDE 127.0.0.1, EXCLUDE localhost"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules={rules}"]
            )
            yield World(server, member, allowed_member, evil, allowed, browser)
            browser.close()
    finally:
        server.stop()
        evil.close()
        allowed.close()
    assert "Traceback" not in server.log_tail(200_000), server.log_tail()


@dataclass
class Replay:
    page: Page
    traffic: Traffic
    response: Response
    errors: list[str]


def open_replay(world: World, member: Member, session_id: str) -> Replay:
    """Sign in, then (recording traffic from here on) open the replay and load all of it."""
    context = world.browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    traffic = Traffic(page)
    sign_in(page, world.server.url, member)
    wait_quiet(page, traffic, [world.evil, world.allowed])
    traffic.reset()
    world.evil.reset()
    world.allowed.reset()
    response = page.goto(f"{world.server.url}/projects/{member.project_id}/sessions/{session_id}")
    assert response is not None and response.status == 200
    wait_replay_loaded(page)
    return Replay(page, traffic, response, errors)


def assert_no_referer_names_the_dashboard(world: World, replay: Replay) -> None:
    dashboard = urlsplit(world.server.url).netloc
    named = [
        f"{r.url} ← {r.header_value('referer')}"
        for r in replay.traffic.requests
        if dashboard in (r.header_value("referer") or "")
    ]
    named += [
        f"http://{r.host}{r.path} ← {r.referer}"
        for listener in (world.evil, world.allowed)
        for r in listener.requests
        if r.referer and dashboard in r.referer
    ]
    assert named == [], named


def frame_eval(page: Page, script: str, arg: Any = None) -> Any:
    """Evaluate `script` (a function of the replay document and `arg`) from the dashboard page."""
    return page.evaluate(f"([arg]) => ({script})(document.querySelector('{REPLAY_FRAME}').contentDocument, arg)", [arg])


CSP_WILDCARDS = {"http:", "https:", "*", "ws:", "wss:"}


def test_a_hostile_recording_contacts_no_other_host_and_names_no_dashboard(world: World, artifacts: Path) -> None:
    hosts = Hosts()
    events, _ = hostile_events(hosts, int(time.time() * 1000) - 5000, PAGE_URL)
    assert len(hosts.vectors) >= 60, "one host per vector"
    session_id = forge_recording(world.server, world.member, events, PAGE_URL)
    replay = open_replay(world, world.member, session_id)
    page = replay.page

    csp = replay.response.headers["content-security-policy"]
    assert not CSP_WILDCARDS & set(csp.replace(";", " ").split()), csp
    assert replay.response.headers["referrer-policy"] == "no-referrer"
    play_to_end(page)
    frame = page.frame_locator(REPLAY_FRAME)
    assert frame.locator("#title").text_content() == "A page that names many hosts"
    assert frame.locator("#added").text_content() == "Added later", "mutations were replayed"
    # What a viewer (or a stray click) could do: follow the pinged link, hover everything.
    frame.locator("#pinged").dispatch_event("click")
    frame.locator("#plain").dispatch_event("mouseover")
    wait_quiet(page, replay.traffic, [world.evil])

    assert world.evil.unexplained(set(hosts.vectors)) == [], [hosts.name(h) for h in hosts.vectors]
    # Not even a blocked attempt: the sanitiser left no other host in the rebuilt page.
    tried = [
        (hosts.name(host_of(r.url)), r.url) for r in replay.traffic.requests if host_of(r.url).endswith(EVIL_SUFFIX)
    ]
    assert tried == [], tried
    assert_no_referer_names_the_dashboard(world, replay)
    assert [r for r in replay.traffic.requests if r.header_value("referer")] == [], "the replay page sends no Referer"

    # The replay document's own referrer policy, and what is left of the hostile head.
    assert page.locator(REPLAY_FRAME).get_attribute("referrerpolicy") == "no-referrer"
    metas = frame_eval(page, "doc => [...doc.querySelectorAll('meta[name]')].map(m => m.name + '=' + m.content)")
    assert metas == ["referrer=no-referrer"], metas
    links = frame_eval(page, "doc => [...doc.querySelectorAll('link')].map(l => [l.rel, l.href])")
    assert all(rel in ("", "stylesheet") and EVIL_SUFFIX not in href for rel, href in links), links
    leftovers = frame_eval(
        page,
        """doc => [...doc.querySelectorAll('*')].flatMap(el => [...el.attributes]
             .filter(a => a.value.includes('evil.test') && a.name !== 'content')
             .map(a => el.tagName + ' ' + a.name + '=' + a.value))""",
    )
    assert leftovers == [], leftovers
    page.screenshot(path=str(artifacts / "replay-no-contact-hostile.png"))
    assert replay.errors == [], replay.errors
    page.context.close()


def test_the_replay_document_inherits_the_csp_that_backs_the_sanitiser(world: World, artifacts: Path) -> None:
    """With the sanitiser bypassed, the CSP the about:blank replay document inherits from the page still stops
    every request (preconnects are the one thing CSP does not govern: the sanitiser is what removes those)."""
    hosts = Hosts()
    events, _ = hostile_events(hosts, int(time.time() * 1000) - 5000, PAGE_URL)
    session_id = forge_recording(world.server, world.member, events, PAGE_URL)
    replay = open_replay(world, world.member, session_id)
    page = replay.page
    play_to_end(page)
    wait_quiet(page, replay.traffic, [world.evil])
    replay.traffic.reset()
    world.evil.reset()

    # A direct probe: an image added to the replay document by script, past the sanitiser.
    violations = frame_eval(
        page,
        """(doc, url) => new Promise(resolve => {
             doc.addEventListener('securitypolicyviolation',
               e => resolve([e.blockedURI, e.effectiveDirective, e.disposition]), {once: true});
             const img = doc.createElement('img');
             img.src = url;
             doc.body.appendChild(img);
           })""",
        "http://csp-probe.evil.test/direct.png",
    )
    assert violations == ["http://csp-probe.evil.test/direct.png", "img-src", "enforce"], violations

    # The whole raw recording, appended behind the sanitised one straight into the player.
    raw_hosts = Hosts()
    raw, _ = hostile_events(raw_hosts, 0, PAGE_URL)
    page.evaluate(
        """raw => {
             const player = window.hmReplay.player;
             const end = player.getMetaData().endTime;
             for (const e of raw) { e.timestamp += end + 100; player.addEvent(e); }
           }""",
        raw,
    )
    play_to_end(page)
    wait_quiet(page, replay.traffic, [world.evil])
    assert world.evil.requests == [], [f"{raw_hosts.name(r.host)} {r.path}" for r in world.evil.requests]
    reached = [c for c in world.evil.connections if c.kind == "http" or c.host.endswith(EVIL_SUFFIX)]
    assert reached == [], reached
    attempts = [r for r in replay.traffic.requests if host_of(r.url).endswith(EVIL_SUFFIX)]
    assert len({host_of(r.url) for r in attempts}) >= 15, "the raw recording did try many hosts"
    assert all(replay.traffic.failures.get(r.url) for r in attempts), "every one of them was stopped"
    page.screenshot(path=str(artifacts / "replay-no-contact-csp-only.png"))
    page.context.close()


def test_an_allowed_origin_is_loaded_without_a_referer(world: World, artifacts: Path) -> None:
    origin = world.allowed.url
    page_url = f"{origin}/shop/page.html"
    now = int(time.time() * 1000) - 5000
    stylesheet = (
        f"@import url({origin}/imported.css);\n.bg {{ background: url({origin}/bg.png) }}\n"
        f"@font-face {{ font-family: allowedfont; src: url({origin}/font.woff) }}\n"
        ".blocked { background: url(http://blocked.evil.test/x.png) }"
    )
    tree = El(
        "html",
        {},
        [
            El(
                "head",
                {},
                [
                    El("meta", {"name": "referrer", "content": "unsafe-url"}),
                    El("link", {"rel": "stylesheet", "href": f"{origin}/site.css"}),
                    El("style", {}, [stylesheet]),
                ],
            ),
            El(
                "body",
                {"background": f"{origin}/body-bg.png"},
                [
                    El("h1", {"id": "title"}, ["Allowed origin"]),
                    El("p", {"style": "font-family: allowedfont"}, ["In the allowed origin's font"]),
                    El("img", {"srcset": f"{origin}/srcset.png 1x"}),
                    El("div", {"style": f"width:20px;height:20px;background:url({origin}/style-attr.png)"}),
                    El(
                        "svg",
                        {"width": "20", "height": "20"},
                        [El("image", {"href": f"{origin}/svg-image.png", "width": "10", "height": "10"}, svg=True)],
                        svg=True,
                    ),
                    El("img", {"id": "allowed-img", "src": f"{origin}/allowed.png", "referrerpolicy": "unsafe-url"}),
                    El("img", {"id": "relative-img", "src": "relative.png"}),
                    El("img", {"id": "evil-img", "src": "http://blocked.evil.test/x.png"}),
                    El("div", {"class": "bg", "style": "width:20px;height:20px"}),
                    El("div", {"class": "blocked", "style": "width:20px;height:20px"}),
                    El("a", {"id": "allowed-link", "href": f"{origin}/next.html"}, ["next"]),
                ],
            ),
        ],
    )
    number(tree)
    events = [
        {"type": 4, "timestamp": now, "data": {"href": page_url, "width": 1000, "height": 700}},
        {
            "type": 2,
            "timestamp": now + 5,
            "data": {
                "node": {"type": 0, "id": 1, "childNodes": [serialized(tree)]},
                "initialOffset": {"left": 0, "top": 0},
            },
        },
        {
            "type": 3,
            "timestamp": now + 1000,
            "data": {"source": 1, "positions": [{"x": 5, "y": 5, "id": 1, "timeOffset": 0}]},
        },
    ]
    session_id = forge_recording(world.server, world.allowed_member, events, page_url)
    replay = open_replay(world, world.allowed_member, session_id)
    page = replay.page
    csp = replay.response.headers["content-security-policy"]
    for directive in ("img-src", "font-src", "media-src", "style-src"):
        assert f"{origin}" in next(d for d in csp.split("; ") if d.startswith(directive)), csp
    assert not CSP_WILDCARDS & set(csp.replace(";", " ").split()), csp
    assert page.evaluate("() => window.hmReplay.allowedOrigins") == [world.server.url, origin]
    play_to_end(page)
    frame = page.frame_locator(REPLAY_FRAME)
    frame.locator("#allowed-img").evaluate("img => img.decode()")
    assert frame.locator("#allowed-img").evaluate("img => img.naturalWidth") == 2, "the allowed image is shown"
    wait_quiet(page, replay.traffic, [world.evil, world.allowed])

    fetched = {(r.path, r.referer) for r in world.allowed.requests}
    # Element fetches, a linked and an imported stylesheet, and URLs of inline CSS (which Chromium would send
    # with the dashboard's origin as Referer but for the sanitiser's `referrer-policy(no-referrer)`).
    expected = ["/allowed.png", "/shop/relative.png", "/srcset.png", "/body-bg.png", "/svg-image.png", "/site.css"]
    expected += ["/imported.css", "/bg.png", "/style-attr.png", "/font.woff"]
    for path in expected:
        assert (path, None) in fetched, (path, sorted(world.allowed.requests, key=lambda r: r.path))
    assert all(r.referer is None for r in world.allowed.requests), world.allowed.requests
    assert world.evil.unexplained({"blocked.evil.test"}) == []
    assert frame.locator("#allowed-link").get_attribute("href") == f"{origin}/next.html"
    assert_no_referer_names_the_dashboard(world, replay)
    page.screenshot(path=str(artifacts / "replay-no-contact-allowed.png"))
    assert replay.errors == [], replay.errors
    page.context.close()


def test_the_recordings_markup_does_reach_the_listener_as_a_plain_page(world: World) -> None:
    """The control: the same elements in an ordinary page make Chromium contact many of the hosts, so the
    mapping works and the vectors are live; the replay's silence above is the replay's doing."""
    hosts = Hosts()
    _, tree = hostile_events(hosts, 0, PAGE_URL)
    world.evil.pages["/control.html"] = ("<!doctype html>" + as_html(tree)).encode()
    context = world.browser.new_context()
    page = context.new_page()
    traffic = Traffic(page)
    world.evil.reset()
    page.goto("http://control.evil.test/control.html")
    wait_quiet(page, traffic, [world.evil])
    context.close()
    contacted = {r.host for r in world.evil.requests} & set(hosts.vectors)
    names = sorted(hosts.vectors[h] for h in contacted)
    assert len(contacted) >= 15, names
    for vector in ("img src", "<style> @import url()", "style background url()", "svg image href", "iframe src"):
        assert vector in names, names


# The headers themselves (no browser needed; they sit here beside the browser tests that depend on them).


def test_only_plain_origins_reach_the_replay_csp() -> None:
    assert replay_origins(
        [
            "https://Shop.example",
            "http://127.0.0.1:8080",
            "https://bücher.example",
            "https://shop.example:443",
            "https://a.example; script-src *",
            "https://*.example.com",
            "http://[::1]:8000",
            "https://user:pw@a.example",
            "https://a.example/path",
            "javascript:alert(1)",
            "*",
            "",
        ]
    ) == ["https://shop.example", "http://127.0.0.1:8080", "https://xn--bcher-kva.example"]


def test_no_dashboard_csp_has_scheme_wildcards() -> None:
    for csp in (content_security_policy(), content_security_policy(["https://shop.example"])):
        assert not CSP_WILDCARDS & set(csp.replace(";", " ").split()), csp
    replay = dict(d.split(" ", 1) for d in content_security_policy(["https://shop.example"]).split("; "))
    assert replay["img-src"] == "'self' data: blob: https://shop.example"
    assert replay["script-src"] == "'self'" and replay["connect-src"] == "'self'" and replay["object-src"] == "'none'"
