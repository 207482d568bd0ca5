"""The `hitmetrix` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from hitmetrix.settings import SETTINGS, Settings, load_settings
from hitmetrix.store import accounts
from hitmetrix.store import projects as project_rules
from hitmetrix.store.meta import IP_ANONYMISATION, MetaStore, parse_origins


def _add_setting_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    for s in SETTINGS:
        if only is not None and s.name not in only:
            continue
        flag = "--" + s.name.replace("_", "-")
        if s.type is bool:
            parser.add_argument(flag, dest=s.name, action=argparse.BooleanOptionalAction, default=None, help=s.help)
        else:
            parser.add_argument(flag, dest=s.name, default=None, help=f"{s.help} (default: {s.default})")


def _settings(args: argparse.Namespace) -> Settings:
    names = {s.name for s in SETTINGS}
    return load_settings({k: v for k, v in vars(args).items() if k in names})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hitmetrix", description="Behaviour analytics and session recording.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (capture, loader, API, dashboard)")
    _add_setting_flags(serve)

    project = sub.add_parser("project", help="manage projects")
    project_sub = project.add_subparsers(dest="project_command", required=True)
    create = project_sub.add_parser("create", help="create a project; prints its key and script tag")
    create.add_argument("name")
    create.add_argument("--ip-anonymisation", choices=IP_ANONYMISATION, default="truncate")
    create.add_argument("--allowed-origin", action="append", default=[], help="origin allowed to send (repeatable)")
    create.add_argument("--base-url", default="http://127.0.0.1:8000", help="where Hitmetrix is reachable")
    create.add_argument(
        "--owner", metavar="EMAIL", help="the user who owns it (default: the first admin, or the next admin made)"
    )
    _add_setting_flags(create, ("data_dir", "metadata_url"))
    plist = project_sub.add_parser("list", help="list projects")
    _add_setting_flags(plist, ("data_dir", "metadata_url"))

    user = sub.add_parser("user", help="manage dashboard users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    ucreate = user_sub.add_parser("create", help="create a user; asks for the password twice")
    ucreate.add_argument("email")
    ucreate.add_argument("--admin", action="store_true", help="the user manages users")
    ucreate.add_argument(
        "--project", type=int, action="append", default=[], metavar="ID", help="add as member of a project (repeatable)"
    )
    ucreate.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _add_setting_flags(ucreate, ("data_dir", "metadata_url"))
    ulist = user_sub.add_parser("list", help="list users")
    _add_setting_flags(ulist, ("data_dir", "metadata_url"))
    uinvite = user_sub.add_parser("invite", help="print a one-time link (7 days) for someone to join and sign in")
    uinvite.add_argument("email")
    uinvite.add_argument("--project", type=int, metavar="ID", help="invite into this project")
    uinvite.add_argument("--role", choices=accounts.ROLES, default="viewer", help="their role in --project")
    uinvite.add_argument("--base-url", default="http://127.0.0.1:8000", help="where Hitmetrix is reachable")
    _add_setting_flags(uinvite, ("data_dir", "metadata_url"))

    sessions = sub.add_parser("sessions", help="list recent sessions of a project")
    sessions.add_argument("--project", default="1", help="project id")
    sessions.add_argument("--limit", type=int, default=20)
    # Days of the project's time zone, as in the dashboard and the API.
    sessions.add_argument("--from", dest="date_from", metavar="DAY", help="first day sessions started on (YYYY-MM-DD)")
    sessions.add_argument("--to", dest="date_to", metavar="DAY", help="last day sessions started on (YYYY-MM-DD)")
    _add_setting_flags(sessions, ("data_dir", "metadata_url"))

    session = sub.add_parser("session", help="dump one session's events (or its rrweb recording)")
    session.add_argument("session_id")
    session.add_argument("--project", default="1", help="project id")
    session.add_argument("--recording", action="store_true", help="print the rrweb events instead")
    _add_setting_flags(session, ("data_dir", "metadata_url"))

    quarantine = sub.add_parser("quarantine", help="what the loader could not store: list, show, requeue")
    quarantine_sub = quarantine.add_subparsers(dest="quarantine_command", required=True)
    qlist = quarantine_sub.add_parser("list", help="list quarantined items, oldest first")
    qlist.add_argument("--requeued", action="store_true", help="list the items already requeued instead")
    qlist.add_argument("--json", action="store_true", help="one JSON object per line")
    _add_setting_flags(qlist, ("data_dir",))
    qshow = quarantine_sub.add_parser("show", help="one item's reason and context, as JSON")
    qshow.add_argument("item_id", metavar="ID")
    qshow.add_argument("--payload-out", metavar="FILE", help="write the item's original bytes to FILE")
    _add_setting_flags(qshow, ("data_dir",))
    qrequeue = quarantine_sub.add_parser(
        "requeue", help="append items back to the spool to be loaded again (through a running server if any)"
    )
    qrequeue.add_argument("item_ids", nargs="*", metavar="ID")
    qrequeue.add_argument("--all", action="store_true", help="every open item that can be requeued")
    _add_setting_flags(qrequeue, ("data_dir", "spool_fsync"))

    doctor = sub.add_parser(
        "doctor", help="check a data directory and say what is wrong (exit 0 OK, 1 warnings, 2 failures)"
    )
    doctor.add_argument("--json", action="store_true", help="the checks as one JSON array")
    _add_setting_flags(doctor, ("data_dir", "metadata_url"))

    ingest = sub.add_parser("ingest-log", help="send an access log's lines as request / auth events")
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--format", choices=("combined", "json"), default="combined", dest="log_format_name")
    ingest.add_argument("--follow", action="store_true", help="keep reading as the file grows (and rotates)")
    ingest.add_argument("--project", help="a project of this data directory, sent to its running server")
    ingest.add_argument("--server", help="the Hitmetrix URL to send to (with --key)")
    ingest.add_argument("--key", help="the project's server key, hm_sk_… (with --server)")
    ingest.add_argument("--rules", type=Path, help="auth rules as a JSON file (default: the project's, or built-in)")
    ingest.add_argument("--state", type=Path, help="where to remember the offset (default: under the data dir)")
    _add_setting_flags(ingest, ("data_dir", "metadata_url"))

    get = sub.add_parser("get", help="GET one API path (from the running server, or in process)")
    get.add_argument("path")
    _add_setting_flags(get, ("data_dir", "metadata_url"))
    return parser


def _print(body: Any) -> None:
    print(json.dumps(body, indent=2, ensure_ascii=False))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password (at least 10 characters): ")
    if getpass.getpass("Password again: ") != password:
        raise ValueError("the passwords differ")
    return password


def _project_command(args: argparse.Namespace, meta: MetaStore) -> int:
    if args.project_command == "list":
        for p in meta.projects():
            print(f"{p.id}\t{p.name}\t{p.public_key}\tip={p.ip_anonymisation}")
        return 0
    try:
        owner = accounts.user_by_email(meta, args.owner) if args.owner else project_rules.first_admin(meta)
        if args.owner and owner is None:
            raise ValueError(f"no user has the email {args.owner}")
        origins = parse_origins("\n".join(args.allowed_origin))
        p = project_rules.create_project(
            meta, args.name, owner_id=owner.id if owner else None, ip_anonymisation=args.ip_anonymisation,
            allowed_origins=origins,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"project {p.id} '{p.name}'\nkey: {p.public_key}")
    print(f"script tag: {p.script_tag(args.base_url)}")
    if owner is not None:
        print(f"owner: {owner.email}")
    else:
        print("owner: none yet; the first admin you create will own it")
    return 0


def _user_command(args: argparse.Namespace, meta: MetaStore) -> int:
    if args.user_command == "invite":
        from hitmetrix.store import team

        try:
            link, plaintext = team.create_invitation(meta, None, args.email, args.project, args.role)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{args.base_url.rstrip('/')}/invite?{urlencode({'token': plaintext})}")
        print(f"invitation for {link.email}, valid once until {link.expires_at:%Y-%m-%d %H:%M} UTC", file=sys.stderr)
        return 0
    if args.user_command == "list":
        for u in accounts.users(meta):
            projects = ",".join(str(p) for p in sorted(accounts.project_ids_of(meta, u.id)))
            print(f"{u.id}\t{u.email}\t{'admin' if u.is_admin else 'user'}\tprojects={projects}")
        return 0
    missing = [pid for pid in args.project if meta.project(pid) is None]
    try:
        if missing:
            raise ValueError(f"no such project: {missing[0]}")
        user = accounts.create_user(meta, args.email, _read_password(args.password_stdin), admin=args.admin)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for pid in args.project:
        accounts.add_member(meta, pid, user.id)
    if user.is_admin:  # projects made before any admin existed would otherwise be out of everyone's reach
        project_rules.adopt_ownerless_projects(meta, user.id)
    role = "admin" if user.is_admin else "user"
    member_of = f", member of project {', '.join(map(str, args.project))}" if args.project else ""
    print(f"created {role} {user.email} (id {user.id}){member_of}")
    return 0


def _quarantine_command(args: argparse.Namespace, settings: Settings) -> int:
    from hitmetrix.loader.quarantine import QuarantineError
    from hitmetrix.loader.requeue import quarantine_of, requeue_items

    data_dir = Path(settings.data_dir)
    quarantine = quarantine_of(data_dir)
    try:
        if args.quarantine_command == "list":
            for item in quarantine.items(requeued=args.requeued):
                if args.json:
                    print(json.dumps(item.summary(), ensure_ascii=False))
                    continue
                at = dt.datetime.fromtimestamp(item.quarantined_at_ms / 1000, dt.UTC).isoformat(timespec="seconds")
                context = f"project={item.project_id} session={item.session_id} batch={item.batch_id}"
                reason = " ".join(item.reason.split())  # one line per item, whatever the error message holds
                print(f"{item.id}\t{item.kind}\t{item.stage}\t{at}\tsegment={item.segment_id} {context}\t{reason}")
            return 0
        if args.quarantine_command == "show":
            shown = quarantine.get(args.item_id)
            if shown is None:
                raise QuarantineError(f"no quarantined item {args.item_id}")
            _print({**shown.summary(), "requeued": quarantine.open_item(shown.id) is None})
            if args.payload_out:
                Path(args.payload_out).write_bytes(shown.payload)
            return 0
        if args.all == bool(args.item_ids):
            raise QuarantineError("name the items to requeue, or pass --all")
        ids, by_server = requeue_items(data_dir, None if args.all else args.item_ids, spool_fsync=settings.spool_fsync)
    except QuarantineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    where = "the running server's spool" if by_server else "the spool; the next `hitmetrix serve` loads them"
    print(f"requeued {len(ids)} item(s) into {where}")
    for value in ids:
        print(value)
    return 0


def _ingest_command(args: argparse.Namespace, settings: Settings) -> int:
    from hitmetrix.ingest import command
    from hitmetrix.ingest.rules import parse_rules

    data_dir = Path(settings.data_dir)
    try:
        if bool(args.project) == bool(args.server):
            raise ValueError("name --project NAME, or --server URL with --key")
        if args.project:
            url, key, rules = command.target_of_project(data_dir, settings.metadata_url, args.project)
        else:
            if not args.key:
                raise ValueError("--server needs --key hm_sk_… (the project's server key, on its settings page)")
            url, key, rules = args.server, args.key, parse_rules("")
        if args.rules:
            rules = parse_rules(args.rules.read_text())
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    state = args.state or command.default_state_path(data_dir, args.file)
    return command.run_ingest(
        args.file, args.log_format_name, server_url=url, server_key=key, rules=rules, state_path=state,
        follow=args.follow,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = _settings(args)
    if args.command == "serve":
        from hitmetrix.web.server import serve

        serve(settings)
        return 0
    if args.command == "project":
        return _project_command(args, MetaStore(settings.metadata_url, Path(settings.data_dir)))

    if args.command == "user":
        return _user_command(args, MetaStore(settings.metadata_url, Path(settings.data_dir)))
    if args.command == "quarantine":
        return _quarantine_command(args, settings)
    if args.command == "ingest-log":
        return _ingest_command(args, settings)
    if args.command == "doctor":
        from hitmetrix.ops import doctor as doctor_checks

        checks = doctor_checks.examine(Path(settings.data_dir), settings.metadata_url)
        print(doctor_checks.as_json(checks) if args.json else doctor_checks.report(checks))
        return doctor_checks.exit_code(checks)

    from hitmetrix.web.server import request

    if args.command == "sessions":
        days = {"from": args.date_from, "to": args.date_to}
        query = urlencode({"limit": args.limit, **{name: day for name, day in days.items() if day}})
        path = f"/api/v1/projects/{args.project}/sessions?{query}"
    elif args.command == "session":
        suffix = "/recording" if args.recording else ""
        path = f"/api/v1/projects/{args.project}/sessions/{args.session_id}{suffix}"
    else:
        path = args.path
    status, body = request(settings, path)
    if status >= 400:
        print(f"error {status}: {body.get('error') if isinstance(body, dict) else body}", file=sys.stderr)
        return 1
    if args.command == "sessions":
        for s in body["sessions"]:
            print(
                f"{s['session_id']}\t{s['started_at']}\t{s['duration_ms'] / 1000:.1f}s\t"
                f"pages={s['pageviews']} clicks={s['clicks']} errors={s['errors']}\t{s['entry_url']}"
            )
        return 0
    _print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
