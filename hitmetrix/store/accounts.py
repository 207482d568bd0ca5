"""User accounts in the metadata store: users, Argon2 passwords, project memberships, personal API tokens.

Secrets are never stored: passwords as Argon2 hashes, API tokens as SHA-256
digests. Web sessions and the first-admin setup token live in ``web_sessions``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, DateTime, ForeignKey, String, delete, func, select, update
from sqlalchemy.orm import Mapped, mapped_column

from hitmetrix.store import audit
from hitmetrix.store.meta import Base, MetaStore, Project

# A project's roles, most powerful first: owners change settings and members and may delete the
# project; analysts read everything and handle alerts; viewers read (replays only while the project's
# ``viewers_can_replay`` holds). Admins (``User.is_admin``) manage users, not projects.
ROLES = ("owner", "analyst", "viewer")
ROLE_RANK = {"viewer": 1, "analyst": 2, "owner": 3}
# Stored before roles had names of their own: a "member" read everything, as an analyst does.
LEGACY_ROLES = {"member": "analyst"}
SCOPES = ("read", "write")
API_TOKEN_PREFIX = "hm_pat_"
MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024  # hashing is deliberately slow; refuse absurd inputs
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,253}$")
_TOUCH_EVERY = dt.timedelta(minutes=1)  # last_used_at is advisory: one write per minute at most

_hasher = PasswordHasher()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything here is stored as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set while the user may not sign in (hitmetrix.store.team deactivates and reactivates).
    deactivated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def active(self) -> bool:
        return self.deactivated_at is None


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), default="viewer")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    hint: Mapped[str] = mapped_column(String(16))  # the first characters, to tell tokens apart
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AccountLink(Base):
    """A one-time, expiring link an admin hands out: an invitation, or a password reset.

    The rules (create, spend atomically, revoke) are in ``hitmetrix.store.team``.
    """

    __tablename__ = "account_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "invitation" or "reset"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)  # reset
    # An invitation into a project that is deleted meanwhile goes with it.
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


# --- users and passwords ---------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValueError("not an email address")
    return email


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"the password must have at most {MAX_PASSWORD_CHARS} characters")


def create_user(meta: MetaStore, email: str, password: str, *, admin: bool = False) -> User:
    """A new user; ValueError for a bad email, a weak password or an email already taken."""
    email = normalise_email(email)
    check_password_rules(password)
    password_hash = _hasher.hash(password)
    with meta.sessions.begin() as db:
        if db.scalars(select(User.id).where(User.email == email)).first() is not None:
            raise ValueError(f"a user with email {email} already exists")
        user = User(email=email, password_hash=password_hash, is_admin=admin)
        db.add(user)
    return user


def user_by_email(meta: MetaStore, email: str) -> User | None:
    with meta.sessions() as db:
        return db.scalars(select(User).where(User.email == email.strip().lower())).first()


def user_by_id(meta: MetaStore, user_id: int) -> User | None:
    with meta.sessions() as db:
        return db.get(User, user_id)


def users(meta: MetaStore) -> list[User]:
    with meta.sessions() as db:
        return list(db.scalars(select(User).order_by(User.id)))


def user_count(meta: MetaStore) -> int:
    with meta.sessions() as db:
        return int(db.scalar(select(func.count()).select_from(User)) or 0)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_login(meta: MetaStore, email: str, password: str) -> User | None:
    """The user whose email and password these are, or None.

    An unknown email still costs one Argon2 verification, so the answer time
    does not tell which emails have accounts. Hashes made with older
    parameters are upgraded on success.
    """
    dummy = _dummy_hash()
    user = user_by_email(meta, email) if len(password) <= MAX_PASSWORD_CHARS else None
    ok: bool
    try:
        ok = _hasher.verify(user.password_hash if user else dummy, password[:MAX_PASSWORD_CHARS])
    except (VerificationError, InvalidHashError):
        ok = False
    if user is None or not ok or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        set_password(meta, user.id, password)
    return user


def set_password(meta: MetaStore, user_id: int, password: str) -> None:
    check_password_rules(password)
    with meta.sessions.begin() as db:
        db.execute(update(User).where(User.id == user_id).values(password_hash=_hasher.hash(password)))


# --- memberships -------------------------------------------------------------------------------------


def role_name(stored: str) -> str:
    """A stored role as one of ROLES (rows written before the three roles existed say "member")."""
    return LEGACY_ROLES.get(stored, stored)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return role


def add_member(meta: MetaStore, project_id: int, user_id: int, role: str = "viewer") -> None:
    """Make the user a member of the project with this role; an existing membership gets the new role.

    This is the raw write: ``hitmetrix.store.projects`` adds the rules (last owner, audit).
    """
    check_role(role)
    with meta.sessions.begin() as db:
        if db.get(Project, project_id) is None:
            raise KeyError(project_id)
        existing = db.get(Membership, (project_id, user_id))
        if existing is None:
            db.add(Membership(project_id=project_id, user_id=user_id, role=role))
        else:
            existing.role = role


def remove_member(meta: MetaStore, project_id: int, user_id: int) -> None:
    with meta.sessions.begin() as db:
        db.execute(delete(Membership).where(Membership.project_id == project_id, Membership.user_id == user_id))


def project_ids_of(meta: MetaStore, user_id: int) -> set[int]:
    with meta.sessions() as db:
        return set(db.scalars(select(Membership.project_id).where(Membership.user_id == user_id)))


def memberships_of(meta: MetaStore, user_id: int) -> dict[int, str]:
    """Project id → the user's role there."""
    with meta.sessions() as db:
        rows = db.execute(select(Membership.project_id, Membership.role).where(Membership.user_id == user_id))
        return {project_id: role_name(role) for project_id, role in rows}


def role_in(meta: MetaStore, project_id: int, user_id: int) -> str | None:
    with meta.sessions() as db:
        membership = db.get(Membership, (project_id, user_id))
        return role_name(membership.role) if membership else None


def members_of(meta: MetaStore, project_id: int) -> list[tuple[User, str]]:
    with meta.sessions() as db:
        rows = db.execute(
            select(User, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.project_id == project_id)
            .order_by(User.email)
        )
        return [(user, role_name(role)) for user, role in rows]


def create_owned_project(meta: MetaStore, user_id: int, name: str, ip_anonymisation: str = "truncate") -> Project:
    """A new project whose creator is its owner."""
    project = meta.create_project(name, ip_anonymisation)
    add_member(meta, project.id, user_id, "owner")
    return project


# --- personal API tokens -----------------------------------------------------------------------------


def create_api_token(meta: MetaStore, user_id: int, name: str, scope: str) -> tuple[ApiToken, str]:
    """A new token for the user: the stored row, and the plaintext (shown once, never stored)."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise ValueError("the token needs a name of 1 to 100 characters")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    plaintext = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with meta.sessions.begin() as db:
        token = ApiToken(user_id=user_id, name=name, scope=scope, token_hash=digest(plaintext), hint=plaintext[:12])
        db.add(token)
        db.flush()
        audit.add(db, user_id, "token_created", target=name, details={"token_id": token.id, "scope": scope})
    return token, plaintext


def api_token(meta: MetaStore, plaintext: str, now: dt.datetime | None = None) -> ApiToken | None:
    """The live (not revoked) token with this plaintext; notes when it was last used."""
    now = now or utcnow()
    with meta.sessions.begin() as db:
        token = db.scalars(select(ApiToken).where(ApiToken.token_hash == digest(plaintext))).first()
        if token is None or token.revoked_at is not None:
            return None
        if token.last_used_at is None or now - as_utc(token.last_used_at) > _TOUCH_EVERY:
            token.last_used_at = now
            # Audited at the same pace as the touch: once per token per minute, whatever the request rate.
            audit.add(db, token.user_id, "token_used", target=token.name, details={"token_id": token.id}, at=now)
        return token


def api_tokens_of(meta: MetaStore, user_id: int) -> list[ApiToken]:
    with meta.sessions() as db:
        return list(db.scalars(select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.id.desc())))


def revoke_api_token(meta: MetaStore, user_id: int, token_id: int, now: dt.datetime | None = None) -> bool:
    """Revoke one of the user's own tokens; False when the user has no such live token."""
    with meta.sessions.begin() as db:
        result = db.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
            .values(revoked_at=now or utcnow())
        )
        revoked = bool(getattr(result, "rowcount", 0))
        if revoked:
            audit.add(db, user_id, "token_revoked", details={"token_id": token_id}, at=now)
        return revoked
