"""The migrated schema is what the code describes, and its invariants hold."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from casegrid.tables import metadata


def test_every_geometry_column_declares_srid_4326(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT f_table_name, f_geometry_column, srid FROM geometry_columns")
        ).all()
    assert rows, "no geometry columns found"
    assert {r.srid for r in rows} == {4326}, rows


def test_tables_module_matches_migrations(engine):
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diffs = compare_metadata(ctx, metadata)
    # Tables and columns must agree; indexes and constraints are declared in the migrations
    # only (explicit spatial indexes), so they are not compared.
    kinds = ("add_table", "remove_table", "add_column", "remove_column")
    relevant = [d for d in diffs if isinstance(d, tuple) and d[0] in kinds]
    relevant = [d for d in relevant if not (d[0] == "remove_table" and d[1].name == "spatial_ref_sys")]
    assert relevant == [], relevant


def test_case_history_is_append_only(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO category (code, name_zh, name_en) VALUES ('9999', 'x', 'x')"))
        case_id = conn.execute(
            text(
                "INSERT INTO \"case\" (case_no, channel, category_code, reported_at) "
                "VALUES ('T-1', 'patrol', '9999', now()) RETURNING id"
            )
        ).scalar_one()
        conn.execute(
            text("INSERT INTO case_event (case_id, actor, role, action) VALUES (:c, 'a', 'admin', 'x')"),
            {"c": case_id},
        )
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("UPDATE case_event SET note = 'rewritten'"))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text("DELETE FROM case_event"))


def test_case_numbers_grow_past_seven_digits_instead_of_repeating(engine):
    """lpad truncates: the 0001 default made CG2026 + '1000000' again for the 10,000,000th
    case and every insert from then on failed. Numbers now widen."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO category (code, name_zh, name_en) VALUES ('9998', 'x', 'x')"))
        conn.execute(text("SELECT setval('case_no_seq', 9999998)"))
        numbers = conn.execute(text(
            "INSERT INTO \"case\" (channel, category_code, reported_at) "
            "SELECT 'patrol', '9998', now() FROM generate_series(1, 3) RETURNING case_no"
        )).scalars().all()
        year = conn.execute(text("SELECT to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYY')")).scalar_one()
    assert sorted(numbers) == [f"CG{year}10000000", f"CG{year}10000001", f"CG{year}9999999"]
    with engine.begin() as conn:
        first = conn.execute(text("SELECT setval('case_no_seq', 41)")).scalar_one()
        no = conn.execute(text(
            "INSERT INTO \"case\" (channel, category_code, reported_at) VALUES ('patrol', '9998', now())"
            " RETURNING case_no")).scalar_one()
    assert first == 41 and no == f"CG{year}0000042"


def test_embedded_cluster_sorts_text_by_code_point_with_unicode_character_classes(engine):
    # casegrid's own cluster sorts with "C" (byte order; PostgreSQL's fast path for text
    # comparisons and index builds) and keeps C.UTF-8's character classes. Byte order of
    # UTF-8 is code point order, the order C.UTF-8 sorted by before: Python's sorted().
    words = ["滕州", "Zebra", "apple", "龙泉街道", "0599", "北辛", "Äpfel", "_x", "éclair", "荆河"]
    with engine.connect() as conn:
        assert conn.execute(text("SHOW lc_collate")).scalar_one() == "C"
        assert conn.execute(text("SHOW lc_ctype")).scalar_one() == "C.UTF-8"
        ordered = conn.execute(text("SELECT w FROM unnest(CAST(:w AS text[])) w ORDER BY w"),
                               {"w": words}).scalars().all()
        assert ordered == sorted(words)
        # upper() and regular expressions still know letters beyond ASCII.
        assert conn.execute(text("SELECT upper('éclair äpfel')")).scalar_one() == "ÉCLAIR ÄPFEL"
        assert conn.execute(text("SELECT 'Ölpreis' ~ '^[[:alpha:]]+$'")).scalar_one() is True
