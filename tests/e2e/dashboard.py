"""Helpers for browser tests of the dashboard: a user who may see a project, and signing in."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore


@dataclass(frozen=True)
class Member:
    email: str
    password: str
    project_id: int
    project_key: str


def demo_member(data_dir: Path, project_name: str = "demo") -> Member:
    """Before the server starts: the demo project (the server adopts it by name) and a member of it."""
    meta = MetaStore("", data_dir)
    try:
        project = meta.project_by_name(project_name) or meta.create_project(project_name)
        email = f"viewer-{secrets.token_hex(3)}@example.test"
        password = "pw-" + secrets.token_urlsafe(12)
        user = accounts.create_user(meta, email, password, admin=True)
        accounts.add_member(meta, project.id, user.id)
        return Member(email, password, project.id, project.public_key)
    finally:
        meta.close()


def sign_in(page: Page, base_url: str, member: Member) -> None:
    page.goto(base_url + "/login")
    page.fill("input[name=email]", member.email)
    page.fill("input[name=password]", member.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
