"""The first load of a city's history: an import much larger than the ledger takes the
exclusive path (see :mod:`cases.bulk_import`). It locks ``"case"`` and ``case_event``, drops
the indexes and keys of each table it outgrows (and the statistics trigger), writes cases,
register events and statistics in one statement, then rebuilds what it dropped from the
catalogue's own definitions. All in the import's transaction: a failure rolls it all back."""

from __future__ import annotations

from sqlalchemy import Connection, Row, text

from cases.bulk_import import stage
from cases.bulk_import.report import ProgressFn
from cases.vocabulary import STATS_DAY_ZONE

# Below this many new cases the row-by-row index upkeep costs a few seconds at most, not
# worth an exclusive lock on the ledger; above it (and when the import at least doubles the
# table) the indexes are rebuilt instead (module docstring).
BULK_MIN_ROWS = 100_000
# work_mem for the INSERT statement of a large import (this transaction only, then put
# back): its sort, hash tables and materialized join (``src``) hold a million rows; at the
# server's 64 MB they spill to temporary files. (maintenance_work_mem for the index rebuild
# made no difference: 256 MB and 1 GB alike, alternating, in a scratch database and in
# `python -m bench --only bulk_import`. The btree rebuilds run with the server's parallel
# maintenance workers, in this transaction too; without them they take longer.)
BULK_WORK_MEM = "1GB"


# Per table: the statement that drops, and the statement that recreates exactly, each of
# its indexes (primary key and unique ones included), its foreign keys and the foreign keys
# of other tables that reference it (they depend on its key and go first). step orders the
# rebuild: keys, then the other indexes, then the foreign keys, which need the keys they
# reference. An index that backs another kind of constraint (an exclusion) stays.
SECONDARY_SQL = """
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::regclass, conname) AS drop_sql,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
              pg_get_constraintdef(oid)) AS create_sql,
       CASE contype WHEN 'f' THEN 2 ELSE 0 END AS step
FROM pg_constraint
WHERE (contype = 'f' AND CAST(:tbl AS regclass) IN (conrelid, confrelid))
   OR (contype IN ('p', 'u') AND conrelid = CAST(:tbl AS regclass))
UNION ALL
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid), 1
FROM pg_index i
WHERE i.indrelid = CAST(:tbl AS regclass)
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                  WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)
ORDER BY step, create_sql
"""
# Tables whose upkeep a large import takes over, each with how many rows it has to exceed.
BULK_TABLES = ('"case"', "case_event")


def rows_up_to(conn: Connection, table: str, limit: int) -> int:
    """``min(count(*), limit + 1)``: enough to compare with ``limit`` without counting a
    large table to the end."""
    return conn.execute(text(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT :n) x"),
                        {"n": limit + 1}).scalar_one()


def drop_secondary(conn: Connection, new: int) -> tuple[bool, list[str]]:
    """For a large import: lock ``"case"`` and ``case_event`` exclusively and drop every
    index, key and foreign key of each table the import outgrows (``new`` rows at least as
    many as it holds), and the foreign keys that reference it. Returns (locked, the
    statements that recreate what was dropped: keys, indexes, foreign keys). Same
    transaction: a rollback restores everything. Nothing is locked or dropped when neither
    table is outgrown."""
    tables = [t for t in BULK_TABLES if rows_up_to(conn, t, new) <= new]
    if not tables:
        return False, []
    # Both tables, up front, in a fixed order: from here on no other session writes a case,
    # so the INSERT needs no ON CONFLICT and case ids can be assigned before it.
    conn.execute(text(f"LOCK TABLE {', '.join(BULK_TABLES)} IN ACCESS EXCLUSIVE MODE"))
    plan: dict[str, Row] = {}
    for table in tables:  # a foreign key between two outgrown tables is found twice
        for row in conn.execute(text(SECONDARY_SQL), {"tbl": table}):
            plan.setdefault(row.drop_sql, row)
    rows = sorted(plan.values(), key=lambda r: r.step)
    for row in reversed(rows):  # foreign keys before the keys they reference
        conn.execute(text(row.drop_sql))
    return True, [r.create_sql for r in rows]


# The register events' data of the exclusive path, per routing rule and community (a few
# hundred at most): each event takes its kind's object and sets its line in it, which
# costs a fraction of a jsonb_build_object of eight values per row (whose "any" arguments
# are looked up and converted at every call).
KINDS_SQL = """
CREATE TEMP TABLE cg_kinds ON COMMIT DROP AS
SELECT k.rule, k.cid,
       jsonb_build_object('rule', k.rule, 'community_code', c.code,
                          'subdistrict_code', c.subdistrict_code, 'post_id', p.id,
                          'generation_id', CAST(:gen AS int), 'source', CAST(:source AS text),
                          'mapping', CAST(:mapping AS text)) AS data
FROM (SELECT DISTINCT rule, COALESCE(community_id, 0) AS cid FROM cg_routed) k
LEFT JOIN community c ON c.id = k.cid
LEFT JOIN community_post p ON p.community_code = c.code
"""
# The exclusive path (large imports, tables locked before deduplication), ONE statement:
# ``src`` joins each new row with its routing, community and post once, in file order, and
# draws its case id and number there (numbers formatted by case_no_of, which the planner
# inlines, where the column default next_case_no() is a function call per row); the cases,
# their register events and ({stats}) their statistics are written from it. No ON
# CONFLICT (no other session can have stored a ticket meanwhile) and no RETURNING rows
# carried through a join. The id sequence is named as the constant its bigserial column
# gave it (0001), as cases.intake's INSERT names it: a pg_get_serial_sequence() call in the
# statement would run once per row. The columns ({columns}) and the join ({routed}) are the
# row path's own (cases.bulk_import.stage); the values match its INSERT_SQL (tests compare
# the two paths).
INSERT_LOCKED_SQL = """
WITH src AS MATERIALIZED (
    SELECT nextval(CAST('case_id_seq' AS regclass)) AS case_id,
           nextval(CAST('case_no_seq' AS regclass)) AS case_no_n, x.*
    FROM (SELECT n.*, t.reported_at,
                 CASE WHEN :backdate THEN t.reported_at ELSE now() END AS received_at,
                 r.rule, r.distance_m, r.near_boundary, r.alternates, r.community_id,
                 c.code AS community_code, c.subdistrict_code, p.id AS post_id
          {routed}) x
),
cases AS (
    INSERT INTO "case" (id, case_no, {columns})
    SELECT case_id, case_no_of(case_no_n), channel, external_id, category_code,
           COALESCE(description, ''), address, reported_at, received_at,
           reporter_name, reporter_phone,
           COALESCE(regexp_split_to_array(NULLIF(btrim(photo_urls), ''), '[\\s;,]+'), '{{}}'),
           input_lon, input_lat, input_crs, ST_SetSRID(ST_MakePoint(lon, lat), 4326),
           community_code, subdistrict_code, post_id, :gen, rule, distance_m, near_boundary,
           alternates, 'registered',
           to_timestamp(review_s), to_timestamp(reply_s), to_timestamp(review_s),
           COALESCE(due_prov, false)
    FROM src
){stats}{locate}
INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, note, data)
SELECT s.case_id, s.received_at, :actor, 'intake', 'register', NULL, 'registered', :note,
       jsonb_set(k.data, '{{line}}', to_jsonb(s.line))
FROM src s JOIN cg_kinds k ON k.rule = s.rule AND k.cid = COALESCE(s.community_id, 0)
"""

# The statistics of a large import. The row path leaves them to the statement-level trigger
# case_stat_ins, which keeps a transition table of every inserted row (a million, on a first
# load) and groups it four times over, once per dimension. Every case an import stores is
# 'registered', with no workflow time yet, so it adds to ``accepted`` only (the trigger's
# own shortcut since migration 0013): on the exclusive path the trigger is dropped for the
# INSERT and created again after it from its catalogue definition (DDL is transactional, and
# the table is locked anyway), and the counts are added by the same statement, in one pass
# over the new rows: one grouping set per dimension, each (day, key) hashed once (grouping
# the rows by all five keys first, then spreading each group over the four dimensions, made
# ten times as many groups). Day and keys as case_stat_merge_sql (migration 0003) derives
# them; tests compare the two paths' tables.
# Dropped, not disabled: PostgreSQL 15 fills a trigger's transition table whether or not the
# trigger is enabled (it decides at firing time), so a disabled case_stat_ins still copied
# every new case into a tuplestore (temporary files at a small work_mem, as many as with it
# enabled). The gain is small (bench/RESULTS.md, issue 20's section). An operator's
# disabled trigger is dropped too, and comes back disabled.
STATS_TRIGGER_SQL = """
SELECT t.tgenabled, pg_get_triggerdef(t.oid) AS create_sql
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE t.tgrelid = '"case"'::regclass AND t.tgname = 'case_stat_ins'
  AND pg_has_role(c.relowner, 'USAGE')
"""
# How ALTER TABLE puts back a trigger's firing state (pg_trigger.tgenabled).
TRIGGER_STATE = {"D": "DISABLE", "R": "ENABLE REPLICA", "A": "ENABLE ALWAYS"}
STATS_LOCKED_CTE = f""",
stats AS (
    INSERT INTO case_stat AS t (dim, day, key, accepted)
    SELECT dim, day, key, sum(n)::int
    FROM (SELECT CASE WHEN GROUPING(community_code) = 0 THEN 'community'
                      WHEN GROUPING(subdistrict_code) = 0 THEN 'subdistrict'
                      WHEN GROUPING(category_code) = 0 THEN 'category'
                      ELSE 'channel' END AS dim,
                 day,
                 CASE WHEN GROUPING(community_code) = 0 THEN coalesce(community_code, '')
                      WHEN GROUPING(subdistrict_code) = 0 THEN coalesce(subdistrict_code, '')
                      WHEN GROUPING(category_code) = 0 THEN category_code
                      ELSE channel END AS key,
                 count(*) AS n
          FROM (SELECT (received_at AT TIME ZONE '{STATS_DAY_ZONE}')::date AS day,
                       community_code, subdistrict_code, category_code, channel
                FROM src) s
          GROUP BY GROUPING SETS ((day, community_code), (day, subdistrict_code),
                                  (day, category_code), (day, channel))) g
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (dim, day, key) DO UPDATE SET accepted = t.accepted + EXCLUDED.accepted
)"""


def drop_stats_trigger(conn: Connection) -> tuple[str, list[str]] | None:
    """Drop ``case_stat_ins`` (exclusive path, tables locked) and return its firing state
    (``pg_trigger.tgenabled``: 'O' = on) and the statements that put it back as it was;
    None, and nothing dropped, when there is no such trigger or this role does not own
    ``"case"``."""
    row = conn.execute(text(STATS_TRIGGER_SQL)).first()
    if row is None:
        return None
    conn.execute(text('DROP TRIGGER case_stat_ins ON "case"'))
    restore = [row.create_sql]
    if row.tgenabled in TRIGGER_STATE:
        restore.append(f'ALTER TABLE "case" {TRIGGER_STATE[row.tgenabled]} TRIGGER case_stat_ins')
    return row.tgenabled, restore


def insert_locked_sql(own_stats: bool, more_cte: str = "") -> str:
    """INSERT_LOCKED_SQL with the statistics CTE when ``own_stats`` and ``more_cte`` (more
    rows written from ``src``, e.g. ``geo.address_bulk.AddressLocator.answers_cte``)."""
    return INSERT_LOCKED_SQL.format(stats=STATS_LOCKED_CTE if own_stats else "",
                                    locate=more_cte, columns=stage.CASE_COLUMNS,
                                    routed=stage.ROUTED_NEW_ROWS)


def insert_locked(conn: Connection, params: dict, more_cte: str = "") -> int:
    """The exclusive path's INSERT (tables locked by :func:`drop_secondary`): the new cases,
    their register events, when the statistics trigger is on their statistics, and
    ``more_cte`` (a ``, name AS (INSERT ... FROM src ...)`` clause) in one statement, with
    a larger work_mem for this statement only; the trigger put back as it was. Returns how
    many cases it stored."""
    work_mem = conn.execute(text("SELECT current_setting('work_mem')")).scalar_one()
    conn.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": BULK_WORK_MEM})
    restore_trigger = drop_stats_trigger(conn)
    own_stats = restore_trigger is not None and restore_trigger[0] == "O"
    conn.execute(text(KINDS_SQL), params)
    conn.execute(text("ANALYZE cg_kinds"))
    inserted = conn.execute(text(insert_locked_sql(own_stats, more_cte)), params).rowcount
    if restore_trigger is not None:
        for sql in restore_trigger[1]:
            conn.execute(text(sql))
    conn.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": work_mem})
    return inserted


def rebuild(conn: Connection, recreate: list[str], progress: ProgressFn | None) -> None:
    """Recreate what :func:`drop_secondary` dropped, in its order (keys, indexes, foreign
    keys)."""
    if progress:
        progress("indexes", 0, len(recreate))
    for i, sql in enumerate(recreate):
        conn.execute(text(sql))
        if progress:
            progress("indexes", i + 1, len(recreate))
