"""How long personal data is kept: the retention purge and the personal-data report.

A closed case's personal data is kept for ``CASEGRID_PRIVACY_RETENTION_DAYS`` after closing
(default 3 years), then :func:`purge` removes it: the reporter's name, phone and e-mail
(every column of :data:`REPORTER_COLUMNS` the ledger has), the links to the citizen's own
photos (:data:`REPORTER_LINKS`: reporter data, ``cases.queries.REPORTER_FIELDS``), the texts as written of masked
descriptions, addresses and notes (``personal_text``: the masked text stays, as every role
without the reporter's data already sees it). The case, its location, category, times,
history and indicators stay, so statistics never change. The texts as written of an
activity's title, place and note go the same period after the activity ended (the columns the statistics
triggers read are not touched). Each purged case gets a ``privacy_purge`` history entry.

Set-based and in short transactions: each batch of ``CASEGRID_PRIVACY_PURGE_BATCH`` cases
is one statement and one COMMIT, so intake (which takes the statistics rows of today, never
a closed case's) does not wait behind a long purge. A dry run (the default of the CLI)
counts what a purge would remove and changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from sqlalchemy import Connection, Engine, text

from casegrid.errors import InvalidInput
from casegrid.heartbeat import record_heartbeat
from casegrid.settings import Settings, get_settings
from cases.calendar import CITY_TZ
from cases.vocabulary import unclosed_sql

# Columns of "case" that hold the reporter's own data (the ones present are purged).
REPORTER_COLUMNS = ("reporter_name", "reporter_phone", "reporter_email")
# Array columns of "case" with the citizen's own links (a photo link on someone else's server
# can name its sender, and the photo behind it keeps a position we cannot strip): emptied.
REPORTER_LINKS = ("photo_urls",)
# Staff-only facts of attachments (issue 22's table): the original's EXIF time and GPS
# position, and the file name the sender gave it (phones name files after people).
ATTACHMENT_FACTS = ("taken_at", "taken_geom", "original_name")
PURGE_ACTION = "privacy_purge"
PURGE_ACTOR = ("privacy-purge", "system")
# The worker purges once a night, at its first pass after this time (city time).
NIGHTLY_AT = time(2, 0)
NIGHTLY_NAME = "privacy purge (nightly)"
_DURATION = re.compile(r"^\s*(\d+)\s*([ymwd])\s*$")
_UNITS = {"y": 365, "m": 30, "w": 7, "d": 1}


def parse_age(value: str) -> timedelta:
    """``3y``, ``18m``, ``6w``, ``90d`` as a duration (a year is 365 days, a month 30)."""
    m = _DURATION.match(value or "")
    if m is None or int(m[1]) == 0:
        raise InvalidInput(f"older-than {value!r} is not a duration: give a whole number and "
                           "a unit, e.g. 3y, 18m, 6w or 90d", field="older_than")
    return timedelta(days=int(m[1]) * _UNITS[m[2]])


def _present(conn: Connection, table: str, columns: tuple[str, ...]) -> list[str]:
    rows = conn.execute(text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = :t AND column_name = ANY(:c)"),
        {"t": table, "c": list(columns)}).scalars().all()
    return [c for c in columns if c in rows]


def reporter_columns(conn: Connection) -> list[str]:
    """The :data:`REPORTER_COLUMNS` the ledger has (an e-mail column may come later)."""
    return _present(conn, "case", REPORTER_COLUMNS)


def reporter_links(conn: Connection) -> list[str]:
    """The :data:`REPORTER_LINKS` columns the ledger has."""
    return _present(conn, "case", REPORTER_LINKS)


def attachment_facts(conn: Connection) -> list[str]:
    """The :data:`ATTACHMENT_FACTS` columns of ``attachment``, once that table exists."""
    return _present(conn, "attachment", ATTACHMENT_FACTS)


@dataclass
class PurgeReport:
    """What a purge found (dry run) or did (commit)."""

    cutoff: object
    committed: bool
    cases: int = 0
    fields: dict[str, int] = field(default_factory=dict)
    batches: int = 0


def _eligible(cutoff_param: str = "cutoff") -> str:
    return f"c.closed_at < :{cutoff_param} AND c.purged_at IS NULL"


# An activity's texts as written are kept as long as a case's: the period runs from its end.
_ACTIVITY_ELIGIBLE = "coalesce(a.ended_at, a.started_at) < :cutoff"
_PURGE_ACTIVITIES = text(f"""
WITH texts AS (
    DELETE FROM personal_text p USING activity a
    WHERE p.activity_id = a.id AND {_ACTIVITY_ELIGIBLE}
    RETURNING p.activity_id, p.field
), ev AS (
    INSERT INTO activity_event (activity_id, actor, role, action, data)
    SELECT activity_id, :actor, :role, '{PURGE_ACTION}',
           jsonb_build_object('cutoff', CAST(:cutoff AS timestamptz),
                              'fields', jsonb_agg(field ORDER BY field))
    FROM texts GROUP BY activity_id
)
SELECT count(*) FROM texts""")


def _counts(conn: Connection, cutoff, columns: list[str], links: list[str],
            facts: list[str]) -> PurgeReport:
    counted = ", ".join([*(f"count(c.{col}) AS {col}" for col in columns),
                         *(f"count(*) FILTER (WHERE cardinality(c.{col}) > 0) AS {col}"
                           for col in links)])
    row = conn.execute(text(
        f'SELECT count(*) AS cases, {counted} FROM "case" c WHERE {_eligible()}'),
        {"cutoff": cutoff}).mappings().one()
    texts = conn.execute(text(
        f'SELECT p.field, count(*) FROM personal_text p JOIN "case" c ON c.id = p.case_id '
        f"WHERE {_eligible()} GROUP BY p.field ORDER BY p.field"), {"cutoff": cutoff}).all()
    report = PurgeReport(cutoff, False, row["cases"], {col: row[col] for col in [*columns, *links]})
    report.fields.update({f"original {f}": n for f, n in texts})
    report.fields["original activity texts"] = conn.execute(text(
        f"SELECT count(*) FROM personal_text p JOIN activity a ON a.id = p.activity_id "
        f"WHERE {_ACTIVITY_ELIGIBLE}"), {"cutoff": cutoff}).scalar_one()
    if facts:
        report.fields["attachment facts"] = conn.execute(text(
            f'SELECT count(*) FROM attachment a JOIN "case" c ON c.id = a.case_id WHERE {_eligible()} '
            f"AND ({' OR '.join(f'a.{f} IS NOT NULL' for f in facts)})"),
            {"cutoff": cutoff}).scalar_one()
    return report


def purge(engine: Engine, older_than: timedelta | None = None, *, commit: bool = False,
          settings: Settings | None = None, progress=None) -> PurgeReport:  # noqa: ANN001
    """Purge the personal data of cases closed more than ``older_than`` ago (default: the
    retention setting). Dry run unless ``commit``: then the counts are what was removed.
    ``progress(n)`` is called with the cases of each committed batch."""
    settings = settings or get_settings()
    if older_than is None:
        older_than = timedelta(days=settings.privacy_retention_days)
    with engine.connect() as conn:
        cutoff = conn.execute(text("SELECT now() - CAST(:age AS interval)"),
                              {"age": older_than}).scalar_one()
        columns = reporter_columns(conn)
        links = reporter_links(conn)
        facts = attachment_facts(conn)
        report = _counts(conn, cutoff, columns, links, facts)
    if not commit:
        return report
    report.committed = True
    with engine.begin() as conn:
        report.fields["original activity texts"] = conn.execute(_PURGE_ACTIVITIES, {
            "cutoff": cutoff, "actor": PURGE_ACTOR[0], "role": PURGE_ACTOR[1]}).scalar_one()
    sets = ", ".join([*(f"{col} = NULL" for col in columns), *(f"{col} = '{{}}'" for col in links)])
    attachments = "" if not facts else (
        ", files AS (UPDATE attachment a SET " + ", ".join(f"{f} = NULL" for f in facts)
        + " FROM batch WHERE a.case_id = batch.id)")
    statement = text(f"""
WITH batch AS MATERIALIZED (
    SELECT c.id FROM "case" c WHERE c.id > :after AND {_eligible()} ORDER BY c.id LIMIT :n
    FOR UPDATE
), purged AS (
    UPDATE "case" c SET {sets}, purged_at = now() FROM batch WHERE c.id = batch.id
    RETURNING c.id, c.status
), texts AS (
    DELETE FROM personal_text p USING batch WHERE p.case_id = batch.id
){attachments}, ev AS (
    INSERT INTO case_event (case_id, actor, role, action, from_state, to_state, data)
    SELECT id, :actor, :role, '{PURGE_ACTION}', status, status,
           jsonb_build_object('cutoff', CAST(:cutoff AS timestamptz),
                              'fields', CAST(:fields AS jsonb))
    FROM purged
)
SELECT count(*), max(id) FROM purged""")
    fields = json.dumps([*columns, *links, "personal_text", *(f"attachment.{f}" for f in facts)])
    after = 0
    while True:
        with engine.begin() as conn:
            done, last = conn.execute(statement, {
                "after": after, "cutoff": cutoff, "n": settings.privacy_purge_batch,
                "actor": PURGE_ACTOR[0], "role": PURGE_ACTOR[1], "fields": fields}).one()
        if not done:
            break
        report.batches += 1
        after = last
        if progress:
            progress(done)
    return report


def nightly_purge(engine: Engine, settings: Settings | None = None,
                  now: datetime | None = None) -> PurgeReport | None:
    """The worker's nightly job (``casegrid worker`` calls it at every pass): when
    ``CASEGRID_PRIVACY_PURGE_NIGHTLY`` is on and no purge ran since the last
    :data:`NIGHTLY_AT` (city time), the purge with the retention setting, committed, then a
    heartbeat named :data:`NIGHTLY_NAME` that says when it ran; None when nothing was due."""
    settings = settings or get_settings()
    if not settings.privacy_purge_nightly:
        return None
    with engine.connect() as conn:
        now = now or conn.execute(text("SELECT now()")).scalar_one()
        # The run's own clock (the worker's `now`), kept in the heartbeat's info.
        last = conn.execute(text(
            "SELECT CAST(info->>'ran_at' AS timestamptz) FROM worker_heartbeat WHERE name = :n"),
            {"n": NIGHTLY_NAME}).scalar_one_or_none()
    local = now.astimezone(CITY_TZ)
    mark = datetime.combine(local.date(), NIGHTLY_AT, tzinfo=CITY_TZ)
    if local < mark:
        mark -= timedelta(days=1)
    if last is not None and last >= mark:
        return None
    report = purge(engine, commit=True, settings=settings)
    with engine.begin() as conn:
        record_heartbeat(conn, NIGHTLY_NAME, {"ran_at": now.isoformat(), "cases": report.cases,
                                              "batches": report.batches})
    return report


# --- the report ---------------------------------------------------------------------------


def personal_data_report(conn: Connection, settings: Settings | None = None) -> list[dict]:
    """What personal data the ledger holds, for the bureau's records: per field, how many
    cases hold it, how old the oldest is, and how many are past the retention period
    (closed more than ``CASEGRID_PRIVACY_RETENTION_DAYS`` ago and not purged yet). For an
    activity's texts as written (``personal_text.activity_*``) the count is of activities,
    and the period runs from the activity's end."""
    settings = settings or get_settings()
    age = {"age": timedelta(days=settings.privacy_retention_days)}
    out = []
    held = [*((c, f"c.{c} IS NOT NULL") for c in reporter_columns(conn)),
            *((c, f"cardinality(c.{c}) > 0") for c in reporter_links(conn))]
    for col, holds in held:
        row = conn.execute(text(f"""
SELECT count(*) AS cases, min(c.received_at) AS oldest,
       count(*) FILTER (WHERE {unclosed_sql("c")}) AS open,
       count(*) FILTER (WHERE c.closed_at < now() - CAST(:age AS interval)) AS past_retention
FROM "case" c WHERE {holds}"""), age).mappings().one()
        out.append({"field": f"case.{col}", **row})
    rows = conn.execute(text(f"""
SELECT 'personal_text.' || p.field AS field, count(DISTINCT p.case_id) AS cases,
       min(p.stored_at) AS oldest,
       count(DISTINCT p.case_id) FILTER (WHERE {unclosed_sql("c")}) AS open,
       count(DISTINCT p.case_id) FILTER (WHERE c.closed_at < now() - CAST(:age AS interval))
           AS past_retention
FROM personal_text p JOIN "case" c ON c.id = p.case_id GROUP BY p.field ORDER BY p.field"""),
                        age).mappings().all()
    out.extend(dict(r) for r in rows)
    rows = conn.execute(text("""
SELECT 'personal_text.activity_' || p.field AS field, count(DISTINCT p.activity_id) AS cases,
       min(p.stored_at) AS oldest, 0 AS open,
       count(DISTINCT p.activity_id) FILTER (
           WHERE coalesce(a.ended_at, a.started_at) < now() - CAST(:age AS interval))
           AS past_retention
FROM personal_text p JOIN activity a ON a.id = p.activity_id GROUP BY p.field ORDER BY p.field"""),
                        age).mappings().all()
    out.extend(dict(r) for r in rows)
    for fact in attachment_facts(conn):
        row = conn.execute(text(f"""
SELECT count(DISTINCT a.case_id) AS cases, min(a.created_at) AS oldest,
       count(DISTINCT a.case_id) FILTER (WHERE {unclosed_sql("c")}) AS open,
       count(DISTINCT a.case_id) FILTER (WHERE c.closed_at < now() - CAST(:age AS interval))
           AS past_retention
FROM attachment a JOIN "case" c ON c.id = a.case_id WHERE a.{fact} IS NOT NULL"""),
                           age).mappings().one()
        out.append({"field": f"attachment.{fact}", **row})
    return out
