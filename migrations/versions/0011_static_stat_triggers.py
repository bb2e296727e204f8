"""statistics triggers: static SQL, planned once per session instead of at every statement.

The three statement-level triggers that keep ``case_stat`` (0003) ran
``EXECUTE case_stat_merge_sql(...)``: dynamic SQL, which PL/pgSQL parses and plans at every
execution. The statement is large (a 50-column aggregate and upsert), so planning it cost
more than running it for the few rows an intake batch or a workflow step changes
(``pg_stat_statements`` with ``track_planning``: one plan per call before, one per session
after).

The functions now hold the same statements as static SQL, which PL/pgSQL prepares once per
session and keeps. ``case_stat_merge_sql`` stays the single definition of the statement:
the function bodies are generated from it here. A later change to it must regenerate them
the same way (this migration's ``_regenerate``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_COLS = ("received_at, community_code, subdistrict_code, category_code, channel, reviewed_at, "
         "dispatched_at, closed_at, handled_at, handle_due_at, replied_at, reply_due_at, "
         "rework_count, extension_count, handle_hours")


def _prefixed(prefix: str) -> str:
    return ", ".join(f"{prefix}.{c.strip()}" for c in _COLS.split(","))


# The source rows of each trigger, as 0003 wrote them: inserted rows count +1, deleted rows
# -1, and an update takes back the old version and adds the new one, for the rows whose
# contribution can have changed.
_SIG = ("{p}.received_at, {p}.community_code, {p}.subdistrict_code, {p}.category_code, "
        "{p}.channel, {p}.reviewed_at IS NULL, {p}.dispatched_at IS NULL, {p}.closed_at IS NULL, "
        "{p}.handled_at, {p}.handle_due_at, {p}.replied_at, {p}.reply_due_at, "
        "{p}.rework_count > 0, {p}.extension_count > 0, {p}.handle_hours")
SOURCES = {
    "case_stat_ins": f"SELECT 1, {_COLS} FROM case_stat_new",
    "case_stat_del": f"SELECT -1, {_COLS} FROM case_stat_old",
    "case_stat_upd": (
        "SELECT v.* FROM case_stat_old o JOIN case_stat_new n ON n.id = o.id "
        f"CROSS JOIN LATERAL (VALUES (-1, {_prefixed('o')}), (1, {_prefixed('n')})) AS v "
        f"WHERE ({_SIG.format(p='o')}) IS DISTINCT FROM ({_SIG.format(p='n')})"
    ),
}


def _regenerate(static: bool) -> str:
    """One DO block that (re)defines the three trigger functions from case_stat_merge_sql:
    with the statement inlined (static) or run through EXECUTE (as 0003 had them)."""
    parts = []
    for name, source in SOURCES.items():
        src = source.replace("'", "''")
        if static:
            body = f"'BEGIN ' || case_stat_merge_sql('{src}') || '; RETURN NULL; END'"
        else:
            body = (f"'BEGIN EXECUTE case_stat_merge_sql(' || quote_literal('{src}') "
                    f"|| '); RETURN NULL; END'")
        parts.append(
            f"EXECUTE format('CREATE OR REPLACE FUNCTION {name}() RETURNS trigger "
            f"LANGUAGE plpgsql AS %L', {body});")
    return "DO $do$\nBEGIN\n" + "\n".join(parts) + "\nEND $do$;"


def upgrade() -> None:
    op.execute(_regenerate(static=True))


def downgrade() -> None:
    op.execute(_regenerate(static=False))
