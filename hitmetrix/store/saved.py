"""Saved views and cohorts of a project, in the metadata store.

A **saved view** is a named link to an analytics page with its query string (range, filters, the page's own
parameters), so "DE mobile visitors from the newsletter" is one click away for everyone in the project. A
**cohort** is a named set of people defined by conditions (``hitmetrix.analytics.cohorts`` parses and runs the
definition; this module keeps its JSON text). Both belong to a project and go with it when it is deleted; names
are unique within a project (compared as stored, after trimming). Every change is audited in the same
transaction as the change itself.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import DateTime, ForeignKey, Index, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from hitmetrix.store import audit
from hitmetrix.store.meta import Base, MetaStore

MAX_NAME_CHARS = 200
MAX_QUERY_CHARS = 4000
MAX_DEFINITION_CHARS = 8000
MAX_PER_PROJECT = 500  # a list past this is a script gone wrong, not a team's bookmarks
_PAGE = re.compile(r"^[a-z][a-z_]{0,31}$")


class NameTaken(ValueError):
    """Another saved view (or cohort) of the project has this name."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"a {kind} named {name!r} exists already in this project: choose another name")


class SavedView(Base):
    __tablename__ = "saved_views"
    __table_args__ = (Index("ix_saved_views_project_id_name", "project_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    page: Mapped[str] = mapped_column(String(32))  # an analytics page under /projects/{id}/, e.g. "overview"
    query: Mapped[str] = mapped_column(Text, default="")  # its query string, without "?", re-encoded
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    def url(self) -> str:
        return f"/projects/{self.project_id}/{self.page}" + (f"?{self.query}" if self.query else "")


class Cohort(Base):
    __tablename__ = "cohorts"
    __table_args__ = (Index("ix_cohorts_project_id_name", "project_id", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    definition: Mapped[str] = mapped_column(Text)  # a JSON object (hitmetrix.analytics.cohorts.CohortDefinition)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


# --- checks -------------------------------------------------------------------------------------------------


def check_name(raw: str) -> str:
    name = raw.strip()
    if not 1 <= len(name) <= MAX_NAME_CHARS or any(ord(c) < 32 for c in name):
        raise ValueError(f"a name has 1 to {MAX_NAME_CHARS} characters, and no control characters")
    return name


def check_page(page: str) -> str:
    if not _PAGE.match(page):
        raise ValueError("page must be the name of an analytics page, like overview")
    return page


def normalise_query(raw: str) -> str:
    """The query string re-encoded from its pairs (no fragment, no control characters survive), without "?"."""
    text = raw.strip().removeprefix("?")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"the query string has at most {MAX_QUERY_CHARS} characters")
    try:
        pairs = parse_qsl(text, keep_blank_values=False, strict_parsing=False, max_num_fields=200)
    except ValueError:
        raise ValueError("the query string has too many parameters (at most 200)") from None
    if any(ord(c) < 32 for k, v in pairs for c in k + v):
        raise ValueError("the query string may not hold control characters")
    encoded = urlencode(pairs)
    if len(encoded) > MAX_QUERY_CHARS:
        raise ValueError(f"the query string has at most {MAX_QUERY_CHARS} characters")
    return encoded


def check_definition(text: str) -> str:
    """A JSON object of bounded size, stored as given (the analytics layer checked what it means)."""
    if len(text) > MAX_DEFINITION_CHARS:
        raise ValueError(f"a definition has at most {MAX_DEFINITION_CHARS} characters")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("a definition is a JSON object") from None
    if not isinstance(data, dict):
        raise ValueError("a definition is a JSON object")
    return text


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def utc(moment: dt.datetime) -> dt.datetime:
    """A stored time as an aware UTC time (SQLite hands back times without their zone)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _count(db: Session, model: type[SavedView] | type[Cohort], project_id: int) -> int:
    return len(list(db.scalars(select(model.id).where(model.project_id == project_id).limit(MAX_PER_PROJECT + 1))))


# --- saved views --------------------------------------------------------------------------------------------


def add_view(meta: MetaStore, project_id: int, name: str, page: str, query: str, *, actor_id: int | None
             ) -> SavedView:
    """Save a view; ValueError (NameTaken for a name in use) saying what is wrong."""
    name, page, query = check_name(name), check_page(page), normalise_query(query)
    try:
        with meta.sessions.begin() as db:
            if _count(db, SavedView, project_id) >= MAX_PER_PROJECT:
                raise ValueError(f"a project keeps at most {MAX_PER_PROJECT} saved views: delete some first")
            view = SavedView(project_id=project_id, name=name, page=page, query=query, created_by=actor_id,
                             created_at=_now())
            db.add(view)
            db.flush()
            audit.add(db, actor_id, "saved_view_created", project_id, name, {"id": view.id, "page": page})
    except IntegrityError:
        raise NameTaken("saved view", name) from None
    return view


def views(meta: MetaStore, project_id: int) -> list[SavedView]:
    with meta.sessions() as db:
        return list(db.scalars(select(SavedView).where(SavedView.project_id == project_id)
                               .order_by(SavedView.name, SavedView.id)))


def view(meta: MetaStore, project_id: int, view_id: int) -> SavedView | None:
    """The view, or None when there is none of that id in this project."""
    with meta.sessions() as db:
        found = db.get(SavedView, view_id)
        return found if found is not None and found.project_id == project_id else None


def rename_view(meta: MetaStore, project_id: int, view_id: int, name: str, *, actor_id: int | None
                ) -> SavedView | None:
    name = check_name(name)
    try:
        with meta.sessions.begin() as db:
            found = db.get(SavedView, view_id)
            if found is None or found.project_id != project_id:
                return None
            if found.name != name:
                audit.add(db, actor_id, "saved_view_renamed", project_id, name, {"id": view_id, "was": found.name})
                found.name = name
    except IntegrityError:
        raise NameTaken("saved view", name) from None
    return found


def delete_view(meta: MetaStore, project_id: int, view_id: int, *, actor_id: int | None) -> bool:
    """Delete it; False when the project has no view of that id."""
    with meta.sessions.begin() as db:
        found = db.get(SavedView, view_id)
        if found is None or found.project_id != project_id:
            return False
        db.delete(found)
        audit.add(db, actor_id, "saved_view_deleted", project_id, found.name, {"id": view_id})
    return True


# --- cohorts ------------------------------------------------------------------------------------------------


def add_cohort(meta: MetaStore, project_id: int, name: str, definition: str, *, actor_id: int | None) -> Cohort:
    """Save a cohort; ValueError (NameTaken for a name in use) saying what is wrong."""
    name, definition = check_name(name), check_definition(definition)
    try:
        with meta.sessions.begin() as db:
            if _count(db, Cohort, project_id) >= MAX_PER_PROJECT:
                raise ValueError(f"a project keeps at most {MAX_PER_PROJECT} cohorts: delete some first")
            now = _now()
            cohort = Cohort(project_id=project_id, name=name, definition=definition, created_by=actor_id,
                            created_at=now, updated_at=now)
            db.add(cohort)
            db.flush()
            audit.add(db, actor_id, "cohort_created", project_id, name, {"id": cohort.id})
    except IntegrityError:
        raise NameTaken("cohort", name) from None
    return cohort


def cohorts(meta: MetaStore, project_id: int) -> list[Cohort]:
    with meta.sessions() as db:
        return list(db.scalars(select(Cohort).where(Cohort.project_id == project_id).order_by(Cohort.name, Cohort.id)))


def cohort(meta: MetaStore, project_id: int, cohort_id: int) -> Cohort | None:
    """The cohort, or None when this project has none of that id (another project's is None too)."""
    with meta.sessions() as db:
        found = db.get(Cohort, cohort_id)
        return found if found is not None and found.project_id == project_id else None


def update_cohort(meta: MetaStore, project_id: int, cohort_id: int, *, name: str | None = None,
                  definition: str | None = None, actor_id: int | None) -> Cohort | None:
    """Rename it and/or give it a new definition; None when the project has no cohort of that id."""
    name = check_name(name) if name is not None else None
    definition = check_definition(definition) if definition is not None else None
    try:
        with meta.sessions.begin() as db:
            found = db.get(Cohort, cohort_id)
            if found is None or found.project_id != project_id:
                return None
            changed = []
            if name is not None and name != found.name:
                found.name = name
                changed.append("name")
            if definition is not None and definition != found.definition:
                found.definition = definition
                changed.append("definition")
            if changed:
                found.updated_at = _now()
                audit.add(db, actor_id, "cohort_changed", project_id, found.name, {"id": cohort_id, "changed": changed})
    except IntegrityError:
        raise NameTaken("cohort", name or "") from None
    return found


def delete_cohort(meta: MetaStore, project_id: int, cohort_id: int, *, actor_id: int | None) -> bool:
    """Delete it; False when the project has no cohort of that id."""
    with meta.sessions.begin() as db:
        found = db.get(Cohort, cohort_id)
        if found is None or found.project_id != project_id:
            return False
        db.delete(found)
        audit.add(db, actor_id, "cohort_deleted", project_id, found.name, {"id": cohort_id})
    return True
