"""Keyed hashes that let detection follow an address or a username without storing it.

The per-install secret lives in ``<data_dir>/install-secret`` (0600, made on first
start like the admin token). ``ip_key`` hashes the FULL client address, before a
project's IP anonymisation, so anonymised storage never blinds detection;
``user_key`` hashes the lower-cased username and ``user_display`` is what a person
reads in an alert ("a…@example.com"), which does not reveal the username.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

INSTALL_SECRET_FILE = "install-secret"
SECRET_BYTES = 32
KEY_HEX_CHARS = 16
ELLIPSIS = "…"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def install_secret(data_dir: Path) -> bytes:
    """The install's secret, made on first call; several processes starting at once agree on one.

    The secret is written whole to a file of its own first, then linked into place: ``link`` fails when the
    name exists, so exactly one maker wins and no reader ever sees the file half written."""
    path = Path(data_dir) / INSTALL_SECRET_FILE
    if path.exists():
        return _read_secret(path)
    draft = path.with_name(f".{INSTALL_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(SECRET_BYTES) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the secret
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    text = path.read_text().strip()
    if not text:
        raise ValueError(f"{path.name} is empty: remove it to make a new one (alerts keyed by the old one are lost)")
    return bytes.fromhex(text)


def _canonical(address: str | IPAddress) -> str:
    parsed = ipaddress.ip_address(address) if isinstance(address, str) else address
    # An IPv4-mapped IPv6 address is the IPv4 client: one key for both spellings.
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return str(parsed)


def _hmac16(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:KEY_HEX_CHARS]


def ip_key(secret: bytes, address: str | IPAddress | None) -> str:
    """16 hex chars of HMAC-SHA256 of the canonical full address; "" when there is no address."""
    if address is None or address == "":
        return ""
    return _hmac16(secret, "ip:" + _canonical(address))


def ip_net(address: str | IPAddress | None) -> str:
    """The address's /24 (IPv4) or /64 (IPv6) as CIDR text; "" when there is no address."""
    if address is None or address == "":
        return ""
    canonical = ipaddress.ip_address(_canonical(address))
    prefix = 24 if canonical.version == 4 else 64
    return str(ipaddress.ip_network(f"{canonical}/{prefix}", strict=False))


def user_key(secret: bytes, username: str) -> str:
    """16 hex chars of HMAC-SHA256 of the trimmed, lower-cased username; "" for an empty one."""
    normal = username.strip().lower()
    if not normal:
        return ""
    return _hmac16(secret, "user:" + normal)


def user_display(username: str) -> str:
    """A form a person can tell apart without learning the username: "a…@example.com", "j…"."""
    normal = username.strip().lower()
    if not normal:
        return ""
    local, at, domain = normal.rpartition("@")
    if at and local and domain:
        return local[0] + ELLIPSIS + "@" + domain[:100]
    return normal[0] + ELLIPSIS
