"""The audit log: who did what, when, in which project, in the metadata store.

``record`` is called from request handlers and library functions alike, so it
is cheap (one INSERT) and safe: a failure to write an entry is logged and
counted in ``swallowed_errors``, never raised into the action it describes.
Library functions that change accounts write their entry with ``add`` inside
their own transaction, so the entry exists exactly when the change does.

Entries hold ids, not names: a project's entries stay (readable by admins)
after the project is deleted, and the actor's email is looked up when read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import DateTime, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from hitmetrix.store.meta import Base, MetaStore

log = logging.getLogger(__name__)

# Actions with a label for the audit pages. Other well-formed names are accepted too
# (shown as they are), so a new kind of action needs no change here to be recorded.
ACTIONS: dict[str, str] = {
    "sign_in": "Signed in",
    "sign_in_failed": "Sign-in failed",
    "sign_out": "Signed out",
    "user_invited": "Invited a user",
    "invitation_revoked": "Revoked an invitation",
    "invitation_accepted": "Accepted an invitation",
    "user_deactivated": "Deactivated a user",
    "user_reactivated": "Reactivated a user",
    "password_changed": "Changed their password",
    "password_reset_link_created": "Made a password reset link",
    "password_reset": "Reset their password",
    "sessions_ended": "Signed out their other sessions",
    "member_added": "Added a member",
    "member_role_changed": "Changed a member's role",
    "member_removed": "Removed a member",
    "project_created": "Created the project",
    "project_settings_changed": "Changed project settings",
    "project_deleted": "Deleted the project",
    "server_key_rotated": "Rotated the server key",
    "token_created": "Created an API token",
    "token_revoked": "Revoked an API token",
    "token_used": "Used an API token",
    "replay_viewed": "Watched a replay",
    "alert_state_changed": "Changed an alert's state",
    "decision_made": "Made a decision",
    "decision_revoked": "Revoked a decision",
    "allow_entry_added": "Added an allow-list entry",
    "allow_entry_removed": "Removed an allow-list entry",
    "webhook_added": "Added a webhook",
    "webhook_removed": "Removed a webhook",
}
_ACTION = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")
MAX_TARGET_CHARS = 320
MAX_DETAILS_BYTES = 4096
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_project_id_id", "project_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # No foreign keys: an entry must outlive what it names, and must never fail on it.
    actor_user_id: Mapped[int | None] = mapped_column(nullable=True, index=True)  # None: anonymous or local admin
    action: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[int | None] = mapped_column(nullable=True)
    target: Mapped[str] = mapped_column(String(MAX_TARGET_CHARS), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")  # a JSON object
    client_ip: Mapped[str] = mapped_column(String(64), default="")


class _Counter:
    """Audit entries that could not be written (tests assert it stays zero)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self) -> None:
        with self._lock:
            self.value += 1


swallowed_errors = _Counter()


def _details_json(details: dict[str, Any] | None) -> str:
    text = json.dumps(details or {}, ensure_ascii=False, default=str, separators=(",", ":"))
    if len(text.encode()) > MAX_DETAILS_BYTES:
        text = json.dumps({"truncated": text[: MAX_DETAILS_BYTES // 2]}, ensure_ascii=False)
    return text


def add(
    db: Session,
    actor_user_id: int | None,
    action: str,
    project_id: int | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
    *,
    client_ip: str = "",
    at: dt.datetime | None = None,
) -> AuditEntry:
    """Add an entry to an open transaction: it is written if and only if the transaction commits."""
    if not _ACTION.match(action):
        raise ValueError(f"not an audit action name: {action!r}")
    entry = AuditEntry(
        at=at or dt.datetime.now(dt.UTC),
        actor_user_id=actor_user_id,
        action=action,
        project_id=project_id,
        target=target[:MAX_TARGET_CHARS],
        details=_details_json(details),
        client_ip=client_ip[:64],
    )
    db.add(entry)
    return entry


def record(
    meta: MetaStore,
    actor_user_id: int | None,
    action: str,
    project_id: int | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
    *,
    client_ip: str = "",
    at: dt.datetime | None = None,
) -> bool:
    """Write one entry in its own short transaction; False (logged and counted) when it could not be.

    Blocking (one SQL write): from async code call it in a worker thread.
    """
    try:
        with meta.sessions.begin() as db:
            add(db, actor_user_id, action, project_id, target, details, client_ip=client_ip, at=at)
    except Exception as exc:  # noqa: BLE001 - the audited action has happened; its log entry must not undo it
        swallowed_errors.add()
        log.warning("audit entry %r not recorded: %s: %s", action, type(exc).__name__, exc)
        return False
    return True


@dataclass(frozen=True)
class AuditView:
    """One entry as the audit pages and the API show it."""

    id: int
    at: dt.datetime
    actor_user_id: int | None
    actor: str  # the actor's email now, "" when anonymous or the local admin
    action: str
    label: str
    project_id: int | None
    target: str
    details: dict[str, Any]
    client_ip: str

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor_user_id": self.actor_user_id,
            "actor": self.actor,
            "action": self.action,
            "project_id": self.project_id,
            "target": self.target,
            "details": self.details,
            "client_ip": self.client_ip,
        }


def _view(entry: AuditEntry, actor: str | None) -> AuditView:
    try:
        details = json.loads(entry.details or "{}")
    except ValueError:
        details = {}
    at = entry.at if entry.at.tzinfo is not None else entry.at.replace(tzinfo=dt.UTC)
    return AuditView(
        id=entry.id,
        at=at,
        actor_user_id=entry.actor_user_id,
        actor=actor or "",
        action=entry.action,
        label=ACTIONS.get(entry.action, entry.action.replace("_", " ").capitalize()),
        project_id=entry.project_id,
        target=entry.target,
        details=details if isinstance(details, dict) else {},
        client_ip=entry.client_ip,
    )


def entries(
    meta: MetaStore,
    project_id: int | None = None,
    *,
    before_id: int | None = None,
    limit: int = DEFAULT_PAGE_SIZE,
    action: str | None = None,
) -> list[AuditView]:
    """Newest first. With ``project_id``, only that project's entries; without, every entry (admins).

    Keyset pagination: pass the last id of a page as ``before_id`` for the next one.
    """
    from hitmetrix.store.accounts import User  # accounts records through this module: import it late

    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(AuditEntry, User.email).outerjoin(User, User.id == AuditEntry.actor_user_id)
    if project_id is not None:
        query = query.where(AuditEntry.project_id == project_id)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if action:
        query = query.where(AuditEntry.action == action)
    with meta.sessions() as db:
        rows = db.execute(query.order_by(AuditEntry.id.desc()).limit(limit)).all()
    return [_view(entry, email) for entry, email in rows]
