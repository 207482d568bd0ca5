"""The audit log in the JSON API: a project's entries for its owners, every entry for admins.

``GET /api/v1/projects/{id}/audit`` and ``GET /api/v1/admin/audit`` answer
``{"entries": [...], "next_before": ID | null}``, newest first; pass
``next_before`` as ``before`` for the next page. Bad parameters are a 400
naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from hitmetrix.analytics import params
from hitmetrix.analytics.params import BadParameter
from hitmetrix.store import audit
from hitmetrix.web.api import bad_parameter, json_response
from hitmetrix.web.auth import guard, project_of, runtime_of
from hitmetrix.web.offload import run

MAX_ENTRY_ID = 10**18 - 1
MAX_ACTION_CHARS = 64


@dataclass(frozen=True)
class AuditFilters:
    before: int | None
    action: str | None
    limit: int

    @classmethod
    def from_query(cls, query: Mapping[str, str], default_limit: int = audit.DEFAULT_PAGE_SIZE) -> AuditFilters:
        """From the URL's query; BadParameter naming the field at fault."""
        limit = params.whole_number(query, "limit", default_limit, 1, audit.MAX_PAGE_SIZE)
        before = params.whole_number(query, "before", 0, 1, MAX_ENTRY_ID)
        action = params.text(query, "action", MAX_ACTION_CHARS)
        return cls(before or None, action or None, limit)


async def _entries(request: Request, project_id: int | None) -> Response:
    try:
        filters = AuditFilters.from_query(request.query_params)
    except BadParameter as exc:
        return bad_parameter(exc)
    found = await run(
        audit.entries,
        runtime_of(request).meta,
        project_id,
        before_id=filters.before,
        limit=filters.limit,
        action=filters.action,
    )
    next_before = found[-1].id if len(found) == filters.limit else None
    return json_response({"entries": [e.as_json() for e in found], "next_before": next_before})


@guard("owner", api=True)
async def project_audit(request: Request) -> Response:
    return await _entries(request, project_of(request).id)


@guard(api=True, admin=True)
async def admin_audit(request: Request) -> Response:
    return await _entries(request, None)


ROUTES: list[BaseRoute] = [
    Route("/api/v1/projects/{project_id:int}/audit", project_audit, methods=["GET"]),
    Route("/api/v1/admin/audit", admin_audit, methods=["GET"]),
]
