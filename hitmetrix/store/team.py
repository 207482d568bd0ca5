"""Running a team: invitations, password reset links, deactivation, password changes and one's own sessions.

Invitations and reset links are one-time and expiring, stored as SHA-256
digests (``accounts.AccountLink``) and spent in one statement that deletes the
row, like the first-admin setup token: two racing requests cannot both use a
link. Deactivating a user ends their sessions and revokes their API tokens in
the same transaction that marks them, so nothing they held still works once it
commits. Every change writes its audit entry in the same transaction as the change.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hitmetrix.store import audit
from hitmetrix.store.accounts import (
    MAX_PASSWORD_CHARS,
    AccountLink,
    ApiToken,
    Membership,
    User,
    as_utc,
    check_password_rules,
    check_role,
    digest,
    normalise_email,
    role_name,
    utcnow,
)
from hitmetrix.store.meta import MetaStore, Project
from hitmetrix.store.web_sessions import WebSession

INVITATION_TTL = dt.timedelta(days=7)
RESET_LINK_TTL = dt.timedelta(hours=24)
INVITATION = "invitation"
RESET = "reset"

_hasher = PasswordHasher()


class LinkError(Exception):
    """The link is wrong, expired or already used, or what it was for no longer applies."""


@dataclass(frozen=True)
class PendingLink:
    """A link that has not been used yet, as the user list shows it (never its secret)."""

    id: int
    kind: str
    email: str
    project_id: int | None
    project_name: str | None
    role: str | None
    created_at: dt.datetime
    expires_at: dt.datetime


def _new_link(
    db: Session,
    kind: str,
    email: str,
    ttl: dt.timedelta,
    now: dt.datetime,
    created_by: int | None,
    *,
    user_id: int | None = None,
    project_id: int | None = None,
    role: str | None = None,
) -> tuple[AccountLink, str]:
    plaintext = secrets.token_urlsafe(32)
    link = AccountLink(
        kind=kind,
        token_hash=digest(plaintext),
        email=email,
        user_id=user_id,
        project_id=project_id,
        role=role,
        created_by=created_by,
        created_at=now,
        expires_at=now + ttl,
    )
    db.add(link)
    return link, plaintext


def _live_link(meta: MetaStore, kind: str, plaintext: str, now: dt.datetime) -> AccountLink | None:
    with meta.sessions() as db:
        link = db.scalars(
            select(AccountLink).where(AccountLink.kind == kind, AccountLink.token_hash == digest(plaintext))
        ).first()
    return link if link is not None and as_utc(link.expires_at) > now else None


def _spend(db: Session, kind: str, plaintext: str, now: dt.datetime) -> AccountLink:
    """Delete the live link in one statement (it takes the write lock before anything is read); LinkError if none."""
    spent = db.execute(
        delete(AccountLink)
        .where(AccountLink.kind == kind, AccountLink.token_hash == digest(plaintext), AccountLink.expires_at > now)
        .returning(AccountLink.email, AccountLink.user_id, AccountLink.project_id, AccountLink.role)
    ).first()
    if spent is None:
        raise LinkError(f"this {kind} link is wrong, has expired or was already used")
    return AccountLink(kind=kind, email=spent[0], user_id=spent[1], project_id=spent[2], role=spent[3])


# --- invitations -------------------------------------------------------------------------------------


def create_invitation(
    meta: MetaStore,
    actor_user_id: int | None,
    email: str,
    project_id: int | None = None,
    role: str | None = None,
    now: dt.datetime | None = None,
    *,
    client_ip: str = "",
) -> tuple[AccountLink, str]:
    """An invitation for a new user, optionally into a project with a role; the plaintext goes in the link.

    A newer invitation for the same email replaces the older one. ValueError for a
    bad email, an email that already has an account, an unknown project or role.
    """
    now = now or utcnow()
    email = normalise_email(email)
    role = None if project_id is None else check_role(role or "viewer")
    with meta.sessions.begin() as db:
        if db.scalars(select(User.id).where(User.email == email)).first() is not None:
            raise ValueError(f"{email} already has an account: add them to a project from its settings")
        if project_id is not None and db.get(Project, project_id) is None:
            raise ValueError("there is no such project")
        db.execute(delete(AccountLink).where(AccountLink.expires_at <= now))
        db.execute(delete(AccountLink).where(AccountLink.kind == INVITATION, AccountLink.email == email))
        link, plaintext = _new_link(
            db, INVITATION, email, INVITATION_TTL, now, actor_user_id, project_id=project_id, role=role
        )
        db.flush()
        details = {"role": role} if role else {}
        audit.add(db, actor_user_id, "user_invited", project_id, email, details, at=now, client_ip=client_ip)
    return link, plaintext


def invitation(meta: MetaStore, plaintext: str, now: dt.datetime | None = None) -> AccountLink | None:
    """The live invitation with this plaintext (to show whom it is for), or None."""
    return _live_link(meta, INVITATION, plaintext, now or utcnow())


def accept_invitation(
    meta: MetaStore, plaintext: str, password: str, now: dt.datetime | None = None, *, client_ip: str = ""
) -> User:
    """Spend the invitation on the new user's account (and membership); returns the user.

    ValueError for a weak password (the invitation stays valid), LinkError when
    the link does not work or its email has an account by now.
    """
    now = now or utcnow()
    check_password_rules(password)
    password_hash = _hasher.hash(password)
    with meta.sessions.begin() as db:
        link = _spend(db, INVITATION, plaintext, now)
        if db.scalars(select(User.id).where(User.email == link.email)).first() is not None:
            raise LinkError(f"{link.email} already has an account: sign in instead")
        user = User(email=link.email, password_hash=password_hash, is_admin=False, created_at=now)
        db.add(user)
        db.flush()
        if link.project_id is not None and link.role is not None:
            db.add(Membership(project_id=link.project_id, user_id=user.id, role=link.role))
        audit.add(db, user.id, "invitation_accepted", link.project_id, link.email, at=now, client_ip=client_ip)
    return user


def revoke_invitation(meta: MetaStore, actor_user_id: int | None, link_id: int, *, client_ip: str = "") -> bool:
    """Withdraw a pending invitation; False when there is no such invitation."""
    with meta.sessions.begin() as db:
        spent = db.execute(
            delete(AccountLink)
            .where(AccountLink.id == link_id, AccountLink.kind == INVITATION)
            .returning(AccountLink.email, AccountLink.project_id)
        ).first()
        if spent is None:
            return False
        audit.add(db, actor_user_id, "invitation_revoked", spent[1], spent[0], client_ip=client_ip)
    return True


def pending_links(meta: MetaStore, now: dt.datetime | None = None) -> list[PendingLink]:
    """Invitations and reset links not used and not expired, newest first."""
    now = now or utcnow()
    with meta.sessions() as db:
        rows = db.execute(
            select(AccountLink, Project.name)
            .outerjoin(Project, Project.id == AccountLink.project_id)
            .where(AccountLink.expires_at > now)
            .order_by(AccountLink.id.desc())
        ).all()
    return [
        PendingLink(
            link.id,
            link.kind,
            link.email,
            link.project_id,
            name,
            link.role,
            as_utc(link.created_at),
            as_utc(link.expires_at),
        )
        for link, name in rows
    ]


# --- password reset links ----------------------------------------------------------------------------


def create_reset_link(
    meta: MetaStore, actor_user_id: int | None, user_id: int, now: dt.datetime | None = None, *, client_ip: str = ""
) -> tuple[AccountLink, str]:
    """A one-time link that lets the user choose a new password; earlier reset links of the user stop working."""
    now = now or utcnow()
    with meta.sessions.begin() as db:
        user = db.get(User, user_id)
        if user is None:
            raise KeyError(user_id)
        if not user.active:
            raise ValueError(f"{user.email} is deactivated: reactivate them first")
        db.execute(delete(AccountLink).where(AccountLink.kind == RESET, AccountLink.user_id == user_id))
        link, plaintext = _new_link(db, RESET, user.email, RESET_LINK_TTL, now, actor_user_id, user_id=user_id)
        audit.add(db, actor_user_id, "password_reset_link_created", target=user.email, at=now, client_ip=client_ip)
    return link, plaintext


def reset_link(meta: MetaStore, plaintext: str, now: dt.datetime | None = None) -> AccountLink | None:
    return _live_link(meta, RESET, plaintext, now or utcnow())


def reset_password(
    meta: MetaStore, plaintext: str, password: str, now: dt.datetime | None = None, *, client_ip: str = ""
) -> User:
    """Spend the reset link on a new password; every session of the user ends (their API tokens stay).

    ValueError for a weak password (the link stays valid), LinkError when it does not work.
    """
    now = now or utcnow()
    check_password_rules(password)
    password_hash = _hasher.hash(password)
    with meta.sessions.begin() as db:
        link = _spend(db, RESET, plaintext, now)
        user = db.get(User, link.user_id) if link.user_id is not None else None
        if user is None or not user.active:
            raise LinkError("this account is deactivated")
        user.password_hash = password_hash
        ended = db.execute(delete(WebSession).where(WebSession.user_id == user.id))
        audit.add(db, user.id, "password_reset", target=user.email, details=_ended(ended), at=now, client_ip=client_ip)
    return user


def _ended(result: object) -> dict[str, int]:
    return {"sessions_ended": int(getattr(result, "rowcount", 0) or 0)}


# --- one's own password and sessions -----------------------------------------------------------------


def _password_ok(password_hash: str, password: str) -> bool:
    if len(password) > MAX_PASSWORD_CHARS:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def change_password(
    meta: MetaStore,
    user_id: int,
    current: str,
    new: str,
    keep_session: str | None = None,
    now: dt.datetime | None = None,
    *,
    client_ip: str = "",
) -> int:
    """Change the user's password given the current one; every other session ends. Returns how many ended.

    ``keep_session`` is the cookie value of the session making the change, which
    stays signed in. ValueError when the current password is wrong or the new one is weak.
    """
    now = now or utcnow()
    user = _user(meta, user_id)
    if not _password_ok(user.password_hash, current):
        raise ValueError("the current password is wrong")
    check_password_rules(new)
    if new == current:
        raise ValueError("the new password is the current one: choose another")
    password_hash = _hasher.hash(new)
    with meta.sessions.begin() as db:
        db.execute(update(User).where(User.id == user_id).values(password_hash=password_hash))
        others = delete(WebSession).where(WebSession.user_id == user_id)
        if keep_session:
            others = others.where(WebSession.token_hash != digest(keep_session))
        ended = db.execute(others)
        count = _ended(ended)
        audit.add(db, user_id, "password_changed", target=user.email, details=count, at=now, client_ip=client_ip)
    return count["sessions_ended"]


def _user(meta: MetaStore, user_id: int) -> User:
    with meta.sessions() as db:
        user = db.get(User, user_id)
    if user is None:
        raise KeyError(user_id)
    return user


def live_sessions_of(meta: MetaStore, user_id: int, now: dt.datetime | None = None) -> list[WebSession]:
    """The user's sessions that have not expired, most recently used first."""
    now = now or utcnow()
    with meta.sessions() as db:
        found = db.scalars(
            select(WebSession).where(WebSession.user_id == user_id).order_by(WebSession.last_seen_at.desc())
        )
        return [s for s in found if not s.expired(now)]


def is_session(session: WebSession, plaintext: str | None) -> bool:
    """Is this the session whose cookie value is ``plaintext``?"""
    return plaintext is not None and session.token_hash == digest(plaintext)


def end_other_sessions(
    meta: MetaStore, user_id: int, keep_session: str, now: dt.datetime | None = None, *, client_ip: str = ""
) -> int:
    """Sign the user out everywhere but here; returns how many sessions ended."""
    with meta.sessions.begin() as db:
        ended = db.execute(
            delete(WebSession).where(WebSession.user_id == user_id, WebSession.token_hash != digest(keep_session))
        )
        count = _ended(ended)["sessions_ended"]
        if count:
            audit.add(db, user_id, "sessions_ended", details={"sessions_ended": count}, at=now, client_ip=client_ip)
    return count


def end_own_session(
    meta: MetaStore, user_id: int, session_id: int, now: dt.datetime | None = None, *, client_ip: str = ""
) -> bool:
    """End one of the user's own sessions by its id; False when the user has no such session."""
    with meta.sessions.begin() as db:
        ended = db.execute(delete(WebSession).where(WebSession.id == session_id, WebSession.user_id == user_id))
        if not getattr(ended, "rowcount", 0):
            return False
        audit.add(db, user_id, "sessions_ended", details={"sessions_ended": 1}, at=now, client_ip=client_ip)
    return True


# --- deactivation ------------------------------------------------------------------------------------


def _active_admins(db: Session, other_than: int) -> int:
    count = db.scalar(
        select(func.count())
        .select_from(User)
        .where(User.is_admin.is_(True), User.deactivated_at.is_(None), User.id != other_than)
    )
    return int(count or 0)


def deactivate_user(
    meta: MetaStore, actor_user_id: int | None, user_id: int, now: dt.datetime | None = None, *, client_ip: str = ""
) -> dict[str, int]:
    """The user can no longer sign in; their sessions end and their API tokens are revoked, at once.

    Returns what was ended. ValueError for deactivating oneself or the last
    active admin; KeyError for an unknown user. Deactivating twice is a no-op.
    """
    now = now or utcnow()
    if actor_user_id == user_id:
        raise ValueError("you cannot deactivate yourself")
    with meta.sessions.begin() as db:
        user = db.get(User, user_id)
        if user is None:
            raise KeyError(user_id)
        if not user.active:
            return {"sessions_ended": 0, "tokens_revoked": 0}
        if user.is_admin and _active_admins(db, user_id) == 0:
            raise ValueError("the last active admin cannot be deactivated")
        user.deactivated_at = now
        ended = _ended(db.execute(delete(WebSession).where(WebSession.user_id == user_id)))
        revoked = db.execute(
            update(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None)).values(revoked_at=now)
        )
        db.execute(delete(AccountLink).where(AccountLink.kind == RESET, AccountLink.user_id == user_id))
        outcome = {**ended, "tokens_revoked": int(getattr(revoked, "rowcount", 0) or 0)}
        audit.add(db, actor_user_id, "user_deactivated", None, user.email, outcome, at=now, client_ip=client_ip)
    return outcome


def reactivate_user(
    meta: MetaStore, actor_user_id: int | None, user_id: int, now: dt.datetime | None = None, *, client_ip: str = ""
) -> None:
    """The user may sign in again with their password; revoked API tokens stay revoked."""
    now = now or utcnow()
    with meta.sessions.begin() as db:
        user = db.get(User, user_id)
        if user is None:
            raise KeyError(user_id)
        if user.active:
            return
        user.deactivated_at = None
        audit.add(db, actor_user_id, "user_reactivated", target=user.email, at=now, client_ip=client_ip)


@dataclass(frozen=True)
class UserRow:
    """A user as the admin's user list shows them."""

    user: User
    roles: dict[str, str]  # project name → role


def user_rows(meta: MetaStore) -> list[UserRow]:
    """Every user with the projects they belong to, by email."""
    with meta.sessions() as db:
        users = list(db.scalars(select(User).order_by(User.email)))
        memberships = db.execute(
            select(Membership.user_id, Project.name, Membership.role)
            .join(Project, Project.id == Membership.project_id)
            .order_by(Project.name)
        ).all()
    roles: dict[int, dict[str, str]] = {}
    for user_id, name, role in memberships:
        roles.setdefault(user_id, {})[name] = role_name(role)
    return [UserRow(user, roles.get(user.id, {})) for user in users]
