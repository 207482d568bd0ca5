"""Projects in the metadata store (SQLite through SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitmetrix.store import projects
from hitmetrix.store.meta import MetaStore, parse_query_keys


def test_projects_get_unique_public_keys_and_are_found_by_key(tmp_path: Path) -> None:
    meta = MetaStore("", tmp_path)
    a = meta.create_project("a")
    b = meta.create_project("b", ip_anonymisation="hash", allowed_origins="https://a.example/\nhttps://b.example")
    assert a.public_key != b.public_key and a.public_key.startswith("hm_pk_")
    assert meta.project_by_key(b.public_key).name == "b"  # type: ignore[union-attr]
    assert meta.project_by_key("hm_pk_missing") is None
    assert b.origins() == ["https://a.example", "https://b.example"]
    assert a.ip_hash_key != b.ip_hash_key
    meta.close()
    assert [p.name for p in MetaStore("", tmp_path).projects()] == ["a", "b"]


def test_bad_ip_anonymisation_is_refused(tmp_path: Path) -> None:
    meta = MetaStore("", tmp_path)
    with pytest.raises(ValueError, match="ip_anonymisation"):
        meta.create_project("x", ip_anonymisation="scramble")
    p = meta.create_project("y")
    with pytest.raises(ValueError, match="ip_anonymisation"):
        meta.update_project(p.id, ip_anonymisation="scramble")
    assert meta.update_project(p.id, ip_anonymisation="none").ip_anonymisation == "none"


def test_query_keys_are_checked_and_kept_per_project(tmp_path: Path) -> None:
    meta = MetaStore("", tmp_path)
    project = meta.create_project("shop")
    assert project.query_allowlist == ()
    keys = parse_query_keys("page, q\nref  page")
    assert meta.update_project(project.id, allowed_query_keys=keys).query_allowlist == ("page", "q", "ref")
    for bad in ("a=b", "x" * 65, "ünï", "a;b"):
        with pytest.raises(ValueError, match="query key"):
            parse_query_keys(bad)



def test_deleted_projects_are_told_apart_for_the_loader(tmp_path: Path) -> None:
    meta = MetaStore("", tmp_path)
    gone, kept = meta.create_project("gone"), meta.create_project("kept")
    assert meta.deleted_among({gone.id, kept.id}) == set()
    projects.delete_project(meta, gone.id, actor_id=None)
    assert meta.deleted_among({gone.id, kept.id, 999}) == {gone.id}
