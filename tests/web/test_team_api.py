"""The audit log in the JSON API: owners read their project's, admins read everything; paging and bad input."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette

from hitmetrix.runtime import Runtime
from hitmetrix.store import accounts, audit
from tests.web.helpers import FakeClock, client, make_user

pytestmark = pytest.mark.anyio


def bearer(runtime: Runtime, user_id: int, scope: str = "read") -> dict[str, str]:
    _, token = accounts.create_api_token(runtime.meta, user_id, "api", scope)
    return {"Authorization": f"Bearer {token}"}


async def test_owners_read_their_projects_entries_and_nobody_elses(runtime: Runtime, app: Starlette) -> None:
    meta = runtime.meta
    p, q = meta.create_project("P"), meta.create_project("Q")
    owner = make_user(meta, "owner@example.com", p.id, role="owner")
    analyst = make_user(meta, "analyst@example.com", p.id, role="analyst")
    for n in range(5):
        audit.record(meta, owner, "member_added", p.id, f"user-{n}@example.com", {"role": "viewer"})
    audit.record(meta, owner, "member_added", q.id, "secret@example.com")
    async with client(app) as c:
        first = await c.get(f"/api/v1/projects/{p.id}/audit?limit=3", headers=bearer(runtime, owner))
        assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
        body = first.json()
        assert [e["target"] for e in body["entries"]] == [f"user-{n}@example.com" for n in (4, 3, 2)]
        assert body["entries"][0]["actor"] == "owner@example.com"
        assert body["entries"][0]["details"] == {"role": "viewer"}
        rest = await c.get(
            f"/api/v1/projects/{p.id}/audit?limit=3&before={body['next_before']}", headers=bearer(runtime, owner)
        )
        assert [e["target"] for e in rest.json()["entries"]] == ["user-1@example.com", "user-0@example.com"]
        assert rest.json()["next_before"] is None
        assert (await c.get(f"/api/v1/projects/{q.id}/audit", headers=bearer(runtime, owner))).status_code == 404
        assert (await c.get(f"/api/v1/projects/{p.id}/audit", headers=bearer(runtime, analyst))).status_code == 403
        assert (await c.get(f"/api/v1/projects/{p.id}/audit")).status_code == 401


async def test_admins_read_everything_including_token_use(
    runtime: Runtime, app: Starlette, clock: FakeClock
) -> None:
    meta = runtime.meta
    p = meta.create_project("P")
    admin = make_user(meta, "admin@example.com", admin=True)
    ann = make_user(meta, "ann@example.com", p.id)
    ann_token = bearer(runtime, ann)
    async with client(app) as c:
        for _ in range(5):  # five calls within a minute: one "token_used"
            assert (await c.get("/api/v1/projects", headers=ann_token)).status_code == 200
        clock.advance(61)
        assert (await c.get("/api/v1/projects", headers=ann_token)).status_code == 200
        assert (await c.get("/api/v1/admin/audit", headers=ann_token)).status_code == 403
        answer = await c.get("/api/v1/admin/audit?action=token_used", headers=bearer(runtime, admin))
        assert answer.status_code == 200
        used = [e["actor"] for e in answer.json()["entries"]]
        assert used == ["admin@example.com", "ann@example.com", "ann@example.com"]  # the admin's call too
        local = {"Authorization": f"Bearer {runtime.admin_token}"}
        everything = (await c.get("/api/v1/admin/audit", headers=local)).json()["entries"]
        assert {"token_created", "token_used"} <= {e["action"] for e in everything}


async def test_bad_parameters_name_the_field(runtime: Runtime, app: Starlette) -> None:
    admin = make_user(runtime.meta, "admin@example.com", admin=True)
    headers = bearer(runtime, admin)
    async with client(app) as c:
        for query, field in (
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=x", "limit"),
            ("before=-1", "before"),
            ("before=" + "9" * 30, "before"),
            ("action=" + "a" * 65, "action"),
        ):
            answer = await c.get(f"/api/v1/admin/audit?{query}", headers=headers)
            assert answer.status_code == 400, query
            assert answer.json()["field"] == field, query
        odd = await c.get("/api/v1/admin/audit?action=%27%22%5C%7B%7D%00", headers=headers)
        assert odd.status_code == 200 and odd.json() == {"entries": [], "next_before": None}
