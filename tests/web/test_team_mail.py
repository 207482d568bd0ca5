"""Invitation and reset mails delivered to a real SMTP server (aiosmtpd on 127.0.0.1), from the real app."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts
from hitmetrix.web import team_mail
from hitmetrix.web.app import build_app
from tests.support import free_port, wait_for
from tests.web.helpers import (
    FakeClock,
    client,
    close_runtime,
    csrf_in,
    make_user,
    open_runtime,
    sign_in,
    with_fresh_meta,
)

pytestmark = pytest.mark.anyio
_LINK = re.compile(r'id="made-link" type="text" readonly value="([^"]+)"')


@dataclass
class Sink:
    """What the SMTP server received, and whom it let log in."""

    port: int
    mails: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        with self.lock:
            self.mails.append(mail)
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret")
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sink() -> Iterator[Sink]:
    found = Sink(free_port())
    controller = Controller(
        found, hostname="127.0.0.1", port=found.port, authenticator=found.authenticate, auth_require_tls=False
    )
    controller.start()
    yield found
    controller.stop()


@pytest.fixture(scope="module")
def base_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    runtime = open_runtime(tmp_path_factory.mktemp("mail") / "data")
    yield runtime
    close_runtime(runtime)


def with_smtp(base: Runtime, tmp_path: Path, **smtp: Any) -> Runtime:
    runtime = with_fresh_meta(base, tmp_path / "meta", FakeClock())
    return dataclasses.replace(runtime, settings=runtime.settings.replace(**smtp))


async def test_an_invitation_is_mailed_with_the_link_shown_on_the_page(
    base_runtime: Runtime, tmp_path: Path, sink: Sink
) -> None:
    runtime = with_smtp(
        base_runtime,
        tmp_path,
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_starttls=False,
        smtp_user="mailer",
        smtp_password="s3cret",
        smtp_from="Hitmetrix <hitmetrix@example.com>",
    )
    p = runtime.meta.create_project("Shop")
    make_user(runtime.meta, "admin@example.com", p.id, admin=True, role="owner")
    app = build_app(runtime)
    async with client(app) as c:
        csrf = await sign_in(c, "admin@example.com")
        answer = await c.post(
            "/admin/users/invite",
            data={"csrf_token": csrf, "email": "new@example.com", "project_id": str(p.id), "role": "analyst"},
        )
        assert answer.status_code == 201 and "on its way to new@example.com" in answer.text
        match = _LINK.search(answer.text)
        assert match
        link = match.group(1).replace("&amp;", "&")
        wait_for(lambda: sink.mails, 30, what="the invitation mail")
        mail = sink.mails[0]
        assert mail["To"] == "new@example.com" and mail["From"] == "Hitmetrix <hitmetrix@example.com>"
        assert mail["Subject"] == "You are invited to Hitmetrix"
        body = mail.get_content()
        assert link in body and "“Shop” as analyst" in body and "admin@example.com invited you" in body
        assert sink.logins == ["mailer"]
    async with client(app) as invitee:
        path = link.removeprefix("http://hitmetrix.test")
        form = await invitee.get(path)
        token = path.split("token=")[1]
        landed = await invitee.post(
            "/invite",
            data={"csrf_token": csrf_in(form.text), "token": token, "password": "x" * 12, "password2": "x" * 12},
        )
        assert landed.status_code == 303
    assert accounts.user_by_email(runtime.meta, "new@example.com") is not None
    assert len(sink.mails) == 1


async def test_a_mail_server_that_fails_is_logged_and_the_link_still_shown(
    base_runtime: Runtime, tmp_path: Path, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    # STARTTLS is asked for and this server has none: sending fails after the page has answered.
    runtime = with_smtp(base_runtime, tmp_path, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_starttls=True)
    make_user(runtime.meta, "admin@example.com", admin=True)
    ann = make_user(runtime.meta, "ann@example.com")
    failed = team_mail.outcomes.failed
    async with client(build_app(runtime)) as c:
        csrf = await sign_in(c, "admin@example.com")
        answer = await c.post(f"/admin/users/{ann}/reset-link", data={"csrf_token": csrf})
        assert answer.status_code == 201 and _LINK.search(answer.text)
    wait_for(lambda: team_mail.outcomes.failed > failed, 30, what="the failed delivery")
    assert sink.mails == []
    assert "could not mail 'Choose a new Hitmetrix password' to ann@example.com" in caplog.text


def test_nothing_is_sent_without_a_mail_server(base_runtime: Runtime) -> None:
    assert not team_mail.configured(base_runtime.settings)
    assert team_mail.send_later(base_runtime.settings, "a@example.com", "s", "b") is None
    assert team_mail.sender(base_runtime.settings.replace(smtp_user="robot@example.com")) == "robot@example.com"
    assert team_mail.sender(base_runtime.settings) == "hitmetrix@localhost"
