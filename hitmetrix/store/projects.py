"""Projects as the CLI and the dashboard change them: names, owners, members, deletion.

The rules live here, once: a project's name is 1–200 characters; a project
keeps at least one owner (the last one can neither leave nor be demoted);
admins may add themselves to any project; a project made before any admin
exists is adopted by the first admin. Every change is audited in the same
transaction as the change itself.

Deleting a project deletes its metadata rows (memberships with them), keeps
its id as a tombstone so it is never given to another project, then its rows
in every ClickHouse table that has a ``project_id`` column, its recording
files and its chunks still waiting in the loader's inbox.
"""

from __future__ import annotations

import functools
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hitmetrix.store import audit
from hitmetrix.store.accounts import Membership, User, check_role, role_name
from hitmetrix.store.clickhouse import EventStore
from hitmetrix.store.meta import (
    IP_ANONYMISATION,
    DeletedProject,
    MetaStore,
    Project,
    new_server_key,
    parse_origins,
    parse_query_keys,
)
from hitmetrix.store.schema import DATABASE
from hitmetrix.timezones import DEFAULT_TIME_ZONE, parse_time_zone

MAX_PROJECT_NAME_CHARS = 200
INBOX_DIR = "inbox"  # the loader's recordings inbox under the data directory, one folder per project
NO_SUCH_USER = "No user has that email. Invite them first (Users page) or create the account (hitmetrix user create)."


class LastOwnerError(ValueError):
    """The change would leave a project without an owner."""

    def __init__(self) -> None:
        super().__init__("a project keeps at least one owner: make someone else owner first")


class NoSuchUserError(ValueError):
    def __init__(self) -> None:
        super().__init__(NO_SUCH_USER)


def project_name(raw: str) -> str:
    """The name to store, or ValueError saying what a name must be."""
    name = raw.strip()
    if not 1 <= len(name) <= MAX_PROJECT_NAME_CHARS or "\x00" in name:
        raise ValueError(f"a project needs a name of 1 to {MAX_PROJECT_NAME_CHARS} characters")
    return name


def first_admin(meta: MetaStore) -> User | None:
    with meta.sessions() as db:
        return db.scalars(select(User).where(User.is_admin.is_(True)).order_by(User.id)).first()


def create_project(
    meta: MetaStore,
    name: str,
    *,
    owner_id: int | None,
    actor_id: int | None = None,
    ip_anonymisation: str = "truncate",
    allowed_origins: str = "",
    time_zone: str = DEFAULT_TIME_ZONE,
) -> Project:
    """A new project owned by ``owner_id`` (None: ownerless until the first admin adopts it)."""
    time_zone = parse_time_zone(time_zone)
    project = meta.create_project(project_name(name), ip_anonymisation, allowed_origins)
    with meta.sessions.begin() as db:
        if time_zone != project.time_zone:
            db.execute(update(Project).where(Project.id == project.id).values(time_zone=time_zone))
            project.time_zone = time_zone
        if owner_id is not None:
            db.add(Membership(project_id=project.id, user_id=owner_id, role="owner"))
        audit.add(db, actor_id if actor_id is not None else owner_id, "project_created", project.id, project.name)
    return project


def adopt_ownerless_projects(meta: MetaStore, user_id: int) -> list[int]:
    """Make the user owner of every project that has no owner (a new admin: projects made before any
    user existed must not stay out of everyone's reach). Returns those projects' ids."""
    with meta.sessions.begin() as db:
        owned = select(Membership.project_id).where(Membership.role == "owner")
        orphans = list(db.scalars(select(Project.id).where(Project.id.not_in(owned)).order_by(Project.id)))
        for project_id in orphans:
            existing = db.get(Membership, (project_id, user_id))
            if existing is None:
                db.add(Membership(project_id=project_id, user_id=user_id, role="owner"))
            else:
                existing.role = "owner"
            audit.add(db, user_id, "member_added", project_id, str(user_id), {"role": "owner", "adopted": True})
    return orphans


# --- settings ----------------------------------------------------------------------------------------


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string")
    return value


def _lines(name: str, value: Any) -> str:
    """A list of strings, or one string of lines (a form's textarea)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a list of strings")


def _ip_mode(value: Any) -> str:
    mode = _text("ip_anonymisation", value)
    if mode not in IP_ANONYMISATION:
        raise ValueError(f"ip_anonymisation must be one of {', '.join(IP_ANONYMISATION)}")
    return mode


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


# Optional recording features (Project columns, all off by default): the tracker loads each one's code only when on.
RECORDING_FEATURES = ("record_console", "record_network", "record_vitals")

# Each setting an owner may change, with its check: the dashboard's form and the API's PATCH both use these.
SETTINGS: dict[str, Callable[[Any], Any]] = {
    "name": lambda v: project_name(_text("name", v)),
    "ip_anonymisation": _ip_mode,
    "allowed_origins": lambda v: parse_origins(_lines("allowed_origins", v)),
    "allowed_query_keys": lambda v: parse_query_keys(_lines("allowed_query_keys", v)),
    "viewers_can_replay": lambda v: _flag("viewers_can_replay", v),
    "time_zone": lambda v: parse_time_zone(_text("time_zone", v)),
    **{name: functools.partial(_flag, name) for name in RECORDING_FEATURES},
    "auth_rules": lambda v: _auth_rules(v),
}
MAX_AUTH_RULES_CHARS = 20_000


def _auth_rules(value: Any) -> str:
    """How ingest-log tells failed sign-ins (docs/server-sources.md): a JSON array, as text or as a list."""
    # The rule checker belongs to ingest-log, its only reader; it is a pure module, imported when used.
    from hitmetrix.ingest.rules import parse_rules

    if isinstance(value, list):
        text = json.dumps(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise ValueError("auth_rules must be a JSON array of rules, or empty for the built-in rules")
    if len(text) > MAX_AUTH_RULES_CHARS:
        raise ValueError(f"auth_rules must be at most {MAX_AUTH_RULES_CHARS} characters")
    parse_rules(text)  # ValueError naming the rule and field
    return "" if text in ("", "[]") else text


def settings_changes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The checked values of the settings in ``raw``; ValueError naming the first one that is wrong."""
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise ValueError(f"unknown field: {unknown[0]}")
    return {name: SETTINGS[name](value) for name, value in raw.items()}


def update_settings(meta: MetaStore, project_id: int, raw: Mapping[str, Any], *, actor_id: int | None) -> Project:
    """Check and apply setting changes, audited with what changed. ValueError, KeyError (no project)."""
    changes = settings_changes(raw)
    with meta.sessions.begin() as db:
        project = _lock_project(db, project_id)
        changed = {name: value for name, value in changes.items() if getattr(project, name) != value}
        for name, value in changed.items():
            setattr(project, name, value)
        if changed:
            audit.add(db, actor_id, "project_settings_changed", project_id, project.name, {"changed": sorted(changed)})
    return project


# --- members -----------------------------------------------------------------------------------------


def _lock_project(db: Session, project_id: int) -> Project:
    """Take the project's row for this transaction (a write: SQLite's lock, PostgreSQL's row lock), so two
    changes of its members cannot both see a second owner and both remove one. KeyError if it is gone."""
    locked = db.execute(update(Project).where(Project.id == project_id).values(name=Project.name))
    project = db.get(Project, project_id) if getattr(locked, "rowcount", 0) else None
    if project is None:
        raise KeyError(project_id)
    return project


def _owners_left(db: Session, project_id: int) -> int:
    query = select(func.count()).where(Membership.project_id == project_id, Membership.role == "owner")
    return int(db.scalar(query) or 0)


def add_member_by_email(meta: MetaStore, project_id: int, email: str, role: str, *, actor_id: int | None) -> User:
    """Add the user with this email (or give an existing member the role). NoSuchUserError, ValueError."""
    with meta.sessions() as db:
        user = db.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        raise NoSuchUserError()
    set_role(meta, project_id, user.id, role, actor_id=actor_id)
    return user


def set_role(meta: MetaStore, project_id: int, user_id: int, role: str, *, actor_id: int | None) -> None:
    """Make the user a member with this role (adding them if need be); the last owner stays owner."""
    check_role(role)
    with meta.sessions.begin() as db:
        _lock_project(db, project_id)
        if db.get(User, user_id) is None:
            raise NoSuchUserError()
        existing = db.get(Membership, (project_id, user_id))
        before = role_name(existing.role) if existing is not None else None
        if before == role:
            return
        if existing is None:
            db.add(Membership(project_id=project_id, user_id=user_id, role=role))
        else:
            existing.role = role
        db.flush()
        if _owners_left(db, project_id) == 0:
            raise LastOwnerError()
        action = "member_added" if existing is None else "member_role_changed"
        audit.add(db, actor_id, action, project_id, str(user_id), {"role": role, "was": before})


def remove_member(meta: MetaStore, project_id: int, user_id: int, *, actor_id: int | None) -> bool:
    """Remove the membership; False when there was none. LastOwnerError for the last owner."""
    with meta.sessions.begin() as db:
        _lock_project(db, project_id)
        existing = db.get(Membership, (project_id, user_id))
        if existing is None:
            return False
        was = role_name(existing.role)
        db.delete(existing)
        db.flush()
        if was == "owner" and _owners_left(db, project_id) == 0:
            raise LastOwnerError()
        audit.add(db, actor_id, "member_removed", project_id, str(user_id), {"was": was})
    return True


def join_as_admin(meta: MetaStore, project_id: int, admin_id: int) -> None:
    """An admin makes themselves owner of a project (e.g. one nobody can reach any more)."""
    with meta.sessions() as db:
        user = db.get(User, admin_id)
    if user is None or not user.is_admin:
        raise PermissionError("only administrators may add themselves to a project")
    set_role(meta, project_id, admin_id, "owner", actor_id=admin_id)


# --- deletion ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletedData:
    """What deleting a project's data removed, for the caller to report."""

    tables: tuple[str, ...]
    blob_dirs: int


def delete_project(meta: MetaStore, project_id: int, *, actor_id: int | None) -> Project:
    """Delete the project's metadata (memberships too) and keep its id as a tombstone. KeyError if none.

    Call ``delete_project_data`` next: the metadata goes first so capture stops taking the project's
    batches before its stored data is deleted.
    """
    with meta.sessions.begin() as db:
        project = _lock_project(db, project_id)
        db.execute(delete(Membership).where(Membership.project_id == project_id))
        db.delete(project)
        db.add(DeletedProject(id=project_id))
        audit.add(db, actor_id, "project_deleted", project_id, project.name)
    return project


def rotate_server_key(meta: MetaStore, project_id: int, *, actor_id: int | None) -> Project:
    """Give the project a new server key (the old one stops working), audited. KeyError if no project."""
    with meta.sessions.begin() as db:
        project = _lock_project(db, project_id)
        project.server_key = new_server_key()
        audit.add(db, actor_id, "server_key_rotated", project_id, project.name)
    return project


def project_tables(store: EventStore) -> list[str]:
    """Every table of the store that holds rows per project (a MergeTree table with a project_id column)."""
    rows = store.query(
        """SELECT table FROM system.columns
WHERE database = {db:String} AND name = 'project_id'
  AND table IN (SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree')
ORDER BY table""",
        {"db": DATABASE},
    )
    return [str(row["table"]) for row in rows]


def delete_project_data(store: EventStore, project_id: int, *, blobs_root: Path, data_dir: Path) -> DeletedData:
    """Delete the project's rows from every project table (waiting for the mutations to finish), its
    recording files and the chunks still in the loader's inbox."""
    tables = project_tables(store)
    for table in tables:
        store.execute(
            f"ALTER TABLE {DATABASE}.{table} DELETE WHERE project_id = {{project_id:UInt32}}"
            " SETTINGS mutations_sync = 2",
            {"project_id": project_id},
        )
    removed = 0
    for folder in (blobs_root / str(project_id), data_dir / INBOX_DIR / str(project_id)):
        if folder.is_dir():
            shutil.rmtree(folder)
            removed += 1
    return DeletedData(tuple(tables), removed)

