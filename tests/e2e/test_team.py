"""A team in real Chromium: an admin invites someone by link into one project as viewer; they join, see only
that project, change their password; the admin deactivates them and their open session stops working."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Browser, Page, expect

from hitmetrix.store import accounts
from hitmetrix.store.meta import MetaStore
from tests.support import ServerProcess, free_port, wait_for

pytestmark = pytest.mark.e2e

ADMIN = "admin@example.test"
ADMIN_PASSWORD = "admin pass phrase 1"
INVITEE = "new.viewer@example.test"
FIRST_PASSWORD = "first pass phrase 1"
SECOND_PASSWORD = "second pass phrase 2"


@dataclass
class MailSink:
    """An SMTP server on 127.0.0.1 that keeps what it is sent."""

    port: int
    mails: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        with self.lock:
            self.mails.append(mail)
        return "250 OK"


@dataclass(frozen=True)
class Team:
    server: ServerProcess
    sink: MailSink
    project_id: int
    other_ids: tuple[int, ...]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    data_dir = tmp_path_factory.mktemp("team") / "data"
    meta = MetaStore("", data_dir)
    try:
        demo = meta.create_project("demo")  # the server adopts it by name as its demo project
        p = meta.create_project("P")
        other = meta.create_project("Other")
        admin = accounts.create_user(meta, ADMIN, ADMIN_PASSWORD, admin=True)
        for project in (demo, p, other):
            accounts.add_member(meta, project.id, admin.id, "owner")
    finally:
        meta.close()
    sink = MailSink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    env = {
        "HITMETRIX_SMTP_HOST": "127.0.0.1",
        "HITMETRIX_SMTP_PORT": str(sink.port),
        "HITMETRIX_SMTP_STARTTLS": "false",
        "HITMETRIX_SMTP_FROM": "hitmetrix@example.test",
    }
    server = ServerProcess(data_dir, demo=True, env=env).start()
    try:
        yield Team(server, sink, p.id, (demo.id, other.id))
    finally:
        server.stop()
        controller.stop()


def sign_in(page: Page, base_url: str, email_address: str, password: str) -> None:
    page.goto(base_url + "/login")
    page.fill("input[name=email]", email_address)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")


def shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"team-{name}.png"), full_page=True)


def test_invite_join_change_password_and_deactivate(browser: Browser, team: Team, artifacts: Path) -> None:
    base = team.server.url
    admin_context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    invitee_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        admin = admin_context.new_page()
        admin.on("dialog", lambda dialog: dialog.accept())  # "Deactivate …?" asks first
        sign_in(admin, base, ADMIN, ADMIN_PASSWORD)
        admin.wait_for_url(f"{base}/projects")
        admin.click("nav.account-nav >> text=Users")
        admin.wait_for_url(f"{base}/admin/users")

        # The admin invites by link into P as viewer, and copies the link from the page.
        invite = admin.locator("form[action='/admin/users/invite']")
        invite.locator("input[name=email]").fill(INVITEE)
        invite.locator("select[name=project_id]").select_option(label="P")
        invite.locator("select[name=role]").select_option("viewer")
        invite.locator("button[type=submit]").click()
        made = admin.locator("[data-testid=made-link]")
        expect(made).to_contain_text(f"Invitation for {INVITEE} created")
        admin.click("button[data-copy='#made-link']")
        expect(admin.locator("button[data-copy='#made-link']")).to_have_text("Copied")
        link = str(admin.evaluate("() => navigator.clipboard.readText()"))
        assert link == admin.input_value("#made-link") and link.startswith(f"{base}/invite?token=")
        shot(admin, artifacts, "1-invitation-link")

        # The same link went out by mail.
        wait_for(lambda: team.sink.mails, 30, what="the invitation mail")
        mail = team.sink.mails[0]
        assert mail["To"] == INVITEE and link in mail.get_content()

        # The invitee opens the link, chooses a password and lands signed in, seeing P only.
        invitee = invitee_context.new_page()
        invitee.goto(link)
        expect(invitee.locator("h1")).to_have_text("Join Hitmetrix")
        expect(invitee.locator(".auth-card")).to_contain_text("to the project P as viewer")
        invitee.fill("input[name=password]", FIRST_PASSWORD)
        invitee.fill("input[name=password2]", FIRST_PASSWORD)
        shot(invitee, artifacts, "2-join")
        invitee.click("button[type=submit]")
        invitee.wait_for_url(f"{base}/projects")
        rows = invitee.locator("table tbody tr")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("P")
        expect(rows.first).to_contain_text("viewer")
        assert "demo" not in invitee.locator("main").inner_text()
        shot(invitee, artifacts, "3-only-their-project")
        for other in team.other_ids:
            answer = invitee.goto(f"{base}/projects/{other}/sessions")
            assert answer is not None and answer.status == 404

        # They change their password on their account page, sign out, and sign in with the new one.
        invitee.goto(f"{base}/account")
        password = invitee.locator("form[action='/account/password']")
        password.locator("input[name=current_password]").fill(FIRST_PASSWORD)
        password.locator("input[name=new_password]").fill(SECOND_PASSWORD)
        password.locator("input[name=new_password2]").fill(SECOND_PASSWORD)
        password.locator("button[type=submit]").click()
        expect(invitee.locator(".alert-success")).to_have_text("Your password was changed.")
        shot(invitee, artifacts, "4-password-changed")
        invitee.click("header form[action='/logout'] button")
        invitee.wait_for_url(f"{base}/login")
        sign_in(invitee, base, INVITEE, FIRST_PASSWORD)
        expect(invitee.locator(".alert-error")).to_have_text("Wrong email or password.")
        sign_in(invitee, base, INVITEE, SECOND_PASSWORD)
        invitee.wait_for_url(f"{base}/projects")

        # The admin deactivates them; the session they have open stops working at once.
        admin.goto(f"{base}/admin/users")
        row = admin.locator(f"tr[data-email='{INVITEE}']")
        expect(row).to_contain_text("P viewer")
        row.locator("form[action$='/deactivate'] button").click()
        expect(admin.locator(".alert-success")).to_contain_text("The user was deactivated")
        expect(row).to_contain_text("deactivated")
        shot(admin, artifacts, "5-deactivated")
        invitee.goto(f"{base}/projects/{team.project_id}/sessions")
        invitee.wait_for_url(lambda url: url.startswith(f"{base}/login"))
        sign_in(invitee, base, INVITEE, SECOND_PASSWORD)
        expect(invitee.locator(".alert-error")).to_have_text("Wrong email or password.")
        shot(invitee, artifacts, "6-signed-out-for-good")

        # The project's owner reads what happened in P; the admin reads everything.
        admin.goto(f"{base}/projects/{team.project_id}/audit")
        audit_rows = admin.locator("#audit tbody tr")
        expect(audit_rows.filter(has_text="Accepted an invitation")).to_contain_text(INVITEE)
        expect(audit_rows.filter(has_text="Invited a user")).to_contain_text(ADMIN)
        shot(admin, artifacts, "7-project-audit")
        admin.click("nav.account-nav >> text=Users")
        admin.click("text=Audit log")
        expect(audit_rows.filter(has_text="Deactivated a user")).to_contain_text(INVITEE)
        expect(audit_rows.filter(has_text="Changed their password").first).to_contain_text(INVITEE)
        shot(admin, artifacts, "8-admin-audit")
    finally:
        admin_context.close()
        invitee_context.close()

    # Each step is in the audit log, read as an admin through the API.
    entries = team.server.api("/api/v1/admin/audit?limit=200").json()["entries"]
    done = [(e["action"], e["target"]) for e in entries]
    for expected in (
        ("user_invited", INVITEE),
        ("invitation_accepted", INVITEE),
        ("password_changed", INVITEE),
        ("user_deactivated", INVITEE),
    ):
        assert expected in done, expected
