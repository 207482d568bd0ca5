"""Metadata (projects and their settings) in SQL via SQLAlchemy: SQLite by default, PostgreSQL by URL.

Accounts (users, memberships, tokens, sessions) are models on the same ``Base``
in ``accounts`` and ``web_sessions``. The schema is made and changed only by
the Alembic revisions in ``hitmetrix/store/migrations``, applied when a
MetaStore opens: a model field needs a revision.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import Boolean, DateTime, String, Text, create_engine, event, func, select, union_all
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

IP_ANONYMISATION = ("none", "truncate", "hash")


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    # 'none' keeps the address, 'truncate' zeroes the host part (/24, /48),
    # 'hash' replaces it with a keyed hash (stable per project, not reversible).
    ip_anonymisation: Mapped[str] = mapped_column(String(16), default="truncate")
    ip_hash_key: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_hex(32))
    # Newline-separated origins (scheme://host[:port]); empty allows any origin.
    allowed_origins: Mapped[str] = mapped_column(Text, default="")
    # Newline-separated query-string keys whose values are kept in stored URLs; every
    # other key's value is masked at capture (utm_* are always kept).
    allowed_query_keys: Mapped[str] = mapped_column(Text, default="", server_default="")
    # False: viewers see sessions but not their replays (analysts and owners always may).
    viewers_can_replay: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    # IANA zone name: the dashboard shows times in it and date filters ("from"/"to" days) mean its days.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # Optional recording features (the tracker loads their code only when on): console, fetch/XHR, web vitals.
    record_console: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    record_network: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    record_vitals: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=lambda: dt.datetime.now(dt.UTC))
    # Secret of server-side sources (SDK middleware, ingest-log): POST /api/v1/server/batch, decisions API.
    server_key: Mapped[str] = mapped_column(String(64), unique=True, index=True, default=lambda: new_server_key())
    # JSON text: how ingest-log tells a failed sign-in per route (hitmetrix.ingest.rules); "" for the defaults.
    auth_rules: Mapped[str] = mapped_column(Text, default="", server_default="")

    def origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.allowed_origins.splitlines() if o.strip()]

    @property
    def query_allowlist(self) -> tuple[str, ...]:
        """Query keys whose values capture keeps (besides ``utm_*``)."""
        return tuple(k for k in (self.allowed_query_keys or "").splitlines() if k)

    def script_tag(self, base_url: str) -> str:
        """The one tag a site adds to record visits, loading the tracker from base_url."""
        return f'<script async src="{base_url.rstrip("/")}/hm.js" data-key="{self.public_key}"></script>'


class DeletedProject(Base):
    """The id of a deleted project, never given to a new one: data that reaches the store late for
    a deleted project (a spool segment, a requeued quarantine item) must not show up in another."""

    __tablename__ = "deleted_projects"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    deleted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=lambda: dt.datetime.now(dt.UTC))


def _next_project_id() -> ColumnElement[int]:
    """One past every project id ever used, computed inside the INSERT (one statement: no race)."""
    used = union_all(select(Project.id), select(DeletedProject.id)).subquery()
    return select(func.coalesce(func.max(used.c.id), 0) + 1).scalar_subquery()


def parse_origins(text: str) -> str:
    """Allowed origins, one per line, checked and normalised to ``scheme://host[:port]``."""
    origins: list[str] = []
    for line in text.splitlines():
        line = line.strip().rstrip("/")
        if not line:
            continue
        try:
            parts = urlsplit(line)
            port = parts.port
        except ValueError:
            raise ValueError(f"not an origin: {line!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
            raise ValueError(f"not an origin (expected scheme://host[:port]): {line!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"an origin has no user name or password: {line!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        default_port = {"http": 80, "https": 443}[parts.scheme]  # browsers leave it out of Origin
        origin = f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default_port) else "")
        if origin not in origins:
            origins.append(origin)
    return "\n".join(origins)


_QUERY_KEY = re.compile(r"^[A-Za-z0-9_.\-\[\]]{1,64}$")
MAX_QUERY_KEYS = 100


def parse_query_keys(text: str) -> str:
    """Query-string keys, separated by commas, spaces or lines, checked and de-duplicated."""
    keys: list[str] = []
    for key in re.split(r"[\s,]+", text.strip()):
        if not key:
            continue
        if not _QUERY_KEY.match(key):
            raise ValueError(f"not a query key (1-64 of letters, digits, _ . - [ ]): {key[:80]!r}")
        if key not in keys:
            keys.append(key)
    if len(keys) > MAX_QUERY_KEYS:
        raise ValueError(f"at most {MAX_QUERY_KEYS} query keys")
    return "\n".join(keys)


def new_public_key() -> str:
    return "hm_pk_" + secrets.token_urlsafe(18)


def new_server_key() -> str:
    return "hm_sk_" + secrets.token_urlsafe(24)


class MetaStore:
    def __init__(self, url: str, data_dir: Path) -> None:
        if not url:
            data_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{data_dir / 'meta.sqlite3'}"
        self.engine: Engine = create_engine(url)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        # Models live in several modules on the same Base (accounts, web_sessions, …): import them all,
        # then bring the schema to the newest migration (the previous release's database included).
        from hitmetrix.store import migrations

        migrations.all_models()
        migrations.upgrade(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_project(self, name: str, ip_anonymisation: str = "truncate", allowed_origins: str = "") -> Project:
        if ip_anonymisation not in IP_ANONYMISATION:
            raise ValueError(f"ip_anonymisation must be one of {', '.join(IP_ANONYMISATION)}")
        with self.sessions.begin() as db:
            project = Project(
                id=_next_project_id(),
                name=name,
                public_key=new_public_key(),
                ip_anonymisation=ip_anonymisation,
                allowed_origins=allowed_origins,
            )
            db.add(project)
        return project

    def projects(self) -> list[Project]:
        with self.sessions() as db:
            return list(db.scalars(select(Project).order_by(Project.id)))

    def project(self, project_id: int) -> Project | None:
        with self.sessions() as db:
            return db.get(Project, project_id)

    def project_by_key(self, public_key: str) -> Project | None:
        with self.sessions() as db:
            return db.scalars(select(Project).where(Project.public_key == public_key)).first()

    def deleted_among(self, project_ids: set[int]) -> set[int]:
        """Which of ``project_ids`` belong to deleted projects (the loader drops their late data)."""
        with self.sessions() as db:
            return set(db.scalars(select(DeletedProject.id).where(DeletedProject.id.in_(sorted(project_ids)))))

    def project_by_server_key(self, server_key: str) -> Project | None:
        with self.sessions() as db:
            return db.scalars(select(Project).where(Project.server_key == server_key)).first()

    def project_by_name(self, name: str) -> Project | None:
        with self.sessions() as db:
            return db.scalars(select(Project).where(Project.name == name).order_by(Project.id)).first()

    def update_project(self, project_id: int, **fields: str) -> Project:
        with self.sessions.begin() as db:
            project = db.get(Project, project_id)
            if project is None:
                raise KeyError(project_id)
            for key, value in fields.items():
                if key == "ip_anonymisation" and value not in IP_ANONYMISATION:
                    raise ValueError(f"ip_anonymisation must be one of {', '.join(IP_ANONYMISATION)}")
                setattr(project, key, value)
        return project

    def db(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
