"""Builders of rrweb events (serialized nodes, snapshots) for asset-capture tests."""

from __future__ import annotations

from typing import Any

PAGE = "https://www.example.com/docs/page.html"


def element(node_id: int, tag: str, attributes: dict[str, Any] | None = None, *children: Any) -> dict[str, Any]:
    return {"type": 2, "id": node_id, "tagName": tag, "attributes": attributes or {}, "childNodes": list(children)}


def text(node_id: int, value: str) -> dict[str, Any]:
    return {"type": 3, "id": node_id, "textContent": value}


def snapshot(*body: Any, head: tuple[Any, ...] = (), page: str = PAGE, start_ms: int = 1) -> list[dict[str, Any]]:
    """A Meta event for ``page`` and a full snapshot of an html/head/body document (ids 1-4 are taken)."""
    html = element(2, "html", {}, element(3, "head", {}, *head), element(4, "body", {}, *body))
    return [
        {"type": 4, "timestamp": start_ms, "data": {"href": page, "width": 1000, "height": 700}},
        {
            "type": 2,
            "timestamp": start_ms + 1,
            "data": {"node": {"type": 0, "id": 1, "childNodes": [html]}, "initialOffset": {"left": 0, "top": 0}},
        },
    ]
