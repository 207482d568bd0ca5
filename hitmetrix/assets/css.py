"""Every URL in a piece of CSS, found the way a browser's tokenizer finds it, and a rewriter built on it.

The server-side twin of the replay's ``cssurls.ts``: the asset worker reads a
fetched stylesheet's ``url()``s and ``@import``s (fonts!) to fetch them too, and
the asset route rewrites them to dashboard asset URLs before a viewer's browser
sees the stylesheet. A regex is not enough for that second use: ``\\75 rl(…)`` is
a ``url(`` to the browser, and one URL missed would be fetched by the viewer's
browser from wherever it points. Only what can make a browser fetch is looked
at: ``url(…)`` (quoted or not), strings directly inside ``src()``, ``image()``,
``image-set()`` and ``-webkit-image-set()``, and the string of an ``@import``
(and of an ``@namespace``, which the policy is told about). Everything else keeps
its exact text.
"""

from __future__ import annotations

import collections
import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

# What a URL is for: a rule's resource (image, font, cursor…), a whole imported stylesheet, or an @namespace.
RESOURCE, IMPORT, NAMESPACE = "resource", "import", "namespace"
# The URL to write instead (the same string keeps the original text), or None to block it.
CssUrlPolicy = Callable[[str, str], "str | None"]

BLOCKED_CSS_URL = "about:invalid"
_IMAGE_FUNCTIONS = frozenset({"image", "image-set", "-webkit-image-set", "src"})
# What may sit directly in an image function besides strings; anything else (var(), attr()…) could hand
# it a string nobody sees, so the whole function is blocked.
_IMAGE_ARGUMENT_FUNCTIONS = re.compile(
    r"^(?:url|type|(?:-webkit-)?(?:image-set|cross-fade)|(?:-webkit-)?(?:repeating-)?(?:linear|radial|conic)-gradient"
    r"|calc|min|max|clamp)$"
)
_LOCAL_URL = re.compile(r"^\s*(?:#|data:|blob:|about:|$)", re.I)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
# Runs the tokenizer takes whole (it reads character by character only where escapes make it necessary).
_NAME_RUN = re.compile("[A-Za-z0-9_\\-\u0080-\U0010ffff\x00]+")
_SPACES = re.compile(r"[ \t\n\r\f]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_PLAIN_DOUBLE = re.compile(r'"[^"\\\n\r\f]*"')
_PLAIN_SINGLE = re.compile(r"'[^'\\\n\r\f]*'")
_CLOSERS = {")": "(", "]": "[", "}": "{"}


def _newline(c: str) -> bool:
    return c in ("\n", "\r", "\f")


def _space(c: str) -> bool:
    return c in (" ", "\t", "\n", "\r", "\f")


def _digit(c: str) -> bool:
    return "0" <= c <= "9" and c != ""


def _hex(c: str) -> bool:
    return c != "" and c in "0123456789abcdefABCDEF"


def _name_start(c: str) -> bool:  # NUL counts: the browser reads it as U+FFFD
    return c != "" and ("a" <= c <= "z" or "A" <= c <= "Z" or c == "_" or c >= "\u0080" or c == "\x00")


def _name(c: str) -> bool:
    return _name_start(c) or _digit(c) or c == "-"


def _non_printable(c: str) -> bool:
    return c != "" and ("\x00" <= c <= "\x08" or c == "\x0b" or "\x0e" <= c <= "\x1f" or c == "\x7f")


def css_string(value: str) -> str:
    """A double-quoted CSS string that the tokenizer reads back as exactly ``value``."""
    out = []
    for c in value:
        if c == "\x00":
            out.append("\ufffd")
        elif c in '\\"' or c < " " or c == "\x7f":
            out.append(f"\\{ord(c):x} ")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


class _Tokenizer:
    def __init__(self, css: str) -> None:
        self.css = css
        self.pos = 0

    def at(self, offset: int = 0) -> str:
        i = self.pos + offset
        return self.css[i] if 0 <= i < len(self.css) else ""

    def valid_escape(self, offset: int = 0) -> bool:
        return self.at(offset) == "\\" and not _newline(self.at(offset + 1))

    def starts_ident(self, offset: int = 0) -> bool:
        c = self.at(offset)
        if c == "-":
            nxt = self.at(offset + 1)
            return _name_start(nxt) or nxt == "-" or self.valid_escape(offset + 1)
        return _name_start(c) or self.valid_escape(offset)

    def starts_number(self) -> bool:
        c = self.at()
        if c in ("+", "-"):
            return _digit(self.at(1)) or (self.at(1) == "." and _digit(self.at(2)))
        if c == ".":
            return _digit(self.at(1))
        return _digit(c)

    def escape(self) -> str:
        self.pos += 1  # the backslash
        if self.pos >= len(self.css):
            return "\ufffd"
        if _hex(self.at()):
            digits = ""
            while len(digits) < 6 and _hex(self.at()):
                digits += self.at()
                self.pos += 1
            if self.at() == "\r" and self.at(1) == "\n":
                self.pos += 2
            elif _space(self.at()):
                self.pos += 1
            code = int(digits, 16)
            return "\ufffd" if code == 0 or 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else chr(code)
        c = self.at()
        self.pos += 1
        return c

    def name(self) -> str:
        out: list[str] = []
        while True:
            run = _NAME_RUN.match(self.css, self.pos)
            if run is not None:
                out.append(run.group().replace("\x00", "\ufffd"))
                self.pos = run.end()
            elif self.valid_escape():
                out.append(self.escape())
            else:
                return "".join(out)

    def string(self) -> tuple[str, bool]:
        """A string token from its opening quote: (value, bad)."""
        quote = self.at()
        plain = (_PLAIN_DOUBLE if quote == '"' else _PLAIN_SINGLE).match(self.css, self.pos)
        if plain is not None:  # the common case: no escape, no newline
            self.pos = plain.end()
            return plain.group()[1:-1].replace("\x00", "\ufffd"), False
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.css):
            c = self.at()
            if c == quote:
                self.pos += 1
                return "".join(out), False
            if _newline(c):
                return "".join(out), True
            if c == "\\":
                if self.pos + 1 >= len(self.css):
                    self.pos += 1
                elif _newline(self.at(1)):
                    self.pos += 3 if self.at(1) == "\r" and self.at(2) == "\n" else 2
                else:
                    out.append(self.escape())
                continue
            out.append("\ufffd" if c == "\x00" else c)
            self.pos += 1
        return "".join(out), False

    def unquoted_url(self) -> tuple[str, bool]:
        out: list[str] = []
        while self.pos < len(self.css):
            c = self.at()
            if c == ")":
                self.pos += 1
                return "".join(out), False
            if _space(c):
                while _space(self.at()):
                    self.pos += 1
                if self.at() == ")" or self.pos >= len(self.css):
                    continue
                self.bad_url_remnants()
                return "".join(out), True
            if c in ('"', "'", "(") or _non_printable(c):
                self.bad_url_remnants()
                return "".join(out), True
            if c == "\\":
                if self.valid_escape():
                    out.append(self.escape())
                    continue
                self.bad_url_remnants()
                return "".join(out), True
            out.append(c)
            self.pos += 1
        return "".join(out), False

    def bad_url_remnants(self) -> None:
        while self.pos < len(self.css):
            if self.at() == ")":
                self.pos += 1
                return
            if self.valid_escape():
                self.escape()
            else:
                self.pos += 1

    def number(self) -> None:
        found = _NUMBER.match(self.css, self.pos)
        if found is not None:
            self.pos = found.end()
        if self.starts_ident():
            self.name()  # a dimension: `10url(` is the unit "url" and a plain parenthesis
        elif self.at() == "%":
            self.pos += 1


@dataclass
class _Frame:
    kind: str  # "(", "[", "{" or "fn"
    name: str
    start: int
    first_edit: int
    url: str | None = None
    tainted: bool = False


@dataclass
class _AtRule:
    kind: str
    start: int
    depth: int
    first_edit: int
    blocked: bool = False


def rewrite_css_urls(css: str, policy: CssUrlPolicy, fetch_modifiers: str | Callable[[str], str] = "") -> str:
    """``css`` with every URL passed through ``policy``.

    A URL that will be fetched is written ``url("…"`` + ``fetch_modifiers`` + ``)`` (a function of the URL
    gives each its own modifiers); a blocked one becomes
    ``url("about:invalid")``, and an ``@import`` whose URL is blocked is removed up to its ``;``.
    URLs that fetch nothing (``data:``, ``#…``) and that the policy keeps keep their text.
    """
    if "(" not in css and "@" not in css:
        return css

    def modifiers(url: str) -> str:
        return fetch_modifiers(url) if callable(fetch_modifiers) else fetch_modifiers

    t = _Tokenizer(css)
    edits: list[tuple[int, int, str]] = []
    stack: list[_Frame] = []
    at_rule: _AtRule | None = None

    def end_at_rule(end: int) -> None:
        nonlocal at_rule
        if at_rule is not None and at_rule.blocked and at_rule.kind == IMPORT:
            del edits[at_rule.first_edit :]
            edits.append((at_rule.start, end, ""))
        at_rule = None

    def use() -> str:
        return at_rule.kind if at_rule is not None and len(stack) == at_rule.depth else RESOURCE

    def blocked(start: int, end: int) -> None:
        if at_rule is not None:
            at_rule.blocked = True
        edits.append((start, end, f"url({css_string(BLOCKED_CSS_URL)})"))

    def found(url: str | None, start: int, end: int) -> None:
        how = use()
        safe = None if url is None else policy(url, how)
        if safe is None:
            blocked(start, end)
            return
        fetched = not _LOCAL_URL.match(safe) and how != NAMESPACE
        if safe == url and not fetched:
            return
        edits.append((start, end, f"url({css_string(safe)}{modifiers(safe) if fetched else ''})"))

    def close(frame: _Frame, end: int) -> None:
        if frame.kind != "fn":
            return
        if frame.name in ("url", "src"):
            del edits[frame.first_edit :]
            found(frame.url, frame.start, end)
        elif frame.name in _IMAGE_FUNCTIONS and frame.tainted:
            del edits[frame.first_edit :]
            blocked(frame.start, end)

    while t.pos < len(css):
        start = t.pos
        c = t.at()
        top = stack[-1] if stack else None
        if c == "/" and t.at(1) == "*":
            end = css.find("*/", start + 2)
            t.pos = len(css) if end < 0 else end + 2
        elif c in ('"', "'"):
            value, bad = t.string()
            if top is not None and top.kind == "fn" and top.name in ("url", "src"):
                if not bad and top.url is None:
                    top.url = value
            elif top is not None and top.kind == "fn" and top.name in _IMAGE_FUNCTIONS:
                if not bad:
                    found(value, start, t.pos)
            elif at_rule is not None and len(stack) == at_rule.depth and not bad:
                found(value, start, t.pos)
        elif _space(c):
            t.pos = _SPACES.match(css, t.pos).end()  # type: ignore[union-attr] # c is one
        elif t.starts_number():
            t.number()
        elif c == "-" and t.at(1) == "-" and t.at(2) == ">":
            t.pos += 3
        elif t.starts_ident():
            name = t.name().lower()
            if t.at() != "(":
                continue
            t.pos += 1
            if name == "url":
                ahead = 0
                while _space(t.at(ahead)):
                    ahead += 1
                if t.at(ahead) not in ('"', "'"):
                    t.pos += ahead
                    value, bad = t.unquoted_url()
                    if not bad:
                        found(value, start, t.pos)
                    continue
            in_image_function = top is not None and top.kind == "fn" and top.name in _IMAGE_FUNCTIONS
            if in_image_function and not _IMAGE_ARGUMENT_FUNCTIONS.match(name):
                assert top is not None
                top.tainted = True
            stack.append(_Frame("fn", name, start, len(edits)))
        elif c == "@" and t.starts_ident(1):
            t.pos += 1
            keyword = t.name().lower()
            if at_rule is None and keyword in (IMPORT, NAMESPACE):
                at_rule = _AtRule(keyword, start, len(stack), len(edits))
        elif c == "#" and (_name(t.at(1)) or t.valid_escape(1)):
            t.pos += 1
            t.name()
        else:
            t.pos += 1
            if c in _OPENERS:
                if c == "{" and at_rule is not None and len(stack) == at_rule.depth:
                    at_rule = None  # the prelude ended in a block: not an import
                stack.append(_Frame(c, "", start, len(edits)))
            elif c in _CLOSERS:
                opener = ("(" if top.kind == "fn" else top.kind) if top is not None else ""
                if top is not None and opener == _CLOSERS[c]:
                    stack.pop()
                    close(top, t.pos)
                    if at_rule is not None and len(stack) < at_rule.depth:
                        end_at_rule(start)
            elif c == ";" and at_rule is not None and len(stack) == at_rule.depth:
                end_at_rule(t.pos)
    while stack:  # the end of the input closes whatever is open, as it does for the browser
        close(stack.pop(), len(css))
    end_at_rule(len(css))
    if not edits:
        return css
    edits.sort(key=lambda edit: edit[0])
    out = []
    last = 0
    for start, end, text in edits:
        out.append(css[last:start] + text)
        last = end
    out.append(css[last:])
    return "".join(out)


def css_urls(css: str) -> list[tuple[str, str]]:
    """Every URL in ``css`` with what it is for (``resource``, ``import``, ``namespace``), in order.

    Remembered for the last ``CACHED_STYLESHEETS`` texts: every page view of a site carries the same
    stylesheets, and the tokenizer reads about a megabyte a second.
    """
    if "(" not in css and "@" not in css:
        return []
    if len(css) < CACHE_FROM_CHARS:  # a style attribute: quicker to read again than to remember
        return _collect_urls(css)
    digest = hashlib.blake2b(css.encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _cache_lock:
        cached = _url_cache.get(digest)
        if cached is not None:
            _url_cache.move_to_end(digest)
            return list(cached)
    found = _collect_urls(css)
    with _cache_lock:
        _url_cache[digest] = tuple(found)
        while len(_url_cache) > CACHED_STYLESHEETS:
            _url_cache.popitem(last=False)
    return found


def _collect_urls(css: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []

    def collect(url: str, use: str) -> str:
        found.append((url, use))
        return url

    rewrite_css_urls(css, collect)
    return found


CACHED_STYLESHEETS = 512
CACHE_FROM_CHARS = 2048
_url_cache: collections.OrderedDict[bytes, tuple[tuple[str, str], ...]] = collections.OrderedDict()
_cache_lock = threading.Lock()


def decode_css(body: bytes) -> str:
    """A stylesheet's text: UTF-8 (with or without BOM), else Latin-1, which decodes any bytes."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")
