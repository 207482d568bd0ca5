"""Team rules in the metadata store: invitations, reset links, deactivation, password changes, own sessions."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitmetrix.store import accounts, audit, team
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.web_sessions import session_for, start_session

PASSWORD = "correct horse battery"
NEW_PASSWORD = "another long passphrase"
T0 = dt.datetime(2027, 1, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path)
    swallowed = audit.swallowed_errors.value
    yield store
    store.close()
    assert audit.swallowed_errors.value == swallowed, "an audit entry could not be written"


@pytest.fixture
def admin(meta: MetaStore) -> int:
    return accounts.create_user(meta, "admin@example.com", PASSWORD, admin=True).id


def actions(meta: MetaStore, project_id: int | None = None) -> list[str]:
    return [e.action for e in audit.entries(meta, project_id)]


# --- invitations -------------------------------------------------------------------------------------


def test_an_invitation_makes_an_account_in_its_project_with_its_role(meta: MetaStore, admin: int) -> None:
    project = meta.create_project("P")
    meta.create_project("Other")
    link, plaintext = team.create_invitation(meta, admin, " New@Example.com ", project.id, "viewer", T0)
    assert link.email == "new@example.com" and plaintext not in link.token_hash
    found = team.invitation(meta, plaintext, T0)
    assert found is not None and found.project_id == project.id and found.role == "viewer"
    user = team.accept_invitation(meta, plaintext, PASSWORD, T0 + dt.timedelta(days=6))
    assert user.email == "new@example.com" and not user.is_admin
    assert accounts.memberships_of(meta, user.id) == {project.id: "viewer"}
    assert accounts.verify_login(meta, "new@example.com", PASSWORD) is not None
    assert actions(meta, project.id) == ["invitation_accepted", "user_invited"]
    invited = audit.entries(meta, project.id)[1]
    assert invited.actor == "admin@example.com" and invited.target == "new@example.com"
    assert invited.details["role"] == "viewer"


def test_an_invitation_works_once(meta: MetaStore, admin: int) -> None:
    _, plaintext = team.create_invitation(meta, admin, "new@example.com", now=T0)
    team.accept_invitation(meta, plaintext, PASSWORD, T0)
    assert team.invitation(meta, plaintext, T0) is None
    with pytest.raises(team.LinkError):
        team.accept_invitation(meta, plaintext, NEW_PASSWORD, T0)
    assert accounts.verify_login(meta, "new@example.com", PASSWORD) is not None  # not overwritten


def test_an_invitation_expires(meta: MetaStore, admin: int) -> None:
    _, plaintext = team.create_invitation(meta, admin, "new@example.com", now=T0)
    late = T0 + team.INVITATION_TTL + dt.timedelta(seconds=1)
    assert team.invitation(meta, plaintext, late) is None
    with pytest.raises(team.LinkError):
        team.accept_invitation(meta, plaintext, PASSWORD, late)
    assert accounts.user_by_email(meta, "new@example.com") is None


def test_a_weak_password_leaves_the_invitation_usable(meta: MetaStore, admin: int) -> None:
    _, plaintext = team.create_invitation(meta, admin, "new@example.com", now=T0)
    with pytest.raises(ValueError, match="at least 10"):
        team.accept_invitation(meta, plaintext, "short", T0)
    assert team.accept_invitation(meta, plaintext, PASSWORD, T0).email == "new@example.com"


def test_racing_acceptances_make_one_account(meta: MetaStore, admin: int) -> None:
    _, plaintext = team.create_invitation(meta, admin, "new@example.com", now=T0)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def accept(password: str) -> None:
        barrier.wait()
        try:
            team.accept_invitation(meta, plaintext, password, T0)
            outcomes.append("ok")
        except team.LinkError:
            outcomes.append("refused")

    threads = [threading.Thread(target=accept, args=(f"{PASSWORD} {n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["ok", "refused", "refused", "refused"]
    assert len([u for u in accounts.users(meta) if u.email == "new@example.com"]) == 1


def test_invitations_refuse_taken_emails_unknown_projects_and_roles(meta: MetaStore, admin: int) -> None:
    project = meta.create_project("P")
    with pytest.raises(ValueError, match="already has an account"):
        team.create_invitation(meta, admin, "ADMIN@example.com", now=T0)
    with pytest.raises(ValueError, match="no such project"):
        team.create_invitation(meta, admin, "new@example.com", project.id + 100, "viewer", T0)
    with pytest.raises(ValueError, match="role"):
        team.create_invitation(meta, admin, "new@example.com", project.id, "emperor", T0)
    with pytest.raises(ValueError, match="email"):
        team.create_invitation(meta, admin, "not an email", now=T0)
    assert team.pending_links(meta, T0) == []


def test_a_new_invitation_replaces_the_older_and_can_be_revoked(meta: MetaStore, admin: int) -> None:
    _, first = team.create_invitation(meta, admin, "new@example.com", now=T0)
    link, second = team.create_invitation(meta, admin, "new@example.com", now=T0)
    assert team.invitation(meta, first, T0) is None
    assert [p.email for p in team.pending_links(meta, T0)] == ["new@example.com"]
    assert team.revoke_invitation(meta, admin, link.id)
    assert not team.revoke_invitation(meta, admin, link.id)
    with pytest.raises(team.LinkError):
        team.accept_invitation(meta, second, PASSWORD, T0)
    assert actions(meta)[0] == "invitation_revoked"


def test_an_account_made_meanwhile_spoils_the_invitation(meta: MetaStore, admin: int) -> None:
    _, plaintext = team.create_invitation(meta, admin, "new@example.com", now=T0)
    accounts.create_user(meta, "new@example.com", PASSWORD)
    with pytest.raises(team.LinkError, match="already has an account"):
        team.accept_invitation(meta, plaintext, NEW_PASSWORD, T0)
    assert accounts.verify_login(meta, "new@example.com", PASSWORD) is not None


# --- reset links -------------------------------------------------------------------------------------


def test_a_reset_link_sets_a_new_password_once_and_ends_sessions(meta: MetaStore, admin: int) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    _, cookie = start_session(meta, ann, T0)
    _, plaintext = team.create_reset_link(meta, admin, ann, T0)
    assert team.reset_link(meta, plaintext, T0) is not None
    user = team.reset_password(meta, plaintext, NEW_PASSWORD, T0)
    assert user.id == ann
    assert accounts.verify_login(meta, "ann@example.com", NEW_PASSWORD) is not None
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is None
    assert session_for(meta, cookie, T0) is None
    with pytest.raises(team.LinkError):
        team.reset_password(meta, plaintext, PASSWORD, T0)
    assert actions(meta)[:2] == ["password_reset", "password_reset_link_created"]
    assert audit.entries(meta)[0].details == {"sessions_ended": 1}


def test_a_reset_link_expires_and_a_newer_one_replaces_it(meta: MetaStore, admin: int) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    _, first = team.create_reset_link(meta, admin, ann, T0)
    _, second = team.create_reset_link(meta, admin, ann, T0)
    with pytest.raises(team.LinkError):
        team.reset_password(meta, first, NEW_PASSWORD, T0)
    with pytest.raises(team.LinkError):
        team.reset_password(meta, second, NEW_PASSWORD, T0 + team.RESET_LINK_TTL + dt.timedelta(seconds=1))
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is not None
    with pytest.raises(KeyError):
        team.create_reset_link(meta, admin, ann + 100, T0)


# --- deactivation ------------------------------------------------------------------------------------


def test_deactivation_ends_sessions_revokes_tokens_and_refuses_sign_in(meta: MetaStore, admin: int) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    _, cookie = start_session(meta, ann, T0)
    _, token = accounts.create_api_token(meta, ann, "ci", "read")
    _, reset = team.create_reset_link(meta, admin, ann, T0)
    outcome = team.deactivate_user(meta, admin, ann, T0)
    assert outcome == {"sessions_ended": 1, "tokens_revoked": 1}
    assert session_for(meta, cookie, T0) is None
    assert accounts.api_token(meta, token, T0) is None
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is None
    with pytest.raises(team.LinkError):
        team.reset_password(meta, reset, NEW_PASSWORD, T0)
    with pytest.raises(ValueError, match="deactivated"):
        team.create_reset_link(meta, admin, ann, T0)
    entry = audit.entries(meta, action="user_deactivated")[0]
    assert entry.actor == "admin@example.com" and entry.target == "ann@example.com" and entry.details == outcome
    assert team.deactivate_user(meta, admin, ann, T0) == {"sessions_ended": 0, "tokens_revoked": 0}

    team.reactivate_user(meta, admin, ann, T0)
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is not None
    assert accounts.api_token(meta, token, T0) is None  # revoked tokens stay revoked
    assert actions(meta)[0] == "user_reactivated"


def test_nobody_deactivates_themselves_or_the_last_admin(meta: MetaStore, admin: int) -> None:
    with pytest.raises(ValueError, match="yourself"):
        team.deactivate_user(meta, admin, admin, T0)
    other = accounts.create_user(meta, "other-admin@example.com", PASSWORD, admin=True).id
    team.deactivate_user(meta, admin, other, T0)
    with pytest.raises(ValueError, match="last active admin"):
        team.deactivate_user(meta, None, admin, T0)  # the local admin token has no user of its own
    with pytest.raises(KeyError):
        team.deactivate_user(meta, admin, admin + 100, T0)


def test_user_rows_show_projects_roles_and_status(meta: MetaStore, admin: int) -> None:
    project = meta.create_project("P")
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    accounts.add_member(meta, project.id, ann, "analyst")
    team.deactivate_user(meta, admin, ann, T0)
    rows = {row.user.email: row for row in team.user_rows(meta)}
    assert rows["ann@example.com"].roles == {"P": "analyst"} and not rows["ann@example.com"].user.active
    assert rows["admin@example.com"].roles == {} and rows["admin@example.com"].user.active


# --- own password and sessions -----------------------------------------------------------------------


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(meta: MetaStore) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    _, here = start_session(meta, ann, T0)
    _, elsewhere = start_session(meta, ann, T0)
    with pytest.raises(ValueError, match="current password is wrong"):
        team.change_password(meta, ann, "wrong password", NEW_PASSWORD, here, T0)
    with pytest.raises(ValueError, match="at least 10"):
        team.change_password(meta, ann, PASSWORD, "short", here, T0)
    with pytest.raises(ValueError, match="current one"):
        team.change_password(meta, ann, PASSWORD, PASSWORD, here, T0)
    assert session_for(meta, elsewhere, T0) is not None  # nothing changed yet
    assert team.change_password(meta, ann, PASSWORD, NEW_PASSWORD, here, T0) == 1
    assert session_for(meta, here, T0) is not None
    assert session_for(meta, elsewhere, T0) is None
    assert accounts.verify_login(meta, "ann@example.com", NEW_PASSWORD) is not None
    assert accounts.verify_login(meta, "ann@example.com", PASSWORD) is None
    assert audit.entries(meta)[0].action == "password_changed"


def test_own_sessions_listed_and_ended(meta: MetaStore) -> None:
    ann = accounts.create_user(meta, "ann@example.com", PASSWORD).id
    bob = accounts.create_user(meta, "bob@example.com", PASSWORD).id
    _, here = start_session(meta, ann, T0)
    other, elsewhere = start_session(meta, ann, T0 + dt.timedelta(minutes=1))
    _, bobs = start_session(meta, bob, T0)
    live = team.live_sessions_of(meta, ann, T0 + dt.timedelta(minutes=2))
    assert len(live) == 2 and [team.is_session(s, here) for s in live] == [False, True]
    assert not team.end_own_session(meta, bob, other.id, T0)  # not bob's to end
    assert team.end_own_session(meta, ann, other.id, T0)
    assert session_for(meta, elsewhere, T0) is None
    start_session(meta, ann, T0)
    assert team.end_other_sessions(meta, ann, here, T0) == 1
    assert [team.is_session(s, here) for s in team.live_sessions_of(meta, ann, T0)] == [True]
    assert session_for(meta, bobs, T0) is not None
    expired = T0 + dt.timedelta(days=15)
    assert team.live_sessions_of(meta, ann, expired) == []
