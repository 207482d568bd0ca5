"""hitmetrix/capture/scrub.py: personal data masked, ordinary text kept, on a corpus of real-looking fields."""

from __future__ import annotations

import json
import time

import pytest

from hitmetrix.capture.scrub import allowed_query_keys, luhn_valid, scrub_props, scrub_text, scrub_url

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkFsaWNlIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)

SCRUBBED_TEXT = [
    ("Inbox (3) - alice.smith+news@example.co.uk - Mail", "Inbox (3) - [email] - Mail"),
    ("Welcome back, BOB@Example.COM!", "Welcome back, [email]!"),
    ("mailto:support@shop.example", "mailto:[email]"),
    ("contact bob%40corp.example.com", "contact [email]"),
    ("Paid with 4111 1111 1111 1111, thanks", "Paid with [card], thanks"),
    ("card 5555-5555-5555-4444 expires 12/27", "card [card] expires 12/27"),
    ("4012888888881881", "[card]"),
    ("Amex 378282246310005", "Amex [card]"),
    ("Amex 3782 822463 10005", "Amex [card]"),
    ("Discover 6011 0009 9013 9424", "Discover [card]"),
    ("19 digits 4111 1111 1111 1111 110", "19 digits [card]"),
    ("Authorization: Bearer abcdef123456.xyz-789", "Authorization: Bearer [token]"),
    ("basic dXNlcjpwYXNzd29yZA==", "basic [token]"),
    (f"session {JWT} expired", "session [token] expired"),
    ("sha1 3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a", "sha1 [token]"),
    ("key sk_live_51H8aBcDeFgHiJkLmNoPqRsTuV", "key [token]"),
    ("reset/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZg", "reset/[token]"),
    ("a@b.co", "[email]"),
]

KEPT_TEXT = [
    "Running shoes – Shop",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "npm i @babel/core@7.24.0",
    "img/logo@2x.png",
    "Follow us @shopexample",
    "v1.2.3-beta.4",
    "Price: €1,299.99 (was $1,499.00)",
    "Order #12345678",
    "ts 1764255600000 (ms) and 1764255600000123 (µs)",
    "2024-01-15 2024-01-16",
    "+44 20 7946 0958",
    "4111111111111112",  # Luhn fails
    "6011 0009 9013 9424 3",  # 6011000990139424 is a card, with a 3 after it it is not
    "550e8400-e29b-41d4-a716-446655440000",
    "/blog/how-to-install-python-3-on-ubuntu-22-04-lts-server",
    "Donaudampfschifffahrtsgesellschaftskapitaen",
    "abcdefghijklmnopqrstuvwxyzabcdefghij",  # long, but no digits
    "#main > div.card:nth-child(3) > a.btn",
    "Basic information about Bearer authentication",
    "Our Basic plan: 12 months",
    "",
]


@pytest.mark.parametrize(("text", "expected"), SCRUBBED_TEXT)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize("text", KEPT_TEXT)
def test_ordinary_text_is_kept(text: str) -> None:
    assert scrub_text(text) == text


def test_luhn() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710")


ALLOW = allowed_query_keys(("q", "page", "Lang"))

URLS = [
    (
        "https://shop.example/checkout?email=alice@example.com&utm_source=news&step=2#payment",
        "https://shop.example/checkout?email=*&utm_source=news&step=*#payment",
    ),
    (
        "https://shop.example/search?q=red+shoes&page=2&sort=price",
        "https://shop.example/search?q=red+shoes&page=2&sort=*",
    ),
    ("https://user:s3cret@shop.example/p/1?q=x", "https://shop.example/p/1?q=x"),
    ("https://app.example/#/reset?token=abc123&lang=en", "https://app.example/#/reset?token=*&lang=en"),
    (
        "https://app.example/cb#access_token=xyz&token_type=Bearer&expires_in=3600",
        "https://app.example/cb#access_token=*&token_type=*&expires_in=*",
    ),
    (
        "https://shop.example/u/alice%40example.com/profile?UTM_Campaign=x&utm_content=bob@example.com",
        "https://shop.example/u/[email]/profile?UTM_Campaign=x&utm_content=[email]",
    ),
    ("https://shop.example/search?utm%5Fmedium=mail&q=", "https://shop.example/search?utm%5Fmedium=mail&q="),
    ("https://shop.example/a?debug&ref=&x=1", "https://shop.example/a?debug&ref=&x=*"),
    (f"https://api.example/v1/cb/{JWT}", "https://api.example/v1/cb/[token]"),
    ("https://shop.example/pay/4111111111111111/done", "https://shop.example/pay/[card]/done"),
    ("/relative/path?x=1", "/relative/path?x=*"),
]

KEPT_URLS = [
    "https://shop.example/",
    "https://shop.example/orders/550e8400-e29b-41d4-a716-446655440000",
    "https://shop.example/#section-2",
    "https://shop.example/p/1?utm_source=newsletter&utm_medium=email",
    "https://shop.example/static/img/logo@2x.png",
    "https://shop.example/search?page=3",
    "",
]


@pytest.mark.parametrize(("url", "expected"), URLS)
def test_urls(url: str, expected: str) -> None:
    assert scrub_url(url, ALLOW) == expected


@pytest.mark.parametrize("url", KEPT_URLS)
def test_urls_kept(url: str) -> None:
    assert scrub_url(url, ALLOW) == url


def test_without_an_allow_list_only_utm_keys_are_kept() -> None:
    assert scrub_url("https://s.example/?q=a&utm_term=b") == "https://s.example/?q=*&utm_term=b"


def test_allow_list_forms() -> None:
    assert allowed_query_keys(None) == frozenset()
    assert allowed_query_keys(["Q", " page ", ""]) == {"q", "page"}
    assert allowed_query_keys("q, page\nsort") == {"q", "page", "sort"}  # a text the project may keep


def test_error_props() -> None:
    props = json.dumps(
        {
            "message": "Uncaught Error: no account for alice@example.com",
            "source": "https://shop.example/static/app.3f9a8b7c.js",
            "line": 12,
            "col": 5,
            "stack": (
                "Error: no account for alice@example.com\n"
                "    at login (https://shop.example/static/app.3f9a8b7c.js:12:5)\n"
                f"    at fetch (https://api.example/me?t={JWT}:1:1)"
            ),
        }
    )
    scrubbed = json.loads(scrub_props(props))
    assert scrubbed["message"] == "Uncaught Error: no account for [email]"
    assert scrubbed["source"] == "https://shop.example/static/app.3f9a8b7c.js"
    assert scrubbed["stack"].splitlines() == [
        "Error: no account for [email]",
        "    at login (https://shop.example/static/app.3f9a8b7c.js:12:5)",
        "    at fetch (https://api.example/me?t=[token]:1:1)",
    ]
    assert (scrubbed["line"], scrubbed["col"]) == (12, 5)


def test_custom_props_every_string_at_every_depth() -> None:
    props = json.dumps(
        {
            "plan": "pro",
            "price": 12.99,
            "contact": {"email": "bob@example.com", "cards": ["4111 1111 1111 1111", "n/a"]},
            "bob@example.com": True,
            "deep": [[[[[[{"auth": "Bearer abcdefgh12345"}]]]]]],
        }
    )
    assert json.loads(scrub_props(props)) == {
        "plan": "pro",
        "price": 12.99,
        "contact": {"email": "[email]", "cards": ["[card]", "n/a"]},
        "[email]": True,
        "deep": [[[[[[{"auth": "Bearer [token]"}]]]]]],
    }


def test_props_formatting_is_kept_and_escapes_are_looked_through() -> None:
    assert scrub_props('{"nav": "load"}') == '{"nav": "load"}'
    assert scrub_props('{"q": "say \\"hi\\" to \\u00e9"}') == '{"q": "say \\"hi\\" to \\u00e9"}'
    assert json.loads(scrub_props('{"e": "alice\\u0040example.com", "n": 1}')) == {"e": "[email]", "n": 1}
    deep = "[" * 400 + '"x@y.example"' + "]" * 400
    assert scrub_props(deep) == "[" * 400 + '"[email]"' + "]" * 400  # no recursion, whatever the depth


@pytest.mark.parametrize(
    "text",
    [
        "a@" * 1024,
        "a." * 1000 + "@",
        "x@" + "a." * 1000 + "1",
        ("a" * 63 + "@") * 32,
        "4" * 2048,
        "4111 " * 400,
        "4-" * 1000,
        "a1_" * 700,
        "Bearer " * 300,
        "eyJ" * 700,
        "%40" * 700,
    ],
    ids=lambda text: repr(text[:8]),
)
def test_pathological_text_costs_linear_time(text: str) -> None:
    started = time.perf_counter()
    scrub_text(text)
    scrub_url("https://x.example/?" + "&".join([text[:200]] * 10))
    scrub_props(json.dumps({"a": [text] * 4}))
    assert time.perf_counter() - started < 0.2  # ~1 ms; a backtracking pattern would take seconds
