"""URLs in CSS found as a browser's tokenizer finds them, and rewritten without touching anything else."""

from __future__ import annotations

import pytest

from hitmetrix.assets.css import BLOCKED_CSS_URL, IMPORT, NAMESPACE, RESOURCE, css_string, css_urls, decode_css
from hitmetrix.assets.css import rewrite_css_urls as rewrite


@pytest.mark.parametrize(
    ("css", "found"),
    [
        ("a{background:url(x.png)}", [("x.png", RESOURCE)]),
        ("a{background:url( 'x y.png' )}", [("x y.png", RESOURCE)]),
        ('a{background:URL("x.png")}', [("x.png", RESOURCE)]),
        (r"a{background:\75 rl(esc.png)}", [("esc.png", RESOURCE)]),
        (r"a{background:u\72l(esc2.png)}", [("esc2.png", RESOURCE)]),
        (r"a{background:url(a\29 b.png)}", [("a)b.png", RESOURCE)]),
        ("a{background:url(x.png) /* url(comment.png) */}", [("x.png", RESOURCE)]),
        ("a{content:'url(string.png)'}", []),
        ("a{width:10url(notone.png)}", []),
        ("@import 'a.css';@import url(b.css) screen;", [("a.css", IMPORT), ("b.css", IMPORT)]),
        ('@namespace svg "http://www.w3.org/2000/svg";', [("http://www.w3.org/2000/svg", NAMESPACE)]),
        (
            "@font-face{font-family:f;src:url(f.woff2) format('woff2'),url(f.woff) format('woff')}",
            [("f.woff2", RESOURCE), ("f.woff", RESOURCE)],
        ),
        ("a{background:image-set('a.png' 1x, url(b.png) 2x)}", [("a.png", RESOURCE), ("b.png", RESOURCE)]),
        ("a{background:-webkit-image-set('w.png' 1x)}", [("w.png", RESOURCE)]),
        ("a{src:src('s.woff')}", [("s.woff", RESOURCE)]),
        ("a{background:url(bad url.png)}", []),
        ("a{background:url(unterminated.png", [("unterminated.png", RESOURCE)]),
    ],
)
def test_finds_every_url(css: str, found: list[tuple[str, str]]) -> None:
    assert css_urls(css) == found


def test_rewrites_urls_and_keeps_everything_else() -> None:
    css = "@import 'gone.css';\n.a { color: red; background: url(x.png) no-repeat }\n.b { cursor: url(y.cur), auto }"
    out = rewrite(css, lambda url, use: None if url == "gone.css" else f"https://cdn.example/{url}", " m(1)")
    assert out == (
        '\n.a { color: red; background: url("https://cdn.example/x.png" m(1)) no-repeat }\n'
        '.b { cursor: url("https://cdn.example/y.cur" m(1)), auto }'
    )


def test_blocks_what_the_policy_refuses_and_image_functions_it_cannot_read() -> None:
    css = ".a{background:url(http://evil.test/x.png)} .b{background:image-set(var(--u) 1x)}"
    out = rewrite(css, lambda url, use: None)
    assert out == f'.a{{background:url({css_string(BLOCKED_CSS_URL)})}} .b{{background:url("about:invalid")}}'
    assert (
        rewrite("a{b:url(data:image/png;base64,AA==)}", lambda url, use: url) == "a{b:url(data:image/png;base64,AA==)}"
    )


def test_css_string_round_trips() -> None:
    for value in ['a"b', "a\\b", "line\nbreak", "nul\x00", "ünï"]:
        assert css_urls(f"a{{b:url({css_string(value)})}}")[0][0] == value.replace("\x00", "\ufffd")


def test_decode_css() -> None:
    assert decode_css("\ufeffa{}".encode()) == "a{}"
    assert decode_css("é".encode("latin-1")) == "é"
