"""Dashboard sign-in sessions and the one-time first-admin setup token, stored as SHA-256 digests.

A session ends when it has not been used for ``SESSION_IDLE`` or when
``SESSION_MAX_AGE`` has passed since sign-in, whichever comes first. The setup
token exists only while no user does, and works once.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import DateTime, ForeignKey, String, delete, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from hitmetrix.store.accounts import (
    User,
    add_member,
    as_utc,
    check_password_rules,
    create_user,
    digest,
    normalise_email,
    user_count,
    utcnow,
)
from hitmetrix.store.meta import Base, MetaStore

SESSION_IDLE = dt.timedelta(hours=12)
SESSION_MAX_AGE = dt.timedelta(days=14)
SETUP_TOKEN_TTL = dt.timedelta(hours=24)
_TOUCH_EVERY = dt.timedelta(minutes=1)  # one write per minute per session, not one per request


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The session's CSRF secret: forms and JS calls must echo it back.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def expired(self, now: dt.datetime) -> bool:
        return now - as_utc(self.last_seen_at) > SESSION_IDLE or now - as_utc(self.created_at) > SESSION_MAX_AGE


class SetupToken(Base):
    __tablename__ = "setup_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SetupError(Exception):
    """The setup token is wrong, expired or used, or a user already exists."""


# --- sessions ----------------------------------------------------------------------------------------


def start_session(meta: MetaStore, user_id: int, now: dt.datetime | None = None) -> tuple[WebSession, str]:
    """A new session for the user: the row, and the cookie value (only its digest is stored)."""
    now = now or utcnow()
    plaintext = secrets.token_urlsafe(32)
    with meta.sessions.begin() as db:
        db.execute(
            delete(WebSession).where(
                or_(WebSession.last_seen_at < now - SESSION_IDLE, WebSession.created_at < now - SESSION_MAX_AGE)
            )
        )
        session = WebSession(
            token_hash=digest(plaintext),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
        )
        db.add(session)
    return session, plaintext


def session_for(meta: MetaStore, plaintext: str, now: dt.datetime | None = None) -> WebSession | None:
    """The live session with this cookie value; an expired one is deleted on sight."""
    now = now or utcnow()
    with meta.sessions.begin() as db:
        session = db.scalars(select(WebSession).where(WebSession.token_hash == digest(plaintext))).first()
        if session is None:
            return None
        if session.expired(now):
            db.delete(session)
            return None
        if now - as_utc(session.last_seen_at) > _TOUCH_EVERY:
            session.last_seen_at = now
        return session


def end_session(meta: MetaStore, plaintext: str) -> None:
    with meta.sessions.begin() as db:
        db.execute(delete(WebSession).where(WebSession.token_hash == digest(plaintext)))


def end_sessions_of(meta: MetaStore, user_id: int) -> None:
    """Sign the user out everywhere (e.g. after a password change)."""
    with meta.sessions.begin() as db:
        db.execute(delete(WebSession).where(WebSession.user_id == user_id))


# --- first admin -------------------------------------------------------------------------------------


def issue_setup_token(meta: MetaStore, now: dt.datetime | None = None) -> str | None:
    """A fresh one-time setup token (earlier ones stop working), or None when a user already exists."""
    if user_count(meta) > 0:
        return None
    now = now or utcnow()
    plaintext = secrets.token_urlsafe(32)
    with meta.sessions.begin() as db:
        db.execute(delete(SetupToken))
        db.add(SetupToken(token_hash=digest(plaintext), expires_at=now + SETUP_TOKEN_TTL))
    return plaintext


def setup_token_valid(meta: MetaStore, plaintext: str, now: dt.datetime | None = None) -> bool:
    now = now or utcnow()
    with meta.sessions() as db:
        token = db.scalars(select(SetupToken).where(SetupToken.token_hash == digest(plaintext))).first()
        valid = token is not None and as_utc(token.expires_at) > now
    return valid and user_count(meta) == 0


def create_first_admin(
    meta: MetaStore, plaintext: str, email: str, password: str, now: dt.datetime | None = None
) -> User:
    """Spend the setup token on the first admin, who becomes an owner of every existing project.

    The token is consumed in one statement, so two racing requests cannot both
    create an admin. ValueError for a bad email or password (the token stays
    valid), SetupError when the token does not work.
    """
    now = now or utcnow()
    email = normalise_email(email)
    check_password_rules(password)
    with meta.sessions.begin() as db:
        # Write first: the transaction takes the write lock before it reads anything.
        spent = db.execute(
            delete(SetupToken).where(SetupToken.token_hash == digest(plaintext), SetupToken.expires_at > now)
        )
        if not getattr(spent, "rowcount", 0):
            raise SetupError("the setup token is wrong, expired or already used")
        if db.scalar(select(func.count()).select_from(User)):
            raise SetupError("setup is done: a user already exists")
        db.execute(delete(SetupToken))
    user = create_user(meta, email, password, admin=True)
    for project in meta.projects():
        add_member(meta, project.id, user.id, "owner")
    return user
