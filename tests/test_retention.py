"""The retention purge: a dry run changes nothing; a committed purge leaves the indicators
unchanged to the last digit and no reporter data of a purged case in any table."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import text

from casegrid.demo import history as sim
from casegrid.demo.complaints import load_sample_complaints
from casegrid.errors import InvalidInput
from cases.calendar import CITY_TZ
from cases.retention import PURGE_ACTION, parse_age, personal_data_report, purge
from cases.stats import compute_stats

UNTIL = datetime(2026, 11, 1, 12, 0, tzinfo=CITY_TZ)
ATTACHMENT_DDL = """
CREATE TABLE IF NOT EXISTS attachment (
    id bigserial PRIMARY KEY, case_id bigint NOT NULL REFERENCES "case"(id),
    event_id bigint REFERENCES case_event(id), stage text NOT NULL, kind text NOT NULL,
    media_type text NOT NULL, sha256 text NOT NULL, thumb_sha256 text,
    original_sha256 text NOT NULL, original_name text, size_bytes integer NOT NULL,
    width integer, height integer, pages integer, caption text, taken_at timestamptz,
    taken_geom geometry(Point, 4326), uploaded_by text NOT NULL, uploaded_role text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())
"""
AS_OF = datetime(2026, 12, 1, tzinfo=CITY_TZ)
GROUPS = ("community", "subdistrict", "category", "channel", "month")


@pytest.fixture
def ledger(city_engine):
    """300 sample complaints simulated through the loop, each with a reporter, and some
    with a phone number in the description (kept as written in personal_text)."""
    load_sample_complaints(city_engine, n=300)
    with city_engine.begin() as conn:
        sim.simulate_ledger(conn, until=UNTIL)
        conn.execute(text(
            "UPDATE \"case\" SET reporter_name = '报告人#' || id || '#', "
            "reporter_phone = '1391' || lpad(id::text, 7, '0')"))
        # The citizen's own photo links (reporter data: a link can name its sender).
        conn.execute(text(
            "UPDATE \"case\" SET photo_urls = ARRAY['https://img.example.cn/报告人#' || id || '#/1.jpg'] "
            "WHERE id % 4 = 0"))
        conn.execute(text(
            "INSERT INTO personal_text (case_id, field, original) "
            "SELECT id, 'description', description || ' 回电1382' || lpad(id::text, 7, '0') "
            'FROM "case" WHERE id % 3 = 0'))
        # Attachments (issue 22's table; made here with its columns when it is not there
        # yet): the EXIF time and position and the file name are staff-only facts.
        conn.execute(text(ATTACHMENT_DDL))
        conn.execute(text(
            "INSERT INTO attachment (case_id, stage, kind, media_type, sha256, original_sha256, "
            "original_name, size_bytes, taken_at, taken_geom, uploaded_by, uploaded_role) "
            "SELECT id, 'intake', 'image', 'image/jpeg', repeat('a', 64), repeat('b', 64), "
            "'IMG_报告人#' || id || '#.jpg', 1, now(), geom, 'intake', 'intake' "
            'FROM "case" WHERE id % 2 = 0'))
        closed = conn.execute(text(
            'SELECT closed_at FROM "case" WHERE closed_at IS NOT NULL ORDER BY closed_at')).scalars().all()
        now = conn.execute(text("SELECT now()")).scalar_one()
    assert len(closed) > 50
    # Half the closed cases are past this period.
    return city_engine, now - closed[len(closed) // 2]


def _fingerprint(conn) -> dict[str, str]:
    return {t: conn.execute(text(f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) "
                                 f"FROM {t} x")).scalar_one()
            for t in ('"case"', "case_event", "personal_text")}


def _stats(conn) -> dict:
    """Every grouping of the indicators over the ledger's period, as of one fixed time."""
    return {g: compute_stats(conn, g, date(2025, 1, 1), date(2026, 12, 31), as_of=AS_OF)
            for g in GROUPS}


def _reporter_data(conn, ids: list[int]) -> list[str]:
    """The reporter names, phones and photo links of cases ``ids``, as stored now."""
    rows = conn.execute(text(
        'SELECT reporter_name, reporter_phone, photo_urls FROM "case" WHERE id = ANY(:i)'),
        {"i": ids}).all()
    return [v for name, phone, links in rows for v in (name, phone, *links) if v]


def _scan_every_text_column(conn, needles: list[str]) -> list[str]:
    """Columns of any table in the schema (text, varchar, json, arrays) holding a needle."""
    pattern = "|".join(re.escape(n) for n in needles)
    columns = conn.execute(text(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND (data_type IN "
        "('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY'))")).all()
    assert len(columns) > 20  # the scan looks at the whole ledger, not a few columns
    found = []
    for table, column in columns:
        hit = conn.execute(text(
            f'SELECT 1 FROM "{table}" WHERE CAST("{column}" AS text) ~ :p LIMIT 1'),
            {"p": pattern}).first()
        if hit:
            found.append(f"{table}.{column}")
    return found


def test_dry_run_changes_nothing_and_counts(ledger):
    engine, age = ledger
    with engine.connect() as conn:
        before = _fingerprint(conn)
    report = purge(engine, age)
    assert not report.committed and report.cases > 0
    assert report.fields["reporter_name"] == report.fields["reporter_phone"] == report.cases
    assert 0 < report.fields["original description"] < report.cases
    assert 0 < report.fields["attachment facts"] < report.cases
    assert 0 < report.fields["photo_urls"] < report.cases
    with engine.connect() as conn:
        assert _fingerprint(conn) == before


def test_purge_keeps_the_statistics_and_leaves_no_reporter_data(ledger):
    engine, age = ledger
    with engine.connect() as conn:
        stats_before = _stats(conn)
        counts_before = conn.execute(text(
            'SELECT (SELECT count(*) FROM "case"), (SELECT count(*) FROM case_event)')).one()
        due = conn.execute(text(
            'SELECT id FROM "case" WHERE closed_at < now() - CAST(:a AS interval) ORDER BY id'),
            {"a": age}).scalars().all()
        kept = conn.execute(text(
            'SELECT id FROM "case" WHERE NOT (closed_at < now() - CAST(:a AS interval)) '
            "OR closed_at IS NULL"), {"a": age}).scalars().all()
        needles = _reporter_data(conn, due) + [f"IMG_报告人#{i}#" for i in due] + conn.execute(text(
            "SELECT '1382' || lpad(case_id::text, 7, '0') FROM personal_text "
            "WHERE case_id = ANY(:i)"), {"i": due}).scalars().all()
        report_before = {r["field"]: r for r in personal_data_report(conn)}
        kept_before = _reporter_data(conn, kept)
    assert report_before["case.reporter_name"]["past_retention"] == 0  # 3 years: none yet
    with_links = report_before["case.photo_urls"]["cases"]
    assert 0 < with_links < report_before["case.reporter_name"]["cases"]
    dry = purge(engine, age)

    from casegrid.settings import Settings
    done = purge(engine, age, commit=True, settings=Settings(privacy_purge_batch=17))
    assert done.committed and done.cases == dry.cases == len(due)
    assert done.batches == -(-len(due) // 17)  # short transactions of 17 cases each

    with engine.connect() as conn:
        # The indicators of the whole period, to the last digit.
        assert _stats(conn) == stats_before
        assert _scan_every_text_column(conn, needles) == []
        # One history entry per purged case; cases, locations and the rest stay.
        events = dict(conn.execute(text(
            "SELECT case_id, count(*) FROM case_event WHERE action = :a GROUP BY case_id"),
            {"a": PURGE_ACTION}).all())
        assert sorted(events) == due and set(events.values()) == {1}
        after = conn.execute(text(
            'SELECT (SELECT count(*) FROM "case"), (SELECT count(*) FROM case_event)')).one()
        assert after[0] == counts_before[0] and after[1] == counts_before[1] + len(due)
        assert conn.execute(text(
            'SELECT count(*) FROM "case" WHERE id = ANY(:i) AND (geom IS NULL OR purged_at IS NULL)'),
            {"i": due}).scalar_one() == 0
        facts = conn.execute(text(
            "SELECT bool_or(a.case_id = ANY(:i)), count(*) FROM attachment a "
            "WHERE taken_at IS NOT NULL OR taken_geom IS NOT NULL OR original_name IS NOT NULL"),
            {"i": due}).one()
        assert facts[0] is False and facts[1] > 0  # purged cases' facts gone, others kept
        # Cases closed more recently, and open ones, keep their reporter and links.
        assert _reporter_data(conn, kept) == kept_before
        assert len(kept_before) > 2 * len(kept)  # names, phones and some links
        kept_links = conn.execute(text(
            'SELECT count(*) FROM "case" WHERE id = ANY(:i) AND cardinality(photo_urls) > 0'),
            {"i": kept}).scalar_one()
        report = {r["field"]: r for r in personal_data_report(conn)}
    assert report["case.reporter_name"]["cases"] == len(kept)
    assert report["case.photo_urls"]["cases"] == kept_links < with_links
    assert purge(engine, age, commit=True).cases == 0  # nothing left to purge


def test_parse_age():
    assert parse_age("3y") == timedelta(days=1095) and parse_age("90d") == timedelta(days=90)
    assert parse_age("18m") == timedelta(days=540) and parse_age(" 6w ") == timedelta(days=42)
    for bad in ("3", "y", "0d", "-1y", "3 years"):
        with pytest.raises(InvalidInput) as err:
            parse_age(bad)
        assert err.value.field == "older_than" and "3y" in err.value.message


def test_the_worker_purges_once_a_night_when_enabled(ledger):
    from casegrid.settings import Settings
    from cases.retention import nightly_purge

    engine, age = ledger
    off = Settings(privacy_purge_nightly=False)
    on = Settings(privacy_purge_nightly=True, privacy_retention_days=max(1, age.days))
    night = datetime(2026, 12, 7, 3, 0, tzinfo=CITY_TZ)
    assert nightly_purge(engine, off, night) is None
    first = nightly_purge(engine, on, night)
    assert first is not None and first.committed and first.cases > 0
    # Not again the same night, nor the next evening; again after the next 02:00.
    assert nightly_purge(engine, on, night + timedelta(hours=5)) is None
    assert nightly_purge(engine, on, night + timedelta(hours=22)) is None
    again = nightly_purge(engine, on, night + timedelta(hours=23, minutes=30))
    assert again is not None and again.cases == 0


def test_activity_texts_as_written_go_after_the_period(ledger):
    """An activity's title and note as written (masked for everyone else) are kept the same
    period after the activity ended, then purged with a history entry; newer ones stay."""
    engine, age = ledger
    with engine.begin() as conn:
        ids = {}
        for name, ended in (("old", "now() - CAST(:age AS interval) - interval '10 days'"),
                            ("new", "now() - interval '1 day'")):
            ids[name] = conn.execute(text(
                "INSERT INTO activity (started_at, ended_at, kind, title, created_by) "
                f"VALUES ({ended} - interval '2 hours', {ended}, 'community', "
                "'联系人138****0001 宣传', 'test') RETURNING id"), {"age": age}).scalar_one()
            conn.execute(text(
                "INSERT INTO personal_text (activity_id, field, original) VALUES "
                "(:a, 'title', :t), (:a, 'note', :n)"),
                {"a": ids[name], "t": f"联系人1380099{ids[name]:04d} 宣传",
                 "n": f"王先生 1380098{ids[name]:04d}"})
        report = {r["field"]: r for r in personal_data_report(conn)}
    assert report["personal_text.activity_title"]["cases"] == 2
    assert purge(engine, age).fields["original activity texts"] == 2  # dry run: counted
    done = purge(engine, age, commit=True)
    assert done.fields["original activity texts"] == 2
    with engine.connect() as conn:
        left = conn.execute(text(
            "SELECT activity_id, count(*) FROM personal_text WHERE activity_id IS NOT NULL "
            "GROUP BY activity_id")).all()
        assert left == [(ids["new"], 2)]
        assert _scan_every_text_column(conn, [f"1380099{ids['old']:04d}",
                                              f"1380098{ids['old']:04d}"]) == []
        events = conn.execute(text(
            "SELECT activity_id, data->'fields' FROM activity_event WHERE action = :a"),
            {"a": PURGE_ACTION}).all()
        assert events == [(ids["old"], ["note", "title"])]
        report = {r["field"]: r for r in personal_data_report(conn)}
    assert report["personal_text.activity_title"]["cases"] == 1
    assert report["personal_text.activity_title"]["past_retention"] == 0
