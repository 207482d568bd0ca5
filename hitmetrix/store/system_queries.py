"""The loader's SQL: statements that span every project, each marked ``SYSTEM_QUERY`` and kept here.

Nothing outside ``hitmetrix.store`` may write ``SYSTEM_QUERY``: analytics reads go
through the project-scoped builder, and whatever else needs all projects at once
is one of these, reviewed in one place.
"""

from __future__ import annotations

from hitmetrix.store.ch_migrations import (
    SEGMENT_SUMMARY_COLUMNS,
    SESSION_INSERT_COLUMNS,
    SESSION_TOMBSTONE_VALUES,
    segment_summary_select,
    session_rows_select,
)
from hitmetrix.store.schema import DATABASE, SEGMENT_VISITOR, SESSION_ANALYTICS_COLUMNS, VISITOR_KEY
from hitmetrix.store.tenancy import SYSTEM_QUERY

# Which of these segments the loader's ledger lists as stored.
LOADED_SEGMENTS = SYSTEM_QUERY(
    f"SELECT segment_id FROM {DATABASE}.loaded_segments WHERE segment_id IN {{ids:Array(UInt64)}}"
)

# Does the store answer for the events table? (Reads nothing.)
EVENTS_PROBE = SYSTEM_QUERY(f"SELECT count() AS n FROM {DATABASE}.events WHERE 0")

EVENTS_PER_SEGMENT = SYSTEM_QUERY(
    f"SELECT segment_id, count() AS n FROM {DATABASE}.events"
    " WHERE segment_id IN {ids:Array(UInt64)} GROUP BY segment_id"
)
SEGMENT_EVENT_COUNT = SYSTEM_QUERY(f"SELECT count() AS n FROM {DATABASE}.events WHERE segment_id = {{id:UInt64}}")
DELETE_SEGMENT_EVENTS = SYSTEM_QUERY(f"DELETE FROM {DATABASE}.events WHERE segment_id = {{id:UInt64}}")
DELETE_SEGMENT_SUMMARIES = SYSTEM_QUERY(f"DELETE FROM {DATABASE}.session_segments WHERE segment_id = {{id:UInt64}}")

# Summarise one segment's events per session into session_segments.
SUMMARISE_SEGMENT = SYSTEM_QUERY(
    f"INSERT INTO {DATABASE}.session_segments ({SEGMENT_SUMMARY_COLUMNS})\n"
    + segment_summary_select("segment_id = {segment_id:UInt64}")
)

# The sessions a load touched, as (project id, session id) pairs in a JSON string parameter {keys}:
# chDB cannot bind an array of tuples.
_TOUCHED = "(project_id, session_id) IN (SELECT arrayJoin(JSONExtract({keys:String}, 'Array(Tuple(UInt32, String))')))"

# A tombstone's values of the columns steps 4 and later added.
_TOMBSTONE_ANALYTICS = ", ".join(SESSION_TOMBSTONE_VALUES)

# Refreshing the touched sessions' rows, in this order: (1) log each one's start (the key its row is
# written under), (2) number their visitors (the statements at the end of this module), (3) write each row from
# all its segments, and a tombstone under every start it had before.
LOG_SESSION_STARTS = SYSTEM_QUERY(f"""INSERT INTO {DATABASE}.session_starts (project_id, session_id, started_at)
SELECT project_id, session_id, min(first_ts) FROM {DATABASE}.session_segments FINAL
WHERE {_TOUCHED}
GROUP BY project_id, session_id""")
# The session's visitor number: looked up by its visitor key in the map step (2) made ({visitor_keys} ->
# {visitor_nums}), 0 for a visitor that has none.
_ANONYMOUS_ID = next(expression for name, _, expression, _ in SESSION_ANALYTICS_COLUMNS if name == "anonymous_id")
_VISITOR_NUM = (
    "transform(" + VISITOR_KEY.format(visitor=f"cityHash64({_ANONYMOUS_ID})")
    + ", {visitor_keys:Array(UInt64)}, {visitor_nums:Array(UInt32)}, toUInt32(0))"
)
WRITE_SESSIONS = SYSTEM_QUERY(
    f"INSERT INTO {DATABASE}.sessions ({SESSION_INSERT_COLUMNS}, version, is_deleted, visitor_num)\n"
    + session_rows_select(_TOUCHED, "{version:UInt64}", after=(_VISITOR_NUM,))
    + f"""
UNION ALL
SELECT project_id, session_id, started_at, started_at, 0, 0, 0, 0, 0, '', '', '', '', '', '', [],
       {_TOMBSTONE_ANALYTICS}, {{version:UInt64}}, 1, 0
FROM {DATABASE}.session_starts
WHERE {_TOUCHED}
  AND (project_id, session_id, started_at) NOT IN (
      SELECT project_id, session_id, min(first_ts) FROM {DATABASE}.session_segments FINAL
      WHERE {_TOUCHED}
      GROUP BY project_id, session_id)"""
)
# The newest row version written so far: the loader's versions continue above it.
MAX_SESSION_VERSION = SYSTEM_QUERY(f"SELECT max(version) AS v FROM {DATABASE}.sessions")

# Exactly once per client batch: who stored these (project, session, batch id) keys, sent as JSON {keys}.
SEEN_BATCH_OWNERS = SYSTEM_QUERY(f"""SELECT project_id, session_id, batch_id, segment_id
FROM {DATABASE}.seen_batches
WHERE (project_id, session_id, batch_id) IN (
    SELECT arrayJoin(JSONExtract({{keys:String}}, 'Array(Tuple(UInt32, String, String))')))""")

# (2) Numbering the visitors: every visitor of the touched sessions (each anonymous id their segments carry, so
# whichever the row picks is among them) with its key and first time, ...
SESSION_VISITORS = SYSTEM_QUERY(f"""SELECT project_id, {SEGMENT_VISITOR} AS visitor,
       {VISITOR_KEY.format(visitor=SEGMENT_VISITOR)} AS key, toUnixTimestamp64Milli(min(first_ts)) AS first_ms
FROM {DATABASE}.session_segments FINAL
WHERE {_TOUCHED}
GROUP BY project_id, visitor, key""")
# ... the numbers of those that have one (rows of other pairs of these projects and visitors are ignored) ...
VISITOR_NUMBERS = SYSTEM_QUERY(f"""SELECT project_id, visitor, num FROM {DATABASE}.visitors
WHERE project_id IN {{projects:Array(UInt32)}} AND visitor IN {{visitors:Array(UInt64)}}""")
# ... the highest number each of these projects has given ...
TOP_VISITOR_NUMBERS = SYSTEM_QUERY(f"""SELECT project_id, max(num) AS top FROM {DATABASE}.visitors
WHERE project_id IN {{projects:Array(UInt32)}} GROUP BY project_id""")
# ... and the new ones, stored before any row carries them.
ADD_VISITORS = SYSTEM_QUERY(f"""INSERT INTO {DATABASE}.visitors (project_id, visitor, num)
SELECT tupleElement(v, 1), tupleElement(v, 2), tupleElement(v, 3)
FROM (SELECT arrayJoin(arrayZip({{projects:Array(UInt32)}}, {{visitors:Array(UInt64)}},
                                {{nums:Array(UInt32)}})) AS v)""")
