"""The asset fetcher against real HTTP servers on 127.0.0.1: what it fetches, and every refusal.

Host names are mapped to addresses by an injected resolver (the fetcher resolves once, checks, and connects to
that address), so a "public-looking" name can stand for 127.0.0.1 or 10.x without touching the system's DNS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from hitmetrix.assets.fetcher import AssetFetcher, Fetched, asset_type, looks_like_html
from hitmetrix.assets.origin import Refused, allowed_origins
from tests.assets.site import Site
from tests.support import wait_for

WOFF2 = b"wOF2" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="5"/></svg>'


def resolver_of(mapping: dict[str, list[str]], calls: list[str] | None = None) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in mapping:
            raise Refused(f"could not resolve {host}")
        return mapping[host]

    return resolve


def fetcher(**options: object) -> AssetFetcher:
    options.setdefault("resolver", resolver_of({}))
    return AssetFetcher(**options)  # type: ignore[arg-type]


def refusal(fetch: AssetFetcher, url: str, allowed: list[str]) -> str:
    with pytest.raises(Refused) as caught:
        fetch.fetch(url, allowed_origins(allowed))
    return str(caught.value)


def test_fetches_stylesheets_images_and_fonts_from_an_allowed_origin(site: Site) -> None:
    css = site.add("/s.css", "body { color: red }", "text/css; charset=utf-8")
    png = site.add("/i.png", PNG, "image/png")
    font = site.add("/fonts/f.woff2", WOFF2, "application/octet-stream")
    svg = site.add("/pic.svg", SVG_WITH_SCRIPT, "image/svg+xml")
    f = fetcher()
    try:
        got = {url: f.fetch(url, allowed_origins([site.url])) for url in (css, png, font, svg)}
    finally:
        f.close()
    assert got[css] == Fetched(css, css, "text/css", b"body { color: red }")
    assert (got[png].content_type, got[png].body) == ("image/png", PNG)
    assert (got[font].content_type, got[font].body) == ("font/woff2", WOFF2), "octet-stream font by its extension"
    assert got[svg].content_type == "image/svg+xml", "kept, and served as an image only (see asset_routes)"
    seen = site.requests[0].headers
    assert "referer" not in seen and "cookie" not in seen
    assert seen["user-agent"].startswith("Hitmetrix-AssetFetcher")
    assert seen["host"] == f"127.0.0.1:{site.port}"


def test_refuses_another_origin_and_never_contacts_it(site: Site, other_site: Site) -> None:
    url = other_site.add("/s.css", "a{}", "text/css")
    f = fetcher()
    assert "not one of the project's allowed origins" in refusal(f, url, [site.url])
    assert "not one of" in refusal(f, url.replace("http://", "https://"), [other_site.url]), "scheme is the origin's"
    assert "not one of" in refusal(f, url, [])
    assert other_site.requests == []


def test_refuses_what_is_no_http_url(site: Site) -> None:
    f = fetcher()
    assert "only http and https" in refusal(f, "ftp://127.0.0.1/x.css", ["ftp://127.0.0.1"])
    assert "only http and https" in refusal(f, "file:///etc/passwd", [site.url])
    user_url = f"http://user:pw@127.0.0.1:{site.port}/s.css"
    assert "not a URL the fetcher can use" in refusal(f, user_url, [site.url])
    assert "longer than" in refusal(f, site.url + "/" + "a" * 3000, [site.url])
    assert site.requests == []


def test_refuses_a_redirect_off_the_allowed_origins(site: Site, other_site: Site) -> None:
    target = other_site.add("/evil.css", "a{}", "text/css")
    site.add("/s.css", status=302, headers={"Location": target})
    site.add("/to-file", status=301, headers={"Location": "file:///etc/passwd"})
    f = fetcher()
    assert "not one of the project's allowed origins" in refusal(f, site.url + "/s.css", [site.url])
    assert "only http and https" in refusal(f, site.url + "/to-file", [site.url])
    assert other_site.requests == []
    assert site.hits["/s.css"] == 1


def test_follows_at_most_three_redirects_each_checked(site: Site) -> None:
    site.add("/r1", status=301, headers={"Location": "/r2"})
    site.add("/r2", status=307, headers={"Location": f"{site.url}/r3"})
    site.add("/r3", status=308, headers={"Location": "final.css"})
    site.add("/final.css", "a{}", "text/css")
    site.add("/loop", status=302, headers={"Location": "/loop"})
    f = fetcher()
    got = f.fetch(site.url + "/r1", allowed_origins([site.url]))
    assert (got.url, got.final_url, got.body) == (site.url + "/r1", site.url + "/final.css", b"a{}")
    assert "more than 3 redirects" in refusal(f, site.url + "/loop", [site.url])
    assert site.hits["/loop"] == 4, "the first request and three redirects"


def test_refuses_a_name_that_resolves_to_a_private_address_the_origin_does_not_name(site: Site) -> None:
    site.add("/s.css", "a{}", "text/css")
    names = {"site.test": ["127.0.0.1"], "intranet.test": ["10.0.0.7"], "mixed.test": ["10.1.1.1", "192.168.1.1"]}
    f = fetcher(resolver=resolver_of(names))
    for host in names:
        origin = f"http://{host}:{site.port}"
        assert "resolves only to private or reserved addresses" in refusal(f, f"{origin}/s.css", [origin]), host
    assert site.requests == [], "no connection was made"


def test_a_private_address_is_fetched_when_the_origin_names_it(site: Site) -> None:
    """`http://127.0.0.1:PORT` names the loopback address itself; `localhost` means loopback by definition."""
    site.add("/s.css", "a{}", "text/css")
    calls: list[str] = []
    f = fetcher(resolver=resolver_of({"localhost": ["127.0.0.1"]}, calls))
    assert f.fetch(site.url + "/s.css", allowed_origins([site.url])).body == b"a{}"
    local = f"http://localhost:{site.port}"
    assert f.fetch(local + "/s.css", allowed_origins([local])).body == b"a{}"
    assert calls == ["localhost"], "resolved once, and that address was connected to (no second lookup)"
    assert site.requests[-1].headers["host"] == f"localhost:{site.port}", "the request still names the host"
    elsewhere = fetcher(resolver=resolver_of({"localhost": ["10.0.0.1"]}))
    assert "private or reserved" in refusal(elsewhere, local + "/s.css", [local]), "localhost must be loopback"
    assert "not an address to fetch from" in refusal(
        f, f"http://0.0.0.0:{site.port}/s.css", [f"http://0.0.0.0:{site.port}"]
    )


def test_refuses_oversize_bodies_declared_or_not(site: Site) -> None:
    site.add("/big.png", b"x" * 2048, "image/png")
    site.add("/big-chunked.png", b"x" * 4096, "image/png", chunked=True)
    site.add("/small.png", b"x" * 1000, "image/png", chunked=True)
    f = fetcher(max_asset_bytes=1024)
    assert "larger than 1024 bytes (2048)" in refusal(f, site.url + "/big.png", [site.url])
    assert "larger than 1024 bytes" in refusal(f, site.url + "/big-chunked.png", [site.url])
    assert len(f.fetch(site.url + "/small.png", allowed_origins([site.url])).body) == 1000


def test_gives_up_on_a_slow_answer_and_a_slow_body(site: Site) -> None:
    site.add("/slow.css", "a{}", "text/css", hold_s=30)
    site.add("/trickle.png", b"x" * 8192, "image/png", trickle_s=0.2)
    f = fetcher(total_timeout_s=0.5)
    assert "no answer within 0.5 s" in refusal(f, site.url + "/slow.css", [site.url])
    assert "not complete within 0.5 s" in refusal(f, site.url + "/trickle.png", [site.url])


@pytest.mark.parametrize(
    ("content_type", "path", "body", "reason"),
    [
        ("text/html", "/page.css", "<p>hi</p>", "content type 'text/html'"),
        ("application/javascript", "/x.css", "alert(1)", "content type 'application/javascript'"),
        ("text/css", "/fake.css", "<!DOCTYPE html><script>alert(1)</script>", "the body is an HTML page"),
        ("image/png", "/fake.png", "<html><script>alert(1)</script></html>", "the body is an HTML page"),
        ("image/svg+xml", "/page.svg", "<html><body><script>alert(1)</script>", "the body is an HTML page"),
        ("application/octet-stream", "/blob.bin", "\x00\x01", "content type 'application/octet-stream'"),
        ("text/plain", "/f.woff2", "wOF2", "content type 'text/plain'"),
    ],
)
def test_refuses_what_is_no_stylesheet_image_or_font(
    site: Site, content_type: str, path: str, body: str, reason: str
) -> None:
    site.add(path, body, content_type)
    assert reason in refusal(fetcher(), site.url + path, [site.url])


def test_refuses_error_statuses(site: Site) -> None:
    site.add("/gone.png", status=410, content_type="image/png")
    f = fetcher()
    assert refusal(f, site.url + "/gone.png", [site.url]) == "HTTP 410"
    assert refusal(f, site.url + "/missing.png", [site.url]) == "HTTP 404"


def test_keeps_no_cookies(site: Site) -> None:
    site.add("/a.png", PNG, "image/png", headers={"Set-Cookie": "sid=secret; Path=/"})
    f = fetcher()
    allowed = allowed_origins([site.url])
    f.fetch(site.url + "/a.png", allowed)
    f.fetch(site.url + "/a.png", allowed)
    assert all("cookie" not in seen.headers for seen in site.requests)


def test_at_most_n_fetches_at_once_per_origin(site: Site) -> None:
    for i in range(6):
        site.add(f"/{i}.png", PNG, "image/png", gated=True)
    f = fetcher(per_origin_concurrency=2)
    allowed = allowed_origins([site.url])
    results: list[Fetched] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(f.fetch(f"{site.url}/{i}.png", allowed))) for i in range(6)
    ]
    for thread in threads:
        thread.start()
    for left in range(6, 0, -1):
        # With six fetches waiting, as many as allowed reach the server; then one is let go.
        wait_for(lambda left=left: site.in_flight == min(2, left), 10, what=f"{min(2, left)} requests in flight")
        site.gate.release()
    for thread in threads:
        thread.join(10)
    assert len(results) == 6
    assert site.max_in_flight == 2


def test_content_type_rules() -> None:
    assert asset_type("text/css; charset=utf-8", "http://a/x") == "text/css"
    assert asset_type("IMAGE/WebP", "http://a/x") == "image/webp"
    assert asset_type("font/woff2", "http://a/x") == "font/woff2"
    assert asset_type("application/font-woff", "http://a/x") == "application/font-woff"
    assert asset_type("application/octet-stream", "http://a/f.TTF?v=2") == "font/ttf"
    assert asset_type("", "http://a/f.eot") == "application/vnd.ms-fontobject"
    assert asset_type("font/otf", "http://a/x") == "font/otf"
    for refused in ("text/html", "application/javascript", "image/", "image/a/b", "image/png x", "font/", "x/y"):
        assert asset_type(refused, "http://a/f.woff") is None, refused
    assert looks_like_html(b"\xef\xbb\xbf  <HTML>", "text/css")
    assert not looks_like_html(b"body { color: red }", "text/css")
    assert not looks_like_html(SVG_WITH_SCRIPT, "image/svg+xml")
