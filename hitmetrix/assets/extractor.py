"""The URLs of stylesheets, images and fonts that a recording's rrweb events reference.

Read from full snapshots and mutations (``<link rel=stylesheet href>``,
``img src/srcset``, ``<picture><source srcset>``, ``video poster``, image
inputs, SVG images, ``background`` attributes, CSS of ``style`` attributes,
``<style>`` text and rrweb's inlined ``_cssText``), and from stylesheet-rule,
style-declaration, adopted-stylesheet and font events. CSS goes through the
tokenizer in ``css``: ``url()``, ``image-set()`` strings, ``@import`` and
``@font-face`` sources. Relative URLs resolve against the page's ``<base>`` or
URL (the last Meta event); ``data:``, ``blob:``, fragments and anything not
http(s) are left out. The result is in first-seen order, capped at
``MAX_URLS``: a recording is hostile input and may name millions.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from hitmetrix.assets.css import IMPORT, RESOURCE, css_urls

MAX_URLS = 300
MAX_URL_CHARS = 2048
_FULL_SNAPSHOT, _INCREMENTAL, _META = 2, 3, 4
_ELEMENT, _TEXT = 2, 3
_MUTATION, _STYLE_SHEET_RULE, _FONT, _STYLE_DECLARATION, _ADOPTED = 0, 8, 10, 13, 15
# Element → attributes whose value is one image URL to fetch.
_IMAGE_ATTRIBUTES = {
    "img": ("src",),
    "video": ("poster",),
    "input": ("src",),
    "image": ("href", "xlink:href"),
    "feimage": ("href", "xlink:href"),
    "body": ("background",),
    "table": ("background",),
    "td": ("background",),
    "th": ("background",),
}
_SRCSET_TAGS = frozenset({"img", "source"})
_CSS_ATTRIBUTES = frozenset({"style", "_csstext"})
_URL_WHITESPACE = str.maketrans("", "", "\t\n\r")


def normalise_url(value: str, base: str = "") -> str | None:
    """``value`` as an absolute http(s) URL without fragment (resolved against ``base``), or None."""
    value = value.strip(" \t\n\r\f\x00").translate(_URL_WHITESPACE)
    if not value or value.startswith("#") or len(value) > MAX_URL_CHARS:
        return None
    try:
        absolute = urljoin(base, value) if base else value
        parts = urlsplit(absolute)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        host = f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        return None
    url = urlunsplit((scheme, host, parts.path or "/", parts.query, ""))
    return url if len(url) <= MAX_URL_CHARS else None


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` (the HTML parser's split: a URL, then descriptors up to a comma)."""
    out: list[str] = []
    pos, size = 0, len(value)
    while pos < size:
        while pos < size and (value[pos] in " \t\n\r\f,"):
            pos += 1
        start = pos
        while pos < size and value[pos] not in " \t\n\r\f":
            pos += 1
        url = value[start:pos]
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            in_parens = False
            while pos < size and (in_parens or value[pos] != ","):
                if value[pos] == "(":
                    in_parens = True
                elif value[pos] == ")":
                    in_parens = False
                pos += 1
            pos += 1
        if url:
            out.append(url)
    return out


class UrlExtractor:
    """Collects URLs over a session's events in order; keep one per session to carry the page URL across chunks."""

    def __init__(self, page_url: str = "") -> None:
        self.page_url = page_url
        self.base_url = ""  # from a recorded <base href>
        self.urls: dict[str, None] = {}  # ordered set
        self._tags: dict[int, str] = {}  # rrweb node id → lower-case tag
        self._style_text: set[int] = set()  # text nodes of <style> elements

    @property
    def full(self) -> bool:
        return len(self.urls) >= MAX_URLS

    def add(self, value: str, base: str | None = None) -> None:
        if self.full or not isinstance(value, str):
            return
        url = normalise_url(value, (self.base_url or self.page_url) if base is None else base)
        if url is not None:
            self.urls[url] = None

    def add_css(self, css: Any) -> None:
        if not isinstance(css, str) or self.full:
            return
        for url, use in css_urls(css):
            if use in (RESOURCE, IMPORT):
                self.add(url)

    def events(self, events: Any) -> list[str]:
        """Read a chunk's events; returns every URL found so far."""
        for event in events if isinstance(events, list) else []:
            if self.full:
                break
            if isinstance(event, dict):
                self._event(event)
        return list(self.urls)

    def _event(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type"), event.get("data")
        if not isinstance(data, dict):
            return
        if kind == _META:
            href = data.get("href")
            if isinstance(href, str) and href.lower().startswith(("http:", "https:")):
                self.page_url, self.base_url = href, ""
        elif kind == _FULL_SNAPSHOT:
            self._tags.clear()
            self._style_text.clear()
            self._walk(data.get("node"), "")
        elif kind == _INCREMENTAL:
            self._incremental(data)

    def _incremental(self, data: dict[str, Any]) -> None:
        source = data.get("source")
        if source == _MUTATION:
            for add in _list(data.get("adds")):
                if isinstance(add, dict):
                    parent = add.get("parentId")
                    self._walk(add.get("node"), self._tags.get(parent, "") if isinstance(parent, int) else "")
            for change in _list(data.get("attributes")):
                if isinstance(change, dict) and isinstance(change.get("attributes"), dict):
                    node_id = change.get("id")
                    tag = self._tags.get(node_id, "") if isinstance(node_id, int) else ""
                    self._attributes(tag, change["attributes"])
            for text in _list(data.get("texts")):
                if isinstance(text, dict) and text.get("id") in self._style_text:
                    self.add_css(text.get("value"))
        elif source == _STYLE_SHEET_RULE:
            self._rules(data)
        elif source == _STYLE_DECLARATION:
            declaration = data.get("set")
            if isinstance(declaration, dict):
                self.add_css(declaration.get("value"))
        elif source == _ADOPTED:
            for style in _list(data.get("styles")):
                if isinstance(style, dict):
                    self._rules({"adds": style.get("rules")})
        elif source == _FONT:
            self.add_css(data.get("fontSource"))

    def _rules(self, data: dict[str, Any]) -> None:
        for add in _list(data.get("adds")):
            if isinstance(add, dict):
                self.add_css(add.get("rule"))
        self.add_css(data.get("replace"))
        self.add_css(data.get("replaceSync"))

    def _walk(self, root: Any, root_parent_tag: str) -> None:
        stack: list[tuple[Any, str]] = [(root, root_parent_tag)]  # iterative: a hostile tree may be very deep
        while stack and not self.full:
            node, parent_tag = stack.pop()
            if not isinstance(node, dict):
                continue
            tag = parent_tag
            if node.get("type") == _ELEMENT:
                name = node.get("tagName")
                tag = name.lower() if isinstance(name, str) else ""
                node_id = node.get("id")
                if isinstance(node_id, int):
                    self._tags[node_id] = tag
                attributes = node.get("attributes")
                if isinstance(attributes, dict):
                    self._attributes(tag, attributes)
            elif node.get("type") == _TEXT and parent_tag.rsplit(":", 1)[-1] == "style":
                self.add_css(node.get("textContent"))
                if isinstance(node.get("id"), int):
                    self._style_text.add(node["id"])
            children = node.get("childNodes")
            if isinstance(children, list):
                stack.extend((child, tag) for child in reversed(children))

    def _attributes(self, tag: str, attributes: dict[str, Any]) -> None:
        local = tag.rsplit(":", 1)[-1]
        lowered = {str(name).lower(): value for name, value in attributes.items()}
        if local == "base" and isinstance(lowered.get("href"), str):
            base = normalise_url(lowered["href"], self.page_url)
            if base:
                self.base_url = base
        if local == "link" and isinstance(lowered.get("href"), str):
            rel = lowered.get("rel")
            if isinstance(rel, str) and "stylesheet" in rel.lower().split():
                self.add(lowered["href"])
        for name in _IMAGE_ATTRIBUTES.get(local, ()):
            if isinstance(lowered.get(name), str):
                self.add(lowered[name])
        if local in _SRCSET_TAGS and isinstance(lowered.get("srcset"), str):
            for url in srcset_urls(lowered["srcset"]):
                self.add(url)
        for name in _CSS_ATTRIBUTES:
            value = lowered.get(name)
            if isinstance(value, str):
                self.add_css(value)
            elif name == "style" and isinstance(value, dict):  # rrweb's style diff: property → value
                for change in value.values():
                    self.add_css(change[0] if isinstance(change, list) and change else change)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
