"""Personal data scrubbed out of event fields on the server, before anything reaches the spool.

The tracker masks what visitors type; this catches what pages themselves put
in URLs, titles, link texts, error messages and props (docs/capture-api.md):

- e-mail addresses (also with ``%40`` for ``@``) become ``[email]``;
- card numbers (13–19 digits starting with 2–6, plain or in groups of 4 or
  Amex's 4-6-5, passing the Luhn check) become ``[card]``;
- secrets become ``[token]``: JWTs (``eyJ….….``), the credentials after
  ``Bearer``/``Basic`` (8+ characters with a digit, or 20+), and runs of 32+
  base64url characters with a 20+ character stretch (between ``-``/``_``) that
  mixes letters and digits — hex digests and API keys, not slugs like
  ``how-to-install-python-3-on-ubuntu``;
- in URLs, ``user:password@`` is removed and every query value is masked to
  ``*`` unless its key starts with ``utm_`` or is in the project's
  ``query_allowlist``; ``#k=v&…`` fragments (and the query part of ``#/route?k=v``)
  are masked the same way. Kept values are still scrubbed.

Kept on purpose: canonical UUIDs, ms timestamps (13 digits starting with 1),
prices, version numbers, short ids. Every pattern is compiled once, runs only
where its trigger can occur (no ``@``: no e-mail scan; under 32 characters: no
long-token scan), and is anchored at the start of a run, so its cost stays
linear in the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

import msgspec

EMAIL_MASK = "[email]"
CARD_MASK = "[card]"
TOKEN_MASK = "[token]"
VALUE_MASK = "*"

# Each pattern starts with a character class, which lets the regex engine skip ahead to where a
# match can begin; a lookbehind right after it makes a match start only where a run starts, so
# long runs are not rescanned from every position.
_EMAIL = re.compile(
    r"[A-Za-z0-9._%+-](?<![A-Za-z0-9._%+-].)[A-Za-z0-9._%+-]{0,63}(?:@|%40)"
    r"(?!\d+x\.)"  # logo@2x.png is a retina image, not an address
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
_CARD = re.compile(
    r"[2-6](?<![0-9A-Za-z].)(?:"
    r"[0-9]{12,18}"
    r"|[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,4}(?:\1[0-9]{1,3})?"
    r"|(?<=3)[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r")(?![0-9A-Za-z])"
)
_CREDENTIAL = re.compile(
    r"(?P<scheme>\b(?i:bearer|basic)\s+)(?P<credential>[A-Za-z0-9._~+/=-]{8,})"
    r"|eyJ(?<![A-Za-z0-9_-]...)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*)?"
)
_LONG_RUN = re.compile(r"[A-Za-z0-9_-](?<![A-Za-z0-9_-].)[A-Za-z0-9_-]{31,}")
_RUN_PIECES = re.compile(r"[-_]")
_HAS_DIGIT = re.compile(r"[0-9]")
_HAS_LETTER = re.compile(r"[A-Za-z]")
_MIN_EMAIL_CHARS = 6  # a@b.co
_MIN_CARD_CHARS = 13
_MIN_CREDENTIAL_CHARS = 14  # "Basic " and 8 characters
_LONG_RUN_CHARS = 32
_RANDOM_PIECE_CHARS = 20
# A credential of letters only is a word ("Basic information"), unless it is this long.
_WORDLIKE_CREDENTIAL_CHARS = 20

# A JSON string literal (a key or a value) in valid JSON text.
_JSON_STRING = re.compile(r'"((?:[^"\\]++|\\.)*+)"', re.S)
# Props text where none of these occur holds no string with a match, so the walk is skipped.
# Substring tests and run-anchored patterns: one alternation was the slowest part of capture.
_PROPS_TRIGGERS = ("@", "\\", "%40", "eyJ", "earer", "EARER", "asic", "ASIC")
_EIGHT_DIGITS = re.compile(r"[0-9](?<![0-9].)[0-9]{3}[ -]?[0-9]{4}")  # every card format starts so
_RUN_OF_32 = re.compile(r"[A-Za-z0-9_-](?<![A-Za-z0-9_-].)[A-Za-z0-9_-]{31}")


def scrub_text(text: str) -> str:
    """``text`` with e-mail addresses, card numbers and tokens masked."""
    size = len(text)
    if size < _MIN_EMAIL_CHARS:
        return text
    if "@" in text or "%40" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    if size >= _MIN_CARD_CHARS:
        text = _CARD.sub(_card_or_not, text)
    if size >= _MIN_CREDENTIAL_CHARS and (
        "eyJ" in text or "earer" in text or "EARER" in text or "asic" in text or "ASIC" in text
    ):
        text = _CREDENTIAL.sub(_credential_or_not, text)
    if size >= _LONG_RUN_CHARS:
        text = _LONG_RUN.sub(_long_run_or_not, text)
    return text


def scrub_url(url: str, allowed_keys: frozenset[str] = frozenset()) -> str:
    """``url`` scrubbed, its userinfo removed and its query and fragment values masked."""
    if not url:
        return url
    head, hashmark, fragment = url.partition("#")
    path, question, query = head.partition("?")
    if "@" in path:
        path = _without_userinfo(path)
    out = scrub_text(path)
    if question:
        out += "?" + _mask_pairs(query, allowed_keys)
    if hashmark:
        out += "#" + _mask_fragment(fragment, allowed_keys)
    return out


def scrub_props(text: str) -> str:
    """Props JSON text with every string in it scrubbed, object keys too; formatting is kept.

    Strings are found lexically, so depth costs nothing and nothing recurses.
    """
    if len(text) < _MIN_EMAIL_CHARS + 2 or not _may_hold_secrets(text):
        return text
    return _JSON_STRING.sub(_scrub_literal, text)


def _may_hold_secrets(text: str) -> bool:
    if any(trigger in text for trigger in _PROPS_TRIGGERS):
        return True
    if _EIGHT_DIGITS.search(text):
        return True
    return len(text) >= _LONG_RUN_CHARS and _RUN_OF_32.search(text) is not None


def allowed_query_keys(keys: Iterable[str] | str | None) -> frozenset[str]:
    """A project's query allow-list as lower-case keys (a text of keys separated by commas or spaces works too)."""
    if not keys:
        return frozenset()
    if isinstance(keys, str):
        keys = re.split(r"[\s,]+", keys)
    return frozenset(key.strip().lower() for key in keys if key and key.strip())


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_or_not(match: re.Match[str]) -> str:
    digits = "".join(char for char in match.group(0) if char.isdigit())
    return CARD_MASK if luhn_valid(digits) else match.group(0)


def _credential_or_not(match: re.Match[str]) -> str:
    scheme = match.group("scheme")
    if scheme is None:  # a JWT
        return TOKEN_MASK
    credential = match.group("credential")
    if len(credential) < _WORDLIKE_CREDENTIAL_CHARS and not _HAS_DIGIT.search(credential):
        return match.group(0)
    return scheme + TOKEN_MASK


def _long_run_or_not(match: re.Match[str]) -> str:
    run = match.group(0)
    for piece in _RUN_PIECES.split(run):
        if len(piece) >= _RANDOM_PIECE_CHARS and _HAS_DIGIT.search(piece) and _HAS_LETTER.search(piece):
            return TOKEN_MASK
    return run


def _scrub_literal(match: re.Match[str]) -> str:
    body = match.group(1)
    # Escapes could hide an "@" (\u0040): decode those strings before looking.
    value = json.loads('"' + body + '"') if "\\" in body else body
    scrubbed = scrub_text(value)
    if scrubbed == value:
        return match.group(0)
    return msgspec.json.encode(scrubbed).decode()


def _without_userinfo(path: str) -> str:
    scheme_end = path.find("://")
    start = scheme_end + 3 if scheme_end >= 0 else 0
    slash = path.find("/", start)
    authority_end = len(path) if slash < 0 else slash
    at = path.rfind("@", start, authority_end)
    return path if at < 0 else path[:start] + path[at + 1 :]


def _mask_pairs(query: str, allowed_keys: frozenset[str]) -> str:
    if not query:
        return query
    items = query.split("&")
    for index, item in enumerate(items):
        key, equals, value = item.partition("=")
        if not equals:
            items[index] = scrub_text(item)
        elif value and not _key_allowed(key, allowed_keys):
            items[index] = scrub_text(key) + "=" + VALUE_MASK
        else:
            items[index] = scrub_text(key) + "=" + scrub_text(value)
    return "&".join(items)


def _mask_fragment(fragment: str, allowed_keys: frozenset[str]) -> str:
    route, question, query = fragment.partition("?")
    if question:
        return scrub_text(route) + "?" + _mask_pairs(query, allowed_keys)
    if "=" in fragment:
        return _mask_pairs(fragment, allowed_keys)
    return scrub_text(fragment)


def _key_allowed(key: str, allowed_keys: frozenset[str]) -> bool:
    if "%" in key or "+" in key:
        key = unquote_plus(key)
    key = key.lower()
    return key.startswith("utm_") or key in allowed_keys
