"""Staging for the bulk import: the temporary table the chunks are COPYed into (and
routed from, chunk by chunk), the tickets repeated in the file or already stored, and the
ordinary path's INSERT of the new cases with their register events (row locks, every index
kept up to date; :mod:`cases.bulk_import.first_load` is the other path)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from cases.mappings.apply import STAGE_COLUMNS

STAGE_DDL = """
DROP TABLE IF EXISTS cg_stage, cg_new, cg_kinds;
CREATE TEMP TABLE cg_stage (
    line bigint PRIMARY KEY, channel text NOT NULL, external_id text NOT NULL,
    category_code text NOT NULL, description text, address text, reported_us bigint NOT NULL,
    reporter_name text, reporter_phone text, photo_urls text,
    input_lon double precision, input_lat double precision, input_crs text,
    -- address only (input_lon NULL): the matcher's point and rule (geo.address_bulk),
    -- NULL where it found none
    lon double precision, lat double precision, address_rule text,
    review_s bigint, reply_s bigint, due_prov boolean
) ON COMMIT DROP
"""

# Deduplication. Repeats within the file never reach the database: the reader keeps the
# first line of each ticket (:class:`Repeats`), so nothing groups a million staged tickets
# to find the few repeated ones. In the database the staging table then loses the rows
# whose ticket is already a case, with their routing, and becomes cg_new (renamed: its
# primary key on line stays). The rows were routed as they were staged: cg_routed (and the
# report's counts) hold only the rows to import.
DROP_PRESENT_SQL = """
WITH gone AS (
    DELETE FROM cg_stage s
    WHERE EXISTS (SELECT 1 FROM "case" c
                  WHERE c.channel = s.channel AND c.external_id = s.external_id)
    RETURNING s.line
), unrouted AS (
    DELETE FROM cg_routed r WHERE r.id IN (SELECT line FROM gone)
)
SELECT count(*) FROM gone
"""
# Of the tickets repeated in the file, the later lines of those already stored: the report
# counts them as already present, not as duplicates in the file (as it always has).
PRESENT_REPEATS_SQL = """
SELECT COALESCE(sum(u.n), 0)
FROM unnest(CAST(:channels AS text[]), CAST(:ids AS text[]), CAST(:n AS int[])) AS u(ch, id, n)
WHERE EXISTS (SELECT 1 FROM "case" c WHERE c.channel = u.ch AND c.external_id = u.id)
"""


# The staged columns the statements after staging join, filter or group on; statistics of
# the descriptions, addresses and the rest cost most of a whole-table ANALYZE and no plan
# reads them.
ANALYZE_STAGE = "ANALYZE cg_stage (line, channel, external_id, category_code)"


class Repeats:
    """Tickets ``(channel, external_id)`` seen so far in the file; drops later lines of a
    ticket (the first line wins) and counts them per ticket."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self.dropped: Counter[str] = Counter()

    def drop(self, good: pd.DataFrame) -> pd.DataFrame:
        """``good`` (validated rows, in file order) without the lines whose ticket came
        earlier, in this chunk or an earlier one."""
        if good.empty:
            return good
        # A channel is a fixed word without \x1f, so the key splits back unambiguously.
        keys = (good["channel"].astype(object) + "\x1f" + good["external_id"].astype(object))
        listed = keys.tolist()
        repeat = keys.duplicated().to_numpy() | np.fromiter(
            map(self._seen.__contains__, listed), dtype=bool, count=len(listed))
        self._seen.update(listed)
        if not repeat.any():
            return good
        self.dropped.update(keys[repeat].tolist())
        return good[~repeat]

    def stored_already(self, conn: Connection) -> int:
        """How many dropped lines repeat a ticket that is already a case."""
        if not self.dropped:
            return 0
        pairs = [k.split("\x1f", 1) for k in self.dropped]
        return conn.execute(text(PRESENT_REPEATS_SQL), {
            "channels": [p[0] for p in pairs], "ids": [p[1] for p in pairs],
            "n": list(self.dropped.values())}).scalar_one()


# The columns both insert paths write (this module's INSERT_SQL, and first_load's
# INSERT_LOCKED_SQL after its id and case_no), and the staged rows joined with their routing,
# community and post that both read, in file order: written once, so the paths cannot drift.
CASE_COLUMNS = """channel, external_id, category_code, description, address,
        reported_at, received_at, reporter_name, reporter_phone, photo_urls,
        input_lon, input_lat, input_crs, geom, community_code, subdistrict_code, post_id,
        generation_id, route_rule, route_distance_m, near_boundary, route_alternates, status,
        review_due_at, reply_due_at, current_due_at, due_provisional"""
ROUTED_NEW_ROWS = """FROM cg_new n
    CROSS JOIN LATERAL (SELECT timestamptz 'epoch' + n.reported_us * interval '1 microsecond'
                        AS reported_at) t
    JOIN cg_routed r ON r.id = n.line
    LEFT JOIN community c ON c.id = r.community_id
    LEFT JOIN community_post p ON p.community_code = c.code
    ORDER BY n.line"""

INSERT_SQL = f"""
WITH ins AS (
    INSERT INTO "case" ({CASE_COLUMNS})
    SELECT n.channel, n.external_id, n.category_code, COALESCE(n.description, ''), n.address,
           t.reported_at, CASE WHEN :backdate THEN t.reported_at ELSE now() END,
           n.reporter_name, n.reporter_phone,
           COALESCE(regexp_split_to_array(NULLIF(btrim(n.photo_urls), ''), '[\\s;,]+'), '{{}}'),
           n.input_lon, n.input_lat, n.input_crs, ST_SetSRID(ST_MakePoint(n.lon, n.lat), 4326),
           c.code, c.subdistrict_code, p.id, :gen, r.rule, r.distance_m, r.near_boundary,
           r.alternates, 'registered',
           to_timestamp(n.review_s), to_timestamp(n.reply_s), to_timestamp(n.review_s),
           COALESCE(n.due_prov, false)
    {ROUTED_NEW_ROWS}
    ON CONFLICT (channel, external_id) WHERE external_id IS NOT NULL DO NOTHING
    RETURNING id, channel, external_id, reported_at, route_rule, community_code,
              subdistrict_code, post_id
)
INSERT INTO case_event (case_id, at, actor, role, action, from_state, to_state, note, data)
SELECT ins.id, CASE WHEN :backdate THEN ins.reported_at ELSE now() END, :actor, 'intake',
       'register', NULL, 'registered', :note,
       jsonb_build_object('rule', ins.route_rule, 'community_code', ins.community_code,
                          'subdistrict_code', ins.subdistrict_code, 'post_id', ins.post_id,
                          'generation_id', CAST(:gen AS int), 'source', CAST(:source AS text),
                          'mapping', CAST(:mapping AS text),
                          'line', n.line)
FROM ins JOIN cg_new n ON n.channel = ins.channel AND n.external_id = ins.external_id
RETURNING case_id
"""


# The staging table's columns in COPY order: the validated row, its due times and the
# address rule of a located address-only row.
COPY_COLUMNS = (*STAGE_COLUMNS, "review_s", "reply_s", "due_prov", "address_rule")


def copy_chunk(conn: Connection, placed: bytes, located: bytes = b"") -> None:
    """COPY one chunk into the staging table: the CSV of its rows with a point
    (:func:`cases.bulk_import.read.chunk_csv`) and the CSV of its address-only rows with
    their points and rules (``geo.address_bulk.AddressLocator.locate``), if any. Both are
    written before COPY starts, so that the statement's time is the server's."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(
        f"COPY cg_stage ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT csv)"
    ) as copy:
        copy.write(placed)
        copy.write(located)


# The texts as written of the cases this import inserted (created in this transaction).
ORIGINALS_SQL = """
INSERT INTO personal_text (case_id, field, original)
SELECT c.id, o.field, o.original
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS o(channel text, external_id text, field text,
                                                  original text)
JOIN "case" c ON c.channel = o.channel AND c.external_id = o.external_id
WHERE c.created_at = now()
"""
