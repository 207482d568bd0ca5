"""A captured stylesheet as served to a replay: no URL in it may reach anything but captured copies or the
project's allowed origins, and none may resolve against the dashboard."""

from __future__ import annotations

from pathlib import Path

from hitmetrix.assets.origin import allowed_origins, origin_of
from hitmetrix.assets.store import AssetStore
from hitmetrix.assets.stylesheet import NO_REFERRER_MODIFIER, asset_path, replay_stylesheet, served_stylesheet

BASE = "https://www.example.com/css/site.css"
CSS = (
    "@import 'theme.css';\n"
    "@import url(https://evil.test/steal.css);\n"
    "@namespace svg url(http://www.w3.org/2000/svg);\n"
    "@font-face { font-family: T; src: url(../fonts/t.woff2) format('woff2'), url(/fonts/t.woff) }\n"
    ".a { background: url(data:image/png;base64,AA==) }\n"
    ".b { background: \\75 rl(https://evil.test/x.png) }\n"
    ".c { background: image-set('hi.png' 2x) }\n"
    ".d { filter: url(#blur) }\n"
)


def test_urls_become_asset_urls_site_urls_or_nothing() -> None:
    captured = {
        "https://www.example.com/css/theme.css": "/projects/1/assets/aa",
        "https://www.example.com/fonts/t.woff2": "/projects/1/assets/bb",
    }
    fallback = allowed_origins(["https://www.example.com"])
    out = replay_stylesheet(CSS, BASE, captured.get, lambda url: origin_of(url) in fallback)
    assert out == (
        '@import url("/projects/1/assets/aa");\n'
        "\n"
        "@namespace svg url(http://www.w3.org/2000/svg);\n"
        "@font-face { font-family: T; src: url(\"/projects/1/assets/bb\") format('woff2'), "
        f'url("https://www.example.com/fonts/t.woff"{NO_REFERRER_MODIFIER}) }}\n'
        ".a { background: url(data:image/png;base64,AA==) }\n"
        '.b { background: url("about:invalid") }\n'
        f'.c {{ background: image-set(url("https://www.example.com/css/hi.png"{NO_REFERRER_MODIFIER}) 2x) }}\n'
        ".d { filter: url(#blur) }\n"
    )
    nothing_allowed = replay_stylesheet(CSS, BASE, lambda url: None, lambda url: False)
    assert "example.com" not in nothing_allowed and "evil" not in nothing_allowed and "@import" not in nothing_allowed


def test_served_stylesheet_uses_the_projects_captured_copies(tmp_path: Path) -> None:
    store = AssetStore(tmp_path / "assets")
    try:
        font = store.put_blob(b"font")
        store.record_ok(1, "https://www.example.com/fonts/t.woff2", font, "font/woff2")
        css = store.put_blob(CSS.encode())
        store.record_ok(1, BASE, css, "text/css")
        stored = store.stored(1, css)
        assert stored is not None
        out = served_stylesheet(store, 1, stored, CSS.encode(), frozenset()).decode()
        assert f'url("{asset_path(1, font)}")' in out
        assert "https://" not in out.replace("http://www.w3.org/2000/svg", "")
        store.record_ok(2, BASE, css, "text/css")
        other = served_stylesheet(store, 2, stored, CSS.encode(), frozenset()).decode()
        assert asset_path(1, font) not in other and font not in other, "another project's copies are not used"
    finally:
        store.close()
