"""HTML for dashboard pages: the Jinja2 templates (autoescaped) and the HTML error pages."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from hitmetrix import timezones

TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
# `{{ ms | zoned(project.time_zone) }}`: every time shown says its zone (hitmetrix.timezones).
templates.env.filters["zoned"] = timezones.display
templates.env.globals["time_zone_names"] = timezones.time_zone_names


def render(
    request: Request,
    template: str,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
    /,
    **context: Any,
) -> Response:
    """A page from ``templates/``; pass ``principal`` (and ``project``) for the top bar.

    The leading parameters are positional-only so that any name, ``name`` included
    (the forms refill a rejected name), can be a template variable.
    """
    context.setdefault("principal", None)
    context.setdefault("project", None)
    return templates.TemplateResponse(request, template, context, status_code=status_code, headers=headers)


def error_page(
    request: Request,
    status_code: int,
    message: str,
    principal: Any = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A full HTML page for 403 / 404 / 429 and friends, with the top bar when signed in."""
    title = HTTPStatus(status_code).phrase
    return render(
        request,
        "error.html",
        status_code,
        headers,
        principal=principal,
        title=title,
        status=status_code,
        message=message,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler (404, 405, …): JSON under /api/, an HTML page everywhere else."""
    status_code = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or HTTPStatus(status_code).phrase
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": str(detail).lower()}, status_code, headers=getattr(exc, "headers", None))
    message = "There is nothing at this address." if status_code == 404 else f"{detail}."
    return error_page(request, status_code, message, headers=getattr(exc, "headers", None))
