"""The URLs a recording's rrweb events reference, resolved against the recorded page."""

from __future__ import annotations

from typing import Any

from hitmetrix.assets.extractor import MAX_URLS, UrlExtractor, normalise_url, srcset_urls
from tests.assets.rrweb import PAGE, element, snapshot, text


def test_full_snapshot_urls() -> None:
    events = snapshot(
        element(10, "img", {"src": "img/a.png", "srcset": "b.png 1x, /c.png 2x"}),
        element(11, "picture", {}, element(12, "source", {"srcset": "d.webp"}), element(13, "img", {"src": "e.png"})),
        element(14, "video", {"poster": "poster.jpg", "src": "movie.mp4"}),
        element(15, "div", {"style": "background: url(f.png)"}),
        element(16, "a", {"href": "next.html"}),
        element(17, "img", {"src": "data:image/png;base64,AA=="}),
        element(18, "img", {"src": "javascript:alert(1)"}),
        element(19, "image", {"xlink:href": "g.svg"}),
        head=(
            element(5, "link", {"rel": "stylesheet", "href": "/css/site.css"}),
            element(6, "link", {"rel": "preload", "href": "/preload.css"}),
            element(7, "style", {}, text(8, "@import 'imp.css'; @font-face { src: url(/fonts/f.woff2) }")),
            element(9, "style", {"_cssText": ".x { background: url(https://cdn.example.net/x.png) }"}),
        ),
    )
    urls = UrlExtractor().events(events)
    base = "https://www.example.com"
    assert urls == [
        f"{base}/css/site.css",
        f"{base}/docs/imp.css",
        f"{base}/fonts/f.woff2",
        "https://cdn.example.net/x.png",
        f"{base}/docs/img/a.png",
        f"{base}/docs/b.png",
        f"{base}/c.png",
        f"{base}/docs/d.webp",
        f"{base}/docs/e.png",
        f"{base}/docs/poster.jpg",
        f"{base}/docs/f.png",
        f"{base}/docs/g.svg",
    ]


def test_incremental_events_and_base_href() -> None:
    extractor = UrlExtractor()
    extractor.events(snapshot(head=(element(5, "base", {"href": "/base-dir/"}), element(6, "style", {}, text(7, "")))))
    events = [
        {
            "type": 3,
            "timestamp": 3,
            "data": {
                "source": 0,
                "adds": [{"parentId": 4, "node": element(20, "img", {"src": "m.png"})}],
                "attributes": [{"id": 20, "attributes": {"srcset": "n.png 2x", "style": {"background": "url(o.png)"}}}],
                "texts": [{"id": 7, "value": "a { background: url(p.png) }"}],
            },
        },
        {
            "type": 3,
            "timestamp": 4,
            "data": {
                "source": 8,
                "adds": [{"rule": ".q { background: url(q.png) }"}],
                "replaceSync": "@import 'r.css';",
            },
        },
        {"type": 3, "timestamp": 5, "data": {"source": 13, "set": {"property": "background", "value": "url(s.png)"}}},
        {
            "type": 3,
            "timestamp": 6,
            "data": {"source": 15, "styles": [{"rules": [{"rule": "@font-face{src:url(t.woff)}"}]}]},
        },
        {"type": 3, "timestamp": 7, "data": {"source": 10, "family": "F", "fontSource": "url(u.woff2)"}},
    ]
    urls = extractor.events(events)
    names = [url.rsplit("/", 1)[1] for url in urls]
    assert names == ["m.png", "n.png", "o.png", "p.png", "q.png", "r.css", "s.png", "t.woff", "u.woff2"]
    assert all(url.startswith("https://www.example.com/base-dir/") for url in urls), urls


def test_page_url_carries_across_chunks_and_hostile_input_is_bounded() -> None:
    first = UrlExtractor()
    first.events(snapshot())
    later = UrlExtractor(first.page_url)
    later.events([{"type": 3, "timestamp": 9, "data": {"source": 8, "adds": [{"rule": "a{b:url(v.png)}"}]}}])
    assert list(later.urls) == ["https://www.example.com/docs/v.png"]
    many = [element(100 + i, "img", {"src": f"/{i}.png"}) for i in range(MAX_URLS + 50)]
    assert len(UrlExtractor().events(snapshot(*many))) == MAX_URLS
    deep: dict[str, Any] = element(1000, "div")
    node = deep
    for i in range(20_000):  # deeper than any recursion limit
        child = element(2000 + i, "div")
        node["childNodes"] = [child]
        node = child
    node["childNodes"] = [element(99_999, "img", {"src": "/deep.png"})]
    assert UrlExtractor().events(snapshot(deep)) == ["https://www.example.com/deep.png"]
    junk: list[Any] = [
        None,
        1,
        "x",
        {"type": 2},
        {"type": 3, "data": {"source": 0, "adds": "no"}},
        {"type": 2, "data": {"node": []}},
    ]
    assert UrlExtractor().events(junk) == []


def test_normalise_url() -> None:
    assert normalise_url("  /a b.png#frag ", PAGE) == "https://www.example.com/a b.png"
    assert normalise_url("HTTP://Example.COM:80/x?q=1") == "http://example.com/x?q=1"
    assert normalise_url("https://example.com:8443") == "https://example.com:8443/"
    assert normalise_url("//cdn.example/x.png", PAGE) == "https://cdn.example/x.png"
    assert normalise_url("java\nscript:alert(1)", PAGE) is None
    assert normalise_url("relative.png") is None, "no page URL to resolve against"
    assert normalise_url("https://u:p@example.com/x") is None
    assert normalise_url("#top", PAGE) is None


def test_srcset() -> None:
    assert srcset_urls("a.png 1x, b.png 2x,c.png") == ["a.png", "b.png", "c.png"]
    assert srcset_urls("data:image/png;base64,AA== 1x, d.png (max-width: 1px) 2x") == [
        "data:image/png;base64,AA==",
        "d.png",
    ]
