"""Accounts in the metadata store: users and passwords, memberships, API tokens, sessions, setup token."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.web_sessions import (
    SetupError,
    WebSession,
    create_first_admin,
    end_session,
    issue_setup_token,
    session_for,
    setup_token_valid,
    start_session,
)

PASSWORD = "correct horse battery"
T0 = dt.datetime(2027, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def meta(tmp_path: Path) -> MetaStore:
    store = MetaStore("", tmp_path)
    yield store  # type: ignore[misc]
    store.close()


def test_users_have_valid_unique_emails_and_long_passwords(meta: MetaStore) -> None:
    user = accounts.create_user(meta, " Ann@Example.COM ", PASSWORD, admin=True)
    assert user.email == "ann@example.com" and user.is_admin
    assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    assert accounts.user_by_email(meta, "ANN@example.com") is not None
    with pytest.raises(ValueError, match="already exists"):
        accounts.create_user(meta, "ann@example.com", PASSWORD)
    with pytest.raises(ValueError, match="at least 10"):
        accounts.create_user(meta, "bob@example.com", "123456789")
    with pytest.raises(ValueError, match="email"):
        accounts.create_user(meta, "not-an-email", PASSWORD)
    assert accounts.user_count(meta) == 1


def test_verify_login_and_rehash_on_new_parameters(meta: MetaStore) -> None:
    user = accounts.create_user(meta, "ann@example.com", PASSWORD)
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is not None
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD + "x") is None
    assert accounts.verify_login(meta, "nobody@example.com", PASSWORD) is None
    assert accounts.verify_login(meta, "ann@example.com", "x" * 5000) is None
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with meta.sessions.begin() as db:
        db.get(accounts.User, user.id).password_hash = weak  # type: ignore[union-attr]
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is not None
    upgraded = accounts.user_by_id(meta, user.id)
    assert upgraded is not None and upgraded.password_hash != weak
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is not None


def test_memberships(meta: MetaStore) -> None:
    a, b = meta.create_project("a"), meta.create_project("b")
    user = accounts.create_user(meta, "ann@example.com", PASSWORD)
    assert accounts.project_ids_of(meta, user.id) == set()
    accounts.add_member(meta, a.id, user.id)
    accounts.add_member(meta, b.id, user.id, "owner")
    accounts.add_member(meta, a.id, user.id, "owner")  # a new role, not a second row
    assert accounts.project_ids_of(meta, user.id) == {a.id, b.id}
    assert accounts.memberships_of(meta, user.id) == {a.id: "owner", b.id: "owner"}
    assert [(u.email, role) for u, role in accounts.members_of(meta, a.id)] == [("ann@example.com", "owner")]
    with pytest.raises(ValueError, match="role"):
        accounts.add_member(meta, a.id, user.id, "god")
    with pytest.raises(KeyError):
        accounts.add_member(meta, 999, user.id)
    accounts.remove_member(meta, a.id, user.id)
    assert accounts.project_ids_of(meta, user.id) == {b.id}
    owned = accounts.create_owned_project(meta, user.id, "c")
    assert accounts.role_in(meta, owned.id, user.id) == "owner"


def test_api_tokens_are_stored_as_digests_and_revoked_by_their_owner_only(meta: MetaStore) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD)
    bob = accounts.create_user(meta, "bob@example.com", PASSWORD)
    token, plaintext = accounts.create_api_token(meta, ann.id, "ci", "read")
    assert plaintext.startswith("hm_pat_") and len(plaintext) > 40
    assert token.token_hash == accounts.digest(plaintext)
    found = accounts.api_token(meta, plaintext, T0)
    assert found is not None and found.user_id == ann.id and found.scope == "read"
    assert accounts.api_tokens_of(meta, ann.id)[0].last_used_at is not None
    assert accounts.api_token(meta, plaintext + "x") is None
    with pytest.raises(ValueError, match="scope"):
        accounts.create_api_token(meta, ann.id, "x", "admin")
    with pytest.raises(ValueError, match="name"):
        accounts.create_api_token(meta, ann.id, " ", "read")
    assert not accounts.revoke_api_token(meta, bob.id, token.id)
    assert accounts.revoke_api_token(meta, ann.id, token.id)
    assert not accounts.revoke_api_token(meta, ann.id, token.id)
    assert accounts.api_token(meta, plaintext) is None


def test_web_sessions_expire_idle_and_absolute(meta: MetaStore) -> None:
    user = accounts.create_user(meta, "ann@example.com", PASSWORD)
    session, cookie = start_session(meta, user.id, T0)
    with meta.sessions() as db:
        stored = list(db.scalars(select(WebSession.token_hash)))
    assert stored == [accounts.digest(cookie)]  # never the cookie itself
    assert session_for(meta, cookie, T0 + dt.timedelta(hours=11)) is not None
    assert session_for(meta, cookie, T0 + dt.timedelta(hours=22)) is not None  # last seen at 11 h
    assert session_for(meta, cookie, T0 + dt.timedelta(hours=35)) is None  # idle for 13 h: gone
    assert session_for(meta, cookie, T0 + dt.timedelta(hours=36)) is None

    _, busy = start_session(meta, user.id, T0)
    seen, every = T0, dt.timedelta(hours=11)
    while seen + every < T0 + dt.timedelta(days=14):
        seen += every
        assert session_for(meta, busy, seen) is not None
    assert session_for(meta, busy, T0 + dt.timedelta(days=14, hours=1)) is None  # used 11 h ago, but too old

    _, ended = start_session(meta, user.id, T0)
    end_session(meta, ended)
    assert session_for(meta, ended, T0) is None
    assert session.csrf_token and len(session.csrf_token) >= 32


def test_setup_token_works_once_and_only_while_no_user_exists(meta: MetaStore) -> None:
    project = meta.create_project("demo")
    token = issue_setup_token(meta, T0)
    assert token is not None
    assert setup_token_valid(meta, token, T0) and not setup_token_valid(meta, "wrong", T0)
    assert not setup_token_valid(meta, token, T0 + dt.timedelta(hours=25))
    with pytest.raises(SetupError):
        create_first_admin(meta, token, "root@example.com", PASSWORD, T0 + dt.timedelta(hours=25))
    with pytest.raises(ValueError, match="at least 10"):
        create_first_admin(meta, token, "root@example.com", "short", T0)
    assert setup_token_valid(meta, token, T0)  # a bad password does not spend the token
    admin = create_first_admin(meta, token, "root@example.com", PASSWORD, T0)
    assert admin.is_admin and accounts.role_in(meta, project.id, admin.id) == "owner"
    assert not setup_token_valid(meta, token, T0)
    with pytest.raises(SetupError):
        create_first_admin(meta, token, "second@example.com", PASSWORD, T0)
    assert issue_setup_token(meta, T0) is None


def test_a_new_setup_token_replaces_the_old_one_and_racers_make_one_admin(meta: MetaStore) -> None:
    old = issue_setup_token(meta, T0)
    token = issue_setup_token(meta, T0)
    assert old is not None and token is not None and not setup_token_valid(meta, old, T0)
    results: list[object] = []

    def race(i: int) -> None:
        try:
            results.append(create_first_admin(meta, token, f"admin{i}@example.com", PASSWORD, T0))
        except SetupError as exc:
            results.append(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(r, accounts.User) for r in results) == 1
    assert accounts.user_count(meta) == 1


def test_admins_made_before_the_demo_project_are_its_owners(tmp_path: Path) -> None:
    from hitmetrix.runtime import DEMO_PROJECT, Runtime

    meta = MetaStore("", tmp_path)
    admin = accounts.create_user(meta, "root@example.com", PASSWORD, admin=True)
    user = accounts.create_user(meta, "ann@example.com", PASSWORD)
    runtime = Runtime.__new__(Runtime)  # only the metadata store is needed here
    runtime.meta = meta
    demo = runtime.demo_project()
    assert demo.name == DEMO_PROJECT
    assert accounts.role_in(meta, demo.id, admin.id) == "owner"
    assert accounts.role_in(meta, demo.id, user.id) is None
    meta.close()
