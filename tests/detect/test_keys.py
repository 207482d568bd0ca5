"""hitmetrix/detect/keys.py: the install secret and the keyed hashes detection follows addresses and users by."""

from __future__ import annotations

import ipaddress
import stat
import threading
from pathlib import Path

from hitmetrix.detect.keys import install_secret, ip_key, ip_net, user_display, user_key


def test_the_install_secret_is_made_once_private_and_shared_by_concurrent_starts(tmp_path: Path) -> None:
    found: list[bytes] = []
    threads = [threading.Thread(target=lambda: found.append(install_secret(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found[0]) == 32
    assert stat.S_IMODE((tmp_path / "install-secret").stat().st_mode) == 0o600
    assert install_secret(tmp_path) == found[0]


def test_ip_keys_are_keyed_stable_and_spelling_blind() -> None:
    secret, other = b"a" * 32, b"b" * 32
    key = ip_key(secret, "203.0.113.7")
    assert len(key) == 16 and int(key, 16) >= 0
    assert key == ip_key(secret, ipaddress.ip_address("203.0.113.7")) == ip_key(secret, "::ffff:203.0.113.7")
    assert key != ip_key(other, "203.0.113.7") and key != ip_key(secret, "203.0.113.8")
    assert ip_key(secret, "2001:DB8::1") == ip_key(secret, "2001:db8:0::1")
    assert ip_key(secret, None) == ip_key(secret, "") == ""


def test_ip_nets_are_the_24_or_the_64() -> None:
    assert ip_net("203.0.113.77") == "203.0.113.0/24"
    assert ip_net("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert ip_net("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert ip_net(None) == ""


def test_usernames_are_hashed_case_blind_and_shown_without_revealing_them() -> None:
    secret = b"a" * 32
    assert user_key(secret, " Anna@Example.com ") == user_key(secret, "anna@example.com") != user_key(secret, "anne")
    assert user_key(secret, "") == ""
    assert user_display("Anna.Smith@Example.com") == "a…@example.com"
    assert user_display("jsmith") == "j…" and user_display("") == ""
    assert "anna" not in user_display("anna@example.com")
