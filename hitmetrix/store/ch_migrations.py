"""The ClickHouse schema as versioned, ordered steps, and the ledger of steps a data directory has had.

``migrate`` runs at store start-up: it makes the database and the ledger table
(``hitmetrix.schema_migrations``), then applies every step not in the ledger, in
order, recording each once it is done. Steps are idempotent (``IF NOT EXISTS``,
inserts into tables whose engine collapses repeats), so a crash in the middle of
one only repeats it. A data directory of the release before the ledger existed
has the tables of step 1 and no ledger: it is recognised, step 1 is recorded,
and the later steps run as for any other.

Step 1 is the previous release's schema, written out literally: never edit a
step once released, add one. Table engines and ``ON CLUSTER`` come from
``Engines`` so that a replicated cluster can run the same steps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hitmetrix.store.schema import (
    DATABASE,
    EVENT_RETENTION_DAYS,
    MAX_SESSION_URLS,
    SEEN_BATCH_RETENTION_DAYS,
    SEGMENT_ANALYTICS_COLUMNS,
    SEGMENT_FRUSTRATION_COLUMNS,
    SEGMENT_STEP_COLUMNS,
    SESSION_AGGREGATES,
    SESSION_ANALYTICS_COLUMNS,
    SESSION_FRUSTRATION_COLUMNS,
    SESSION_FRUSTRATION_MATERIALIZED,
    SESSION_LOW_CARDINALITY_V10,
    SESSION_OVERVIEW_MATERIALIZED,
    SESSION_STEP_COLUMNS,
    SESSION_STEP_KEY_MATERIALIZED,
    SESSION_VISITOR_NUMBER,
)

log = logging.getLogger(__name__)

LEDGER = f"{DATABASE}.schema_migrations"
# Session rows made by the migration: older than any the loader writes (its versions are clock-based).
FILLED_SESSION_VERSION = 1
# Rows of session_segments aggregated per statement when filling the sessions table (bounds its memory).
FILL_SLICE_ROWS = 2_000_000


@dataclass(frozen=True)
class Engines:
    """Every table engine and the cluster clause of the DDL, chosen in one place.

    The default is one server (chDB embedded or a single ClickHouse). For a
    replicated cluster: ``Engines(replicated=True, on_cluster="ON CLUSTER '{cluster}'")``
    turns each engine into its ``Replicated*`` variant (Keeper path and replica
    name from the server's ``default_replica_path`` / ``default_replica_name``)
    and adds the clause to each CREATE and ALTER.
    """

    replicated: bool = False
    on_cluster: str = ""

    def _engine(self, family: str, args: str = "") -> str:
        return ("Replicated" if self.replicated else "") + family + (f"({args})" if args else "")

    def merge_tree(self) -> str:
        return self._engine("MergeTree")

    def replacing(self, version: str = "", is_deleted: str = "") -> str:
        return self._engine("ReplacingMergeTree", ", ".join(arg for arg in (version, is_deleted) if arg))

    def aggregating(self) -> str:
        return self._engine("AggregatingMergeTree")

    @property
    def cluster(self) -> str:
        """`` ON CLUSTER …`` (with its leading space) or nothing."""
        return f" {self.on_cluster}" if self.on_cluster else ""

    @property
    def dedup_window(self) -> str:
        """The setting that keeps insert deduplication tokens (the loader's exactly-once relies on it)."""
        name = "replicated_deduplication_window" if self.replicated else "non_replicated_deduplication_window"
        return f"{name} = 10000"


Run = Callable[[str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Step:
    """One schema version: DDL statements, then (optionally) a data step given a way to run SQL."""

    version: int
    name: str
    ddl: Callable[[Engines], list[str]]
    data: Callable[[Run, Engines], None] | None = field(default=None)


def _baseline(e: Engines) -> list[str]:
    """The release before the ledger (commit ba7be22 of hitmetrix/store/schema.py), word for word."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {DATABASE}{e.cluster}",
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.events{e.cluster} (
    project_id UInt32,
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    session_id String CODEC(ZSTD(1)),
    event_id UUID,
    type LowCardinality(String),
    name LowCardinality(String),
    client_ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    anonymous_id String CODEC(ZSTD(1)),
    user_id String CODEC(ZSTD(1)),
    url String CODEC(ZSTD(1)),
    path String CODEC(ZSTD(1)),
    referrer String CODEC(ZSTD(1)),
    title String CODEC(ZSTD(1)),
    selector String CODEC(ZSTD(1)),
    tag LowCardinality(String),
    text String CODEC(ZSTD(1)),
    x Int32,
    y Int32,
    viewport_w UInt16,
    viewport_h UInt16,
    props String CODEC(ZSTD(3)),
    ip String CODEC(ZSTD(1)),
    country LowCardinality(String),
    asn UInt32,
    as_org LowCardinality(String),
    browser LowCardinality(String),
    browser_version LowCardinality(String),
    os LowCardinality(String),
    os_version LowCardinality(String),
    device_type LowCardinality(String),
    user_agent String CODEC(ZSTD(3)),
    batch_id String CODEC(ZSTD(1)),
    segment_id UInt64,
    expires_at DateTime('UTC') DEFAULT toDateTime(ts) + toIntervalDay({EVENT_RETENTION_DAYS}),
    INDEX idx_session session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_segment segment_id TYPE minmax GRANULARITY 1
) ENGINE = {e.merge_tree()}
PARTITION BY toYYYYMM(ts)
ORDER BY (project_id, toDate(ts), session_id, ts)
TTL expires_at DELETE
SETTINGS {e.dedup_window}""",
        # Client retries of an already-stored chunk collapse on (project, session, seq).
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.recordings{e.cluster} (
    project_id UInt32,
    session_id String,
    seq UInt32,
    first_ts DateTime64(3, 'UTC'),
    last_ts DateTime64(3, 'UTC'),
    event_count UInt32,
    bytes UInt32,
    raw_bytes UInt32,
    path String,
    received_at DateTime64(3, 'UTC'),
    segment_id UInt64
) ENGINE = {e.replacing("received_at")}
PARTITION BY toYYYYMM(first_ts)
ORDER BY (project_id, session_id, seq)
SETTINGS {e.dedup_window}""",
        # One row per (session, spool segment): what that segment's events say about the session.
        # A reload of a segment replaces its rows (same key), so nothing counts twice.
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.session_segments{e.cluster} (
    project_id UInt32,
    session_id String,
    segment_id UInt64,
    first_ts DateTime64(3, 'UTC'),
    last_ts DateTime64(3, 'UTC'),
    pageviews UInt32,
    clicks UInt32,
    errors UInt32,
    events UInt32,
    entry Tuple(DateTime64(3, 'UTC'), String),
    last_user Tuple(DateTime64(3, 'UTC'), String),
    country LowCardinality(String),
    browser LowCardinality(String),
    os LowCardinality(String),
    device_type LowCardinality(String),
    urls Array(String),
    loaded_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = {e.replacing("loaded_at")}
PARTITION BY toYYYYMM(first_ts)
ORDER BY (project_id, session_id, segment_id)""",
        # The loader's ledger: a segment listed here is fully stored.
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.loaded_segments{e.cluster} (
    segment_id UInt64,
    loaded_at DateTime64(3, 'UTC'),
    events UInt32,
    chunks UInt32
) ENGINE = {e.replacing()}
ORDER BY segment_id""",
    ]


def _seen_batches(e: Engines) -> list[str]:
    # Exactly once from the client: the segment that stored each (project, session, batch id).
    # The loader inserts a row only once the batch's events are in.
    return [
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.seen_batches{e.cluster} (
    project_id UInt32,
    session_id String,
    batch_id String,
    segment_id UInt64,
    seen_at DateTime64(3, 'UTC')
) ENGINE = {e.replacing()}
ORDER BY (project_id, session_id, batch_id)
TTL toDateTime(seen_at) + toIntervalDay({SEEN_BATCH_RETENTION_DAYS}) DELETE"""
    ]


SESSION_COLUMNS_SQL = """    project_id UInt32,
    started_at DateTime64(3, 'UTC'),
    session_id String,
    ended_at DateTime64(3, 'UTC'),
    duration_ms Int64,
    pageviews UInt32,
    clicks UInt32,
    errors UInt32,
    events UInt32,
    entry_url String CODEC(ZSTD(1)),
    country LowCardinality(String),
    browser LowCardinality(String),
    os LowCardinality(String),
    device_type LowCardinality(String),
    user_id String CODEC(ZSTD(1)),
    urls Array(String) CODEC(ZSTD(1)),
    version UInt64,
    is_deleted UInt8"""


def _sessions(e: Engines) -> list[str]:
    return [
        # One row per session, ordered as the list reads it (newest first is a backwards read), so a page
        # reads a page. The loader writes a session's row again whenever a segment touches it (a newer
        # `version` replaces it); when a late segment moves its start, the row under the old start gets a
        # tombstone (is_deleted = 1). The list reads candidates without FINAL, then checks them with it.
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.sessions{e.cluster} (
{SESSION_COLUMNS_SQL}
) ENGINE = {e.replacing("version", "is_deleted")}
PARTITION BY toYYYYMM(started_at)
ORDER BY (project_id, started_at, session_id)""",
        # Every start a session's row was ever written under, written before the row itself: the keys
        # that may need a tombstone when the start moves (sessions is not ordered by session id).
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.session_starts{e.cluster} (
    project_id UInt32,
    session_id String,
    started_at DateTime64(3, 'UTC')
) ENGINE = {e.replacing()}
ORDER BY (project_id, session_id, started_at)""",
    ]


Aggregates = tuple[tuple[str, str], ...]
# Step 3's columns of the sessions table, as step 3 fills them (a data directory that has not had step 4 yet).
SESSION_AGGREGATES_V3: Aggregates = SESSION_AGGREGATES
# Step 4's: a step's data function fills the columns that exist when it runs, not those of later steps.
SESSION_AGGREGATES_V4: Aggregates = SESSION_AGGREGATES_V3 + tuple(
    (name, expression) for name, _, expression, _ in SESSION_ANALYTICS_COLUMNS
)
# Step 5's (frustration signals).
SESSION_AGGREGATES_V5: Aggregates = SESSION_AGGREGATES_V4 + tuple(
    (name, expression) for name, _, expression, _ in SESSION_FRUSTRATION_COLUMNS
)
# Step 7's (funnel step sequences; step 6 added no column).
SESSION_AGGREGATES_V7: Aggregates = SESSION_AGGREGATES_V5 + tuple(
    (name, expression) for name, _, expression, _ in SESSION_STEP_COLUMNS
)
# Every column of a sessions row, as the loader writes it now.
ALL_SESSION_AGGREGATES: Aggregates = SESSION_AGGREGATES_V7
# A tombstone's values of the columns after step 3, in ALL_SESSION_AGGREGATES order.
SESSION_TOMBSTONE_VALUES: tuple[str, ...] = tuple(
    empty for _, _, _, empty in SESSION_ANALYTICS_COLUMNS + SESSION_FRUSTRATION_COLUMNS + SESSION_STEP_COLUMNS
)


def session_insert_columns(aggregates: Aggregates = ALL_SESSION_AGGREGATES) -> str:
    return ", ".join(["project_id", "session_id", *(name for name, _ in aggregates)])


SESSION_INSERT_COLUMNS = session_insert_columns()


def session_rows_select(
    where: str, version: str, aggregates: Aggregates = ALL_SESSION_AGGREGATES, after: tuple[str, ...] = ()
) -> str:
    """SELECT of sessions rows (in ``session_insert_columns(aggregates)`` order, then version, is_deleted, then
    the expressions ``after``) aggregated from every session_segments row of the sessions ``where`` picks."""
    expressions = ",\n       ".join(expression for _, expression in aggregates)
    return f"""SELECT project_id, session_id,
       {expressions},
       {", ".join((version, "0", *after))}
FROM {DATABASE}.session_segments FINAL
WHERE {where}
GROUP BY project_id, session_id"""


def fill_sessions(
    run: Run, where: str = "1", aggregates: Aggregates = ALL_SESSION_AGGREGATES, version: int = FILLED_SESSION_VERSION
) -> int:
    """Rows of the sessions table (and their logged starts) for every session ``where`` picks, aggregated
    from its session_segments rows, a slice of sessions at a time; returns the summary rows read."""
    rows = run(f"SELECT count() AS n FROM {DATABASE}.session_segments WHERE {where}")
    total = int(rows[0]["n"]) if rows else 0
    slices = max(1, -(-total // FILL_SLICE_ROWS))
    if total > FILL_SLICE_ROWS:
        log.info("filling the sessions table from %d session summary rows (%d slices)", total, slices)
    for part in range(slices if total else 0):
        picked = f"({where}) AND cityHash64(session_id) % {slices} = {part}"
        run(
            f"""INSERT INTO {DATABASE}.session_starts (project_id, session_id, started_at)
SELECT project_id, session_id, min(first_ts) FROM {DATABASE}.session_segments FINAL
WHERE {picked} GROUP BY project_id, session_id"""
        )
        run(
            f"INSERT INTO {DATABASE}.sessions ({session_insert_columns(aggregates)}, version, is_deleted)\n"
            + session_rows_select(picked, str(version), aggregates)
        )
    return total


def _fill_sessions(run: Run, e: Engines) -> None:
    """Sessions of a data directory from before the sessions table, from its session_segments rows."""
    fill_sessions(run, aggregates=SESSION_AGGREGATES_V3)


SegmentColumns = tuple[tuple[str, str, str], ...]
# The columns of session_segments after steps 4 and 5 (a step's data function fills those of its own time).
SEGMENT_COLUMNS_V4: SegmentColumns = SEGMENT_ANALYTICS_COLUMNS
SEGMENT_COLUMNS_V5: SegmentColumns = SEGMENT_COLUMNS_V4 + SEGMENT_FRUSTRATION_COLUMNS
SEGMENT_COLUMNS_V7: SegmentColumns = SEGMENT_COLUMNS_V5 + SEGMENT_STEP_COLUMNS
ALL_SEGMENT_COLUMNS: SegmentColumns = SEGMENT_COLUMNS_V7


def segment_summary_columns(analytics_columns: SegmentColumns = ALL_SEGMENT_COLUMNS) -> str:
    return (
        "project_id, session_id, segment_id, first_ts, last_ts, pageviews, clicks, errors, events,"
        " entry, last_user, country, browser, os, device_type, urls, "
        + ", ".join(name for name, _, _ in analytics_columns)
    )


SEGMENT_SUMMARY_COLUMNS = segment_summary_columns()


def segment_summary_select(where: str, analytics_columns: SegmentColumns = ALL_SEGMENT_COLUMNS) -> str:
    """SELECT of session_segments rows (``segment_summary_columns(analytics_columns)`` order): the events
    ``where`` picks, per session and spool segment."""
    analytics = ",\n       ".join(expression for _, _, expression in analytics_columns)
    return f"""SELECT project_id, session_id, segment_id, min(ts), max(ts),
       countIf(type = 'pageview'), countIf(type = 'click'), countIf(type = 'error'), count(),
       min((ts, url)),
       max((if(user_id = '', toDateTime64(0, 3, 'UTC'), ts), user_id)),
       anyIf(country, country != ''), any(browser), any(os), any(device_type),
       arraySlice(groupUniqArrayIf(url, type = 'pageview'), 1, 100),
       {analytics}
FROM {DATABASE}.events
WHERE {where}
GROUP BY project_id, session_id, segment_id"""


Columns = tuple[tuple[str, str], ...]  # (name, ClickHouse type, with its MATERIALIZED expression if it has one)


def _typed(columns: tuple[tuple[str, ...], ...]) -> Columns:
    """(name, type) of each of a schema list's columns (whatever else each entry holds)."""
    return tuple((column[0], column[1]) for column in columns)


def _add_columns(segments: Columns = (), sessions: Columns = ()) -> Callable[[Engines], list[str]]:
    """A step's DDL: add ``segments`` to session_segments and ``sessions`` to sessions (each only if missing)."""

    def ddl(e: Engines) -> list[str]:
        statements = []
        for table, columns in (("session_segments", segments), ("sessions", sessions)):
            if columns:
                added = ", ".join(f"ADD COLUMN IF NOT EXISTS {name} {ch_type}" for name, ch_type in columns)
                statements.append(f"ALTER TABLE {DATABASE}.{table}{e.cluster} {added}")
        return statements

    return ddl


def _fill_session_analytics(run: Run, e: Engines) -> None:
    """Summaries of the segments stored before step 4, again from their events (each replaces its old row:
    same key, newer loaded_at), then every session's row again, above every version written so far."""
    _summarise_again(run, e, SEGMENT_COLUMNS_V4, SESSION_AGGREGATES_V4)


def _summarise_again(run: Run, e: Engines, segment_columns: SegmentColumns, aggregates: Aggregates) -> None:
    """Every segment's summary again from its events, then every session's row, with the columns given."""
    rows = run(f"SELECT count() AS n FROM {DATABASE}.events")
    total = int(rows[0]["n"]) if rows else 0
    slices = max(1, -(-total // FILL_SLICE_ROWS))
    for part in range(slices if total else 0):
        run(
            f"INSERT INTO {DATABASE}.session_segments ({segment_summary_columns(segment_columns)})\n"
            + segment_summary_select(f"cityHash64(session_id) % {slices} = {part}", segment_columns)
        )
    if total:
        # Once, now: the replaced summaries would otherwise wait for a merge, and readers without FINAL
        # (counts, the migration test) would see each twice meanwhile.
        run(f"OPTIMIZE TABLE {DATABASE}.session_segments{e.cluster} FINAL")
    newest = run(f"SELECT max(version) AS v FROM {DATABASE}.sessions")
    version = int(newest[0]["v"] or 0) + 1 if newest else 1
    fill_sessions(run, aggregates=aggregates, version=max(version, FILLED_SESSION_VERSION + 1))


# --- step 5: frustration signals ---------------------------------------------------------------------------


def _fill_frustration(run: Run, e: Engines) -> None:
    """The signals of the sessions stored before step 5: their segments summarised again from their events
    (each replaces its old row), then each session's row again, above every version written so far."""
    _summarise_again(run, e, SEGMENT_COLUMNS_V5, SESSION_AGGREGATES_V5)


# --- step 6: analytics read speed ---------------------------------------------------------------------------

# Funnels look for events by kind and page (or name, selector): a copy of those few columns of ``events``,
# ordered by them, that ClickHouse keeps with every part it writes (a projection), so a funnel reads the
# ranges of its steps' events instead of every event of the date range. Queries never name it: the engine
# picks it when it reads less.
EVENTS_STEP_PROJECTION = "events_by_step"
_EVENTS_STEP_PROJECTION_SELECT = (
    "SELECT project_id, type, path, name, selector, text, props, ts, session_id"
    " ORDER BY project_id, type, path, name, selector, ts"
)


def _analytics_speed(e: Engines) -> list[str]:
    return [
        # The loader's repair deletes a half-stored segment's events (a lightweight DELETE): with a projection
        # that needs the projection rebuilt for the parts it touches, or ClickHouse refuses the DELETE.
        f"ALTER TABLE {DATABASE}.events{e.cluster} MODIFY SETTING lightweight_mutation_projection_mode = 'rebuild'",
        f"ALTER TABLE {DATABASE}.events{e.cluster} ADD PROJECTION IF NOT EXISTS {EVENTS_STEP_PROJECTION}"
        f" ({_EVENTS_STEP_PROJECTION_SELECT})",
    ]


def _materialize_analytics_speed(run: Run, e: Engines) -> None:
    """The projection for the parts written before step 6 (new parts get it as they are written); waited for,
    so a funnel right after the upgrade already reads it. Rows are not touched."""
    run(f"ALTER TABLE {DATABASE}.events{e.cluster} MATERIALIZE PROJECTION {EVENTS_STEP_PROJECTION}"
        " SETTINGS mutations_sync = 2")


# --- step 7: funnel step sequences ----------------------------------------------------------------------


def _fill_step_sequences(run: Run, e: Engines) -> None:
    """The step sequences of the sessions stored before step 7: their segments summarised again from their events
    (each replaces its old row), then each session's row again, above every version written so far."""
    _summarise_again(run, e, SEGMENT_COLUMNS_V7, SESSION_AGGREGATES_V7)


# --- steps 8 and 9: funnel step keys, overview keys (columns ClickHouse computes from others) ----------------


def _materialize(columns: Columns) -> Callable[[Run, Engines], None]:
    """A step's data: ``columns`` computed for the rows written before the step (rows written after get them as
    they are written) from the rows' own values; waited for, so a view right after the upgrade reads them. No row
    is added."""

    def data(run: Run, e: Engines) -> None:
        for name, _ in columns:
            run(f"ALTER TABLE {DATABASE}.sessions{e.cluster} MATERIALIZE COLUMN {name} SETTINGS mutations_sync = 2")

    return data


# --- step 10: visitor numbers -----------------------------------------------------------------------------------

VISITOR_NUMBERS_FILL = f"{DATABASE}.visitor_numbers_fill"


def _visitors(e: Engines) -> list[str]:
    return [
        # (project, visitor hash) -> the visitor's number. Written only by whoever writes sessions rows (the
        # loader, this step): one writer numbers a project's visitors at a time, so no number is given twice.
        # Small granules: the loader looks up the few visitors of one load among millions.
        f"""CREATE TABLE IF NOT EXISTS {DATABASE}.visitors{e.cluster} (
    project_id UInt32,
    visitor UInt64,
    num UInt32
) ENGINE = {e.replacing()}
ORDER BY (project_id, visitor)
SETTINGS index_granularity = 1024""",
        *_add_columns(sessions=SESSION_VISITOR_NUMBER)(e),
    ]


def number_visitors(run: Run, e: Engines = Engines()) -> None:
    """A number for each visitor of the stored sessions that has none yet (per project, after the highest given,
    in the order of their first session), then ``visitor_num`` of every sessions row without one: what the loader
    does for the sessions of each load, for all stored sessions at once (step 10, and data written in bulk)."""
    run(f"""INSERT INTO {DATABASE}.visitors (project_id, visitor, num)
SELECT n.project_id, n.visitor,
       toUInt32(t.top + row_number() OVER (PARTITION BY n.project_id ORDER BY n.first, n.visitor))
FROM (SELECT project_id, visitor, min(started_at) AS first FROM {DATABASE}.sessions FINAL
      WHERE is_deleted = 0 AND (project_id, visitor) NOT IN (SELECT project_id, visitor FROM {DATABASE}.visitors)
      GROUP BY project_id, visitor) AS n
LEFT JOIN (SELECT project_id, max(num) AS top FROM {DATABASE}.visitors GROUP BY project_id) AS t
  ON n.project_id = t.project_id""")
    # An UPDATE reads other tables only through a dictionary or a Join table: one made for it, and dropped.
    run(f"DROP TABLE IF EXISTS {VISITOR_NUMBERS_FILL}{e.cluster} SYNC")
    run(f"CREATE TABLE {VISITOR_NUMBERS_FILL}{e.cluster} ENGINE = Join(ANY, LEFT, project_id, visitor)"
        f" AS SELECT project_id, visitor, num FROM {DATABASE}.visitors")
    run(f"ALTER TABLE {DATABASE}.sessions{e.cluster}"
        f" UPDATE visitor_num = joinGet('{VISITOR_NUMBERS_FILL}', 'num', project_id, visitor)"
        " WHERE visitor_num = 0 AND is_deleted = 0"
        " SETTINGS mutations_sync = 2, allow_nondeterministic_mutations = 1")
    run(f"DROP TABLE IF EXISTS {VISITOR_NUMBERS_FILL}{e.cluster} SYNC")


def _number_visitors_and_pages(run: Run, e: Engines) -> None:
    """Step 10's data: the stored sessions' visitor numbers, and their pages as LowCardinality (type changes:
    ClickHouse converts the stored values, waited for). No row is added."""
    number_visitors(run, e)
    changes = ", ".join(f"MODIFY COLUMN {name} {ch_type}" for name, ch_type in SESSION_LOW_CARDINALITY_V10)
    run(f"ALTER TABLE {DATABASE}.sessions{e.cluster} {changes} SETTINGS mutations_sync = 2")


STEPS: tuple[Step, ...] = (
    Step(1, "baseline: events, recordings, session_segments, loaded_segments", _baseline),
    Step(2, "seen_batches: exactly once per client batch id", _seen_batches),
    Step(3, "sessions: one row per session, filled from session_segments", _sessions, _fill_sessions),
    Step(4, "session analytics: ordered pageviews, entry and exit, referrer, UTM, props",
         _add_columns(_typed(SEGMENT_ANALYTICS_COLUMNS), _typed(SESSION_ANALYTICS_COLUMNS)), _fill_session_analytics),
    Step(5, "frustration: rage, dead and error clicks, quick backs, scrolling, cursor per session",
         _add_columns(_typed(SEGMENT_FRUSTRATION_COLUMNS),
                      _typed(SESSION_FRUSTRATION_COLUMNS) + SESSION_FRUSTRATION_MATERIALIZED),
         _fill_frustration),
    Step(6, "analytics speed: pre-aggregates the funnel, retention and paths reads use", _analytics_speed,
         _materialize_analytics_speed),
    Step(7, "funnel step sequences: each session's pageviews and custom events in order",
         _add_columns(_typed(SEGMENT_STEP_COLUMNS), _typed(SESSION_STEP_COLUMNS)), _fill_step_sequences),
    Step(8, "funnel step keys: each session's step sequence as times and hashed kinds and pages",
         _add_columns(sessions=SESSION_STEP_KEY_MATERIALIZED), _materialize(SESSION_STEP_KEY_MATERIALIZED)),
    Step(9, "overview keys: each session's visitor hash, and its pages with their view counts",
         _add_columns(sessions=SESSION_OVERVIEW_MATERIALIZED), _materialize(SESSION_OVERVIEW_MATERIALIZED)),
    Step(10, "visitor numbers: a small number per visitor on each session row (bitmaps count them); pages as"
         " LowCardinality",
         _visitors, _number_visitors_and_pages),
)
assert [step.version for step in STEPS] == list(range(1, len(STEPS) + 1)), "steps are numbered 1, 2, 3, …"
assert MAX_SESSION_URLS > 0


def _ledger_ddl(e: Engines) -> list[str]:
    return [
        f"CREATE DATABASE IF NOT EXISTS {DATABASE}{e.cluster}",
        f"""CREATE TABLE IF NOT EXISTS {LEDGER}{e.cluster} (
    version UInt32,
    name String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = {e.replacing("applied_at")}
ORDER BY version""",
    ]


def applied_versions(run: Run) -> set[int]:
    return {int(row["version"]) for row in run(f"SELECT DISTINCT version FROM {LEDGER}")}


def migrate(run: Run, engines: Engines | None = None) -> list[int]:
    """Apply every step the ledger lacks, in order; return the versions applied now.

    Raises RuntimeError for a data directory made by a newer release (its ledger has steps this
    code does not know): running older code on it could lose data.
    """
    engines = engines or Engines()
    for statement in _ledger_ddl(engines):
        run(statement)
    applied = applied_versions(run)
    unknown = sorted(applied - {step.version for step in STEPS})
    if unknown:
        raise RuntimeError(
            f"the ClickHouse data has schema steps {unknown} this version of Hitmetrix does not know: "
            "it was made by a newer release; run that release (or newer)"
        )
    if not applied and _table_exists(run, "events"):
        log.info("ClickHouse data of a release before the schema ledger: recognised as step 1, upgrading")
    done: list[int] = []
    for step in STEPS:
        if step.version in applied:
            continue
        log.info("ClickHouse schema step %d: %s", step.version, step.name)
        for statement in step.ddl(engines):
            run(statement)
        if step.data is not None:
            step.data(run, engines)
        run(
            f"INSERT INTO {LEDGER} (version, name, applied_at) "
            f"VALUES ({step.version}, '{step.name.replace(chr(39), '')}', now64(3))"
        )
        done.append(step.version)
    return done


def _table_exists(run: Run, table: str) -> bool:
    rows = run(f"SELECT count() AS n FROM system.tables WHERE database = '{DATABASE}' AND name = '{table}'")
    return bool(rows) and int(rows[0]["n"]) > 0


def create_statements(engines: Engines | None = None) -> list[str]:
    """Every CREATE of every step, in order: what remakes a dropped table (tests break tables on purpose)."""
    engines = engines or Engines()
    return [statement for step in STEPS for statement in step.ddl(engines) if statement.startswith("CREATE")]
