"""Invitation and password-reset mails, sent with smtplib from a background thread when SMTP is configured.

Sending never holds up the page that asked for it and never fails it: the
link is always shown to copy as well, and a mail server that refuses or does
not answer is logged (and counted), not raised.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import make_msgid

from hitmetrix.settings import Settings

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 20.0


class _Counter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    def add(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.sent += 1
            else:
                self.failed += 1


outcomes = _Counter()


def configured(settings: Settings) -> bool:
    return bool(settings.smtp_host)


def sender(settings: Settings) -> str:
    """The From address: smtp_from, else the login name when it is an address, else a local one."""
    user: str = settings.smtp_user
    return settings.smtp_from or (user if "@" in user else "hitmetrix@localhost")


def message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender(settings)
    mail["To"] = to
    mail["Subject"] = subject
    mail["Message-ID"] = make_msgid(domain=sender(settings).rpartition("@")[2] or None)
    mail.set_content(body)
    return mail


def send(settings: Settings, mail: EmailMessage) -> None:
    """Deliver one mail to the configured server now (blocking); raises OSError / SMTPException."""
    with smtplib.SMTP(settings.smtp_host, int(settings.smtp_port), timeout=SMTP_TIMEOUT_S) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(mail)


def _deliver(settings: Settings, mail: EmailMessage) -> None:
    try:
        send(settings, mail)
    except (OSError, smtplib.SMTPException) as exc:
        outcomes.add(False)
        log.warning("could not mail %r to %s via %s: %s", mail["Subject"], mail["To"], settings.smtp_host, exc)
        return
    outcomes.add(True)


def send_later(settings: Settings, to: str, subject: str, body: str) -> threading.Thread | None:
    """Send in a background thread when SMTP is configured; the thread (for tests to join), or None."""
    if not configured(settings):
        return None
    thread = threading.Thread(
        target=_deliver, args=(settings, message(settings, to, subject, body)), name="hitmetrix-mail", daemon=True
    )
    thread.start()
    return thread


def invitation_text(link: str, inviter: str, project: str | None, role: str | None, valid_days: int) -> str:
    where = f" to the project “{project}” as {role}" if project and role else ""
    return (
        f"{inviter or 'An administrator'} invited you to Hitmetrix{where}.\n\n"
        f"Open this link to choose your password and sign in:\n\n{link}\n\n"
        f"The link works once and for {valid_days} days. If you did not expect it, ignore this mail.\n"
    )


def reset_text(link: str, valid_hours: int) -> str:
    return (
        "An administrator made a link for you to choose a new Hitmetrix password:\n\n"
        f"{link}\n\n"
        f"It works once and for {valid_hours} hours; your other sign-ins end when you use it.\n"
    )
