"""The ``cohort=<id>`` filter of every analytics view, resolved: the view's query parser has no store, so each
endpoint hands its parsed query to ``resolve_cohort``, which reads the cohort from the metadata store.

Kept apart from the cohort API so the overview, funnel, retention and paths modules can import it without
importing the pages that import them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, TypeVar, cast

from starlette.requests import Request

from hitmetrix.analytics import cohorts
from hitmetrix.analytics.days import time_zone
from hitmetrix.analytics.overview import OverviewQuery
from hitmetrix.analytics.params import BadParameter
from hitmetrix.store import saved
from hitmetrix.web.auth import now_of, project_of, runtime_of
from hitmetrix.web.offload import run

NO_COHORT = "no such cohort in this project"
Q = TypeVar("Q")


def today_of(request: Request) -> dt.date:
    """Today in the path's project's time zone: behaviour windows ("the last D days") end today."""
    zone = project_of(request).time_zone or "UTC"
    return now_of(runtime_of(request)).astimezone(time_zone(zone)).date()


async def resolve_cohort(request: Request, query: Q) -> Q:
    """``query`` with its ``cohort`` filter resolved to the cohort's people: an OverviewQuery, or a view's query
    that holds one as ``base`` (retention, paths). BadParameter (400) for a cohort this project does not have:
    another project's cohort is answered exactly like one that never existed."""
    base = getattr(query, "base", query)
    if not isinstance(base, OverviewQuery) or base.cohort is not None:
        return query
    cohort_id = dict(base.filters).get("cohort")
    if not cohort_id:
        return query
    found = await run(saved.cohort, runtime_of(request).meta, project_of(request).id, int(cohort_id))
    if found is None:
        raise BadParameter("cohort", NO_COHORT)
    definition = cohorts.CohortDefinition.from_json(found.definition, "cohort")
    resolved = dataclasses.replace(base, cohort=cohorts.CohortFilter(found.id, definition, today_of(request)))
    if base is query:
        return cast(Q, resolved)
    return cast(Q, dataclasses.replace(cast(Any, query), base=resolved))
