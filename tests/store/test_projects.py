"""Project rules shared by the CLI and the web: names, owners, members, settings, deletion (real SQLite, real chDB)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from hitmetrix.store import accounts, audit, projects
from hitmetrix.store.blobs import BlobStore
from hitmetrix.store.clickhouse import ChdbStore
from hitmetrix.store.meta import MetaStore
from hitmetrix.store.schema import DATABASE, PROJECT_TABLES

PASSWORD = "correct horse battery"


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetaStore]:
    store = MetaStore("", tmp_path / "meta")
    yield store
    store.close()


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbStore]:
    store = ChdbStore(tmp_path_factory.mktemp("projects") / "store")
    yield store
    store.close()


def user(meta: MetaStore, email: str, *, admin: bool = False) -> int:
    return accounts.create_user(meta, email, PASSWORD, admin=admin).id


def actions(meta: MetaStore, project_id: int) -> list[str]:
    return [entry.action for entry in reversed(audit.entries(meta, project_id))]


@pytest.mark.parametrize("raw", ["", "   ", "x" * 201, "a\x00b"])
def test_a_project_name_is_1_to_200_characters(raw: str) -> None:
    with pytest.raises(ValueError, match="a project needs a name of 1 to 200 characters"):
        projects.project_name(raw)
    assert projects.project_name("  Shop  ") == "Shop"


def test_created_projects_have_their_owner_and_are_audited(meta: MetaStore) -> None:
    ann = user(meta, "ann@example.com")
    shop = projects.create_project(meta, " Shop ", owner_id=ann)
    assert shop.name == "Shop"
    assert accounts.members_of(meta, shop.id)[0][1] == "owner"
    assert actions(meta, shop.id) == ["project_created"]


def test_the_last_owner_can_neither_leave_nor_be_demoted(meta: MetaStore) -> None:
    ann, bob = user(meta, "ann@example.com"), user(meta, "bob@example.com")
    shop = projects.create_project(meta, "shop", owner_id=ann)
    with pytest.raises(projects.LastOwnerError):
        projects.set_role(meta, shop.id, ann, "viewer", actor_id=ann)
    with pytest.raises(projects.LastOwnerError):
        projects.remove_member(meta, shop.id, ann, actor_id=ann)
    assert accounts.role_in(meta, shop.id, ann) == "owner"
    projects.add_member_by_email(meta, shop.id, "BOB@example.com ", "owner", actor_id=ann)
    projects.set_role(meta, shop.id, ann, "analyst", actor_id=ann)  # another owner exists now
    assert accounts.role_in(meta, shop.id, ann) == "analyst"
    assert projects.remove_member(meta, shop.id, ann, actor_id=bob)
    assert not projects.remove_member(meta, shop.id, ann, actor_id=bob)  # already gone
    assert actions(meta, shop.id) == [
        "project_created",
        "member_added",
        "member_role_changed",
        "member_removed",
    ]
    with pytest.raises(projects.NoSuchUserError):
        projects.add_member_by_email(meta, shop.id, "nobody@example.com", "viewer", actor_id=bob)
    with pytest.raises(ValueError, match="role must be one of owner, analyst, viewer"):
        projects.add_member_by_email(meta, shop.id, "ann@example.com", "member", actor_id=bob)


def test_two_owners_demoting_each_other_at_once_leave_one_owner(meta: MetaStore) -> None:
    """The last-owner check and the write are one transaction: no race leaves a project ownerless."""
    ann, bob = user(meta, "ann@example.com"), user(meta, "bob@example.com")
    for round_no in range(10):
        shop = projects.create_project(meta, f"shop {round_no}", owner_id=ann)
        projects.set_role(meta, shop.id, bob, "owner", actor_id=ann)
        outcomes = demote_both_at_once(meta, shop.id, (ann, bob))
        assert sorted(outcomes) == ["demoted", "refused"]
        assert [role for _, role in accounts.members_of(meta, shop.id)].count("owner") == 1


def demote_both_at_once(meta: MetaStore, project_id: int, owners: tuple[int, int]) -> list[str]:
    start = threading.Barrier(len(owners))
    outcomes: list[str] = []

    def demote(user_id: int) -> None:
        start.wait()
        try:
            projects.set_role(meta, project_id, user_id, "viewer", actor_id=user_id)
            outcomes.append("demoted")
        except projects.LastOwnerError:
            outcomes.append("refused")

    threads = [threading.Thread(target=demote, args=(who,)) for who in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_admins_adopt_ownerless_projects_and_may_join_any(meta: MetaStore) -> None:
    orphan = projects.create_project(meta, "made from the CLI", owner_id=None)
    ann = user(meta, "ann@example.com")
    owned = projects.create_project(meta, "ann's", owner_id=ann)
    root = user(meta, "root@example.com", admin=True)
    assert projects.first_admin(meta) is not None and projects.first_admin(meta).id == root  # type: ignore[union-attr]
    assert projects.adopt_ownerless_projects(meta, root) == [orphan.id]
    assert accounts.memberships_of(meta, root) == {orphan.id: "owner"}
    with pytest.raises(PermissionError):
        projects.join_as_admin(meta, orphan.id, ann)
    projects.join_as_admin(meta, owned.id, root)
    assert accounts.role_in(meta, owned.id, root) == "owner"


def test_settings_are_checked_and_audited(meta: MetaStore) -> None:
    ann = user(meta, "ann@example.com")
    shop = projects.create_project(meta, "shop", owner_id=ann)
    changed = projects.update_settings(
        meta,
        shop.id,
        {"allowed_origins": ["https://Shop.example/"], "allowed_query_keys": "page, q", "viewers_can_replay": False},
        actor_id=ann,
    )
    assert changed.origins() == ["https://shop.example"]
    assert changed.query_allowlist == ("page", "q")
    assert changed.viewers_can_replay is False
    for bad, message in (
        ({"viewers_can_replay": "no"}, "viewers_can_replay must be true or false"),
        ({"allowed_origins": "ftp://x"}, "not an origin"),
        ({"allowed_query_keys": "a b<c"}, "not a query key"),
        ({"ip_anonymisation": "all"}, "ip_anonymisation must be one of"),
        ({"public_key": "mine"}, "unknown field: public_key"),
    ):
        with pytest.raises(ValueError, match=message):
            projects.update_settings(meta, shop.id, bad, actor_id=ann)
    entries = audit.entries(meta, shop.id, action="project_settings_changed")
    assert [e.details["changed"] for e in entries] == [["allowed_origins", "allowed_query_keys", "viewers_can_replay"]]


def test_deleting_a_project_deletes_its_data_and_only_its(meta: MetaStore, chdb: ChdbStore, tmp_path: Path) -> None:
    ann = user(meta, "ann@example.com")
    doomed = projects.create_project(meta, "doomed", owner_id=ann)
    kept = projects.create_project(meta, "kept", owner_id=ann)
    tables = projects.project_tables(chdb)
    assert set(tables) >= PROJECT_TABLES, "every table the tenancy check guards is one deletion empties"
    now = dt.datetime.now(dt.UTC)
    for table in tables:
        # Times now, not the columns' zero default: a TTL would otherwise delete the rows by itself.
        times = [
            row["name"]
            for row in chdb.query(
                "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}"
                " AND type LIKE 'DateTime%' AND default_kind = ''",
                {"db": DATABASE, "t": table},
            )
        ]
        for project_id in (doomed.id, kept.id):
            rows = {"project_id": pa.array([project_id], pa.uint32())}
            rows |= {name: pa.array([now], pa.timestamp("ms", tz="UTC")) for name in times}
            chdb.insert_arrow(f"{DATABASE}.{table}", pa.table(rows))
    blobs = BlobStore(tmp_path / "recordings")
    data_dir = tmp_path / "data"
    for project_id in (doomed.id, kept.id):
        blobs.put(BlobStore.chunk_key(project_id, "session1234", 0), b"chunk")
        inbox = data_dir / projects.INBOX_DIR / str(project_id)
        inbox.mkdir(parents=True)
        (inbox / "session1234.0000000000.chunk").write_bytes(b"waiting")

    gone = projects.delete_project(meta, doomed.id, actor_id=ann)
    assert gone.name == "doomed" and meta.project(doomed.id) is None
    assert accounts.members_of(meta, doomed.id) == []
    deleted = projects.delete_project_data(chdb, doomed.id, blobs_root=blobs.root, data_dir=data_dir)
    assert set(deleted.tables) == set(tables) and deleted.blob_dirs == 2

    for table in tables:
        counts = {
            project_id: chdb.query(
                f"SELECT count() AS n FROM {DATABASE}.{table} WHERE project_id = {{p:UInt32}}", {"p": project_id}
            )[0]["n"]
            for project_id in (doomed.id, kept.id)
        }
        assert counts[doomed.id] == 0 and counts[kept.id] >= 1, (table, counts)
    assert not (blobs.root / str(doomed.id)).exists() and (blobs.root / str(kept.id)).is_dir()
    assert not (data_dir / projects.INBOX_DIR / str(doomed.id)).exists()
    assert (data_dir / projects.INBOX_DIR / str(kept.id)).is_dir()
    assert [e.action for e in audit.entries(meta, doomed.id)][0] == "project_deleted"  # the log outlives it
    with pytest.raises(KeyError):
        projects.delete_project(meta, doomed.id, actor_id=ann)


def test_a_deleted_projects_id_is_never_given_again(meta: MetaStore) -> None:
    """Late data for a deleted project (a spool segment, a requeued item) must never land in a new one."""
    ann = user(meta, "ann@example.com")
    first = projects.create_project(meta, "first", owner_id=ann)
    newest = projects.create_project(meta, "newest", owner_id=ann)
    projects.delete_project(meta, newest.id, actor_id=ann)
    again = projects.create_project(meta, "again", owner_id=ann)
    demo = meta.create_project("demo")  # the runtime's own way of making one
    assert again.id > newest.id > first.id and demo.id > again.id


def test_members_of_the_previous_release_become_analysts(tmp_path: Path) -> None:
    """Revision 0005 renames the old catch-all role: a "member" read everything, as an analyst does."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from hitmetrix.store import migrations

    url = f"sqlite:///{tmp_path / 'meta.sqlite3'}"
    engine = create_engine(url)
    with engine.connect() as connection:
        config = Config()
        config.set_main_option("script_location", str(migrations.HERE))
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")
        connection.execute(text("INSERT INTO projects (id, name, public_key, ip_anonymisation, ip_hash_key, "
                                "allowed_origins, allowed_query_keys, time_zone, viewers_can_replay, created_at) "
                                "VALUES (1, 'old', 'hm_pk_old', 'truncate', 'k', '', '', 'UTC', 1, '2026-01-01')"))
        connection.execute(text("INSERT INTO users (id, email, password_hash, is_admin, created_at) "
                                "VALUES (1, 'old@example.com', 'x', 0, '2026-01-01')"))
        connection.execute(text("INSERT INTO memberships (project_id, user_id, role) VALUES (1, 1, 'member')"))
        connection.commit()
    engine.dispose()
    meta = MetaStore(url, tmp_path)
    try:
        with meta.engine.connect() as connection:
            stored = connection.execute(text("SELECT role FROM memberships")).scalar_one()
        assert stored == "analyst"
        assert accounts.role_in(meta, 1, 1) == "analyst"
    finally:
        meta.close()
