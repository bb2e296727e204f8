"""The work ledger (台账) export and the replies back to 12345, on the synthetic sample year
(imported through the hotline mapping, then worked by the simulation): one row per case
received in the period, columns that match the history, no reporter data for planners, a
second sheet past the row limit, and the round trip import → work → replies."""

from __future__ import annotations

import csv
import gc
import io
from datetime import date
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import text
from typer.testing import CliRunner

import casegrid.demo.history as sim
from api.app import create_app
from casegrid.demo.complaints import load_sample_complaints
from casegrid.errors import Forbidden, InvalidInput
from cases.calendar import CITY_TZ
from cases.hotline_replies import reply_rows
from cases.ledger import LedgerQuery, check_query, export, ledger_sql, write_xlsx
from cases.mappings import load_mapping
from cases.stats import period_bounds
from cases.tokens import create_token
from tests.helpers.cli import cli_database
from tests.helpers.ledger import (
    ADMIN,
    COMM_A,
    COMM_B,
    INTAKE,
    OFF_A,
    OFF_B,
    PLANNER,
    UNTIL,
    make_case,
    sh,
)

PERIOD = (date(2026, 3, 1), date(2026, 8, 31))


@pytest.fixture
def year(city_engine):
    """300 sample complaints (a hotline export through hotline12345_zh), worked by the
    simulation up to 1 Nov 2026."""
    load_sample_complaints(city_engine, n=300)
    with city_engine.begin() as conn:
        sim.simulate_ledger(conn, until=UNTIL)
    return city_engine


def _csv(data: bytes) -> list[dict]:
    assert data.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def _t(value) -> str:  # noqa: ANN001
    return value.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def test_ledger_rows_and_columns_match_the_history(year, tmp_path):
    with year.connect() as conn:
        lo, hi = period_bounds(*PERIOD)
        expected = conn.execute(text('SELECT count(*) FROM "case" WHERE received_at >= :lo '
                                     "AND received_at < :hi"), {"lo": lo, "hi": hi}).scalar_one()
        out = tmp_path / "ledger.csv"
        n = export(conn, LedgerQuery(*PERIOD, ADMIN), out)
        rows = _csv(out.read_bytes())
        assert n == len(rows) == expected > 50
        assert list(rows[0])[:4] == ["案件编号", "来源", "热线工单号", "类别"]
        for col in ("受理时间", "立案时间", "派遣时间", "签收时间", "处置时间", "核查时间", "回复时间",
                    "结案时间", "状态", "处置时限", "是否按期", "回访结果", "回复内容", "照片数",
                    "来电人", "联系电话"):
            assert col in rows[0], col
        # each row against the case's own history
        events: dict[str, list] = {}
        for e in conn.execute(text(
                'SELECT c.case_no, e.action, e.at, e.data FROM case_event e JOIN "case" c '
                "ON c.id = e.case_id WHERE c.received_at >= :lo AND c.received_at < :hi "
                "ORDER BY e.at, e.id"), {"lo": lo, "hi": hi}):
            events.setdefault(e.case_no, []).append(e)
    assert len(events) == expected and set(events) == {r["案件编号"] for r in rows}

    def last(evs, *actions):
        hits = [e for e in evs if e.action in actions]
        return hits[-1] if hits else None

    checked = 0
    for r in rows:
        evs = events[r["案件编号"]]
        assert r["受理时间"] == _t(evs[0].at) and evs[0].action == "register"
        accept = last(evs, "accept")
        assert r["立案时间"] == (_t(accept.at) if accept else "")
        dispatch = last(evs, "dispatch", "redispatch", "reopen")
        assert r["派遣时间"] == (_t(dispatch.at) if dispatch else "")
        reply = last(evs, "reply")
        assert r["回复时间"] == (_t(reply.at) if reply else "")
        assert r["回复内容"] == ((reply.data or {}).get("text") or "" if reply else "")
        close = last(evs, "close")
        assert r["结案时间"] == (_t(close.at) if close else "")
        handle, fail = last(evs, "handle"), last(evs, "verify_fail")
        done = handle if handle and not (fail and fail.at > handle.at) else None
        assert r["处置时间"] == (_t(done.at) if done else "")
        if done:
            assert r["是否按期"] in ("是", "否")
        checked += 1
    assert checked == expected
    assert {r["来源"] for r in rows} <= {"12345热线", "城管平台", "巡查上报", "手机APP", "窗口受理"}


def test_planner_export_has_no_reporter_data(year, tmp_path):
    with year.connect() as conn:
        lo, hi = period_bounds(*PERIOD)
        phones = [p for p in conn.execute(text(
            'SELECT reporter_phone FROM "case" WHERE received_at >= :lo AND received_at < :hi '
            "AND reporter_phone IS NOT NULL"), {"lo": lo, "hi": hi}).scalars()]
        names = [p for p in conn.execute(text(
            'SELECT reporter_name FROM "case" WHERE received_at >= :lo AND received_at < :hi '
            "AND reporter_name IS NOT NULL"), {"lo": lo, "hi": hi}).scalars()]
        assert phones and names
        out = tmp_path / "planner.csv"
        export(conn, LedgerQuery(*PERIOD, PLANNER), out)
        body = out.read_text(encoding="utf-8-sig")
        xout = tmp_path / "planner.xlsx"
        export(conn, LedgerQuery(*PERIOD, PLANNER), xout)
    assert "来电人" not in body and "联系电话" not in body
    assert not [p for p in phones if p in body]
    assert not [n for n in set(names) if f",{n}," in body]
    ws = load_workbook(xout, read_only=True)["台账"]
    header = next(ws.iter_rows(max_row=1, values_only=True))
    assert "联系电话" not in header and "来电人" not in header


def test_xlsx_continues_on_a_second_sheet(city_engine, tmp_path):
    with city_engine.begin() as conn:
        for i in range(7):
            make_case(conn, COMM_A, received_at=sh(2026, 9, 1 + i, 9))
        out = tmp_path / "l.xlsx"
        n = write_xlsx(conn, LedgerQuery(date(2026, 9, 1), date(2026, 9, 30), ADMIN), out,
                       sheet_rows=3)
    assert n == 7
    wb = load_workbook(out, read_only=True)
    assert wb.sheetnames == ["台账", "台账(2)", "台账(3)"]
    sizes = [len(list(wb[s].iter_rows(values_only=True))) for s in wb.sheetnames]
    assert sizes == [4, 4, 2]                       # each sheet with its header row
    numbers = [r[0] for s in wb.sheetnames for r in list(wb[s].iter_rows(values_only=True))[1:]]
    assert len(numbers) == len(set(numbers)) == 7
    # the same cells as the CSV export
    with city_engine.connect() as conn:
        csv_out = tmp_path / "l.csv"
        export(conn, LedgerQuery(date(2026, 9, 1), date(2026, 9, 30), ADMIN), csv_out)
    from_csv = [list(r.values()) for r in _csv(csv_out.read_bytes())]
    from_xlsx = [["" if v is None else str(v) for v in r] for s in wb.sheetnames
                 for r in list(wb[s].iter_rows(values_only=True))[1:]]
    assert from_xlsx == from_csv


def test_rows_are_read_in_blocks(city_engine, monkeypatch):
    """The rows come through the server-side cursor block by block, never as one list (the
    whole result held at once made a 100,000-case export take 640 MB)."""
    import cases.ledger as ledger

    monkeypatch.setattr(ledger, "BLOCK_ROWS", 4)
    with city_engine.begin() as conn:
        for i in range(10):
            make_case(conn, COMM_A, received_at=sh(2026, 9, 1 + i, 9))
        q = LedgerQuery(date(2026, 9, 1), date(2026, 9, 30), ADMIN)
        sizes = [len(b) for b in ledger.iter_blocks(conn, q)]
        assert sizes == [4, 4, 2]
        # the connection is usable afterwards (the cursor was the statement's own)
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_xlsx_stream_cells(tmp_path):
    from casegrid.xlsx_stream import XlsxStream

    out = tmp_path / "s.xlsx"
    with XlsxStream(out) as book:
        book.sheet("表(1)", ["文本", "数", "空"]).rows(
            [("a\x01b<&>\"'", 5, None), ("  padded  ", 2.5, ""), ("多行\n文本", -1, None)])
        book.sheet("second", ["x"]).rows([("y",)])
    wb = load_workbook(out)
    assert wb.sheetnames == ["表(1)", "second"]
    ws = wb["表(1)"]
    assert [[c.value for c in r] for r in ws.iter_rows()] == [
        ["文本", "数", "空"], ["ab<&>\"'", 5, None], ["  padded  ", 2.5, None],
        ["多行\n文本", -1, None]]
    assert ws["A1"].font.b and not ws["A2"].font.b and ws.freeze_panes == "A2"
    assert wb["second"]["A2"].value == "y"


def test_export_api_cli_and_refusals(city_engine, city_db_url, tmp_path, monkeypatch):
    with city_engine.begin() as conn:
        own = make_case(conn, COMM_A, received_at=sh(2026, 9, 2, 9))
        other = make_case(conn, "370481002001", received_at=sh(2026, 9, 3, 9))
        nos = dict(conn.execute(text('SELECT id, case_no FROM "case"')).all())
        tokens = {r: create_token(conn, r, f"t-{r}")[1] for r in ("admin", "planner", "intake")}
        tokens["officer"] = create_token(conn, "community_officer", "oa", [COMM_A])[1]
        with pytest.raises(InvalidInput, match="unknown category"):
            check_query(conn, LedgerQuery(date(2026, 9, 1), date(2026, 9, 30), ADMIN,
                                          categories=["9999"]))
        with pytest.raises(Forbidden):
            check_query(conn, LedgerQuery(date(2026, 9, 1), date(2026, 9, 30),
                                          INTAKE))
    h = {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}
    q = "from=2026-09-01&to=2026-09-30"
    with TestClient(create_app(database_url=city_db_url)) as client:
        r = client.get(f"/api/v1/export/ledger.csv?{q}", headers=h["admin"])
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        assert r.headers["x-casegrid-read-source"] == "primary; lag=0.0s"  # no replica here
        assert {row["案件编号"] for row in _csv(r.content)} == {nos[own], nos[other]}
        assert _csv(r.content)[0]["联系电话"] == "13800000000"
        r = client.get(f"/api/v1/export/ledger.csv?{q}&community={COMM_A}", headers=h["admin"])
        assert [row["案件编号"] for row in _csv(r.content)] == [nos[own]]
        # an officer gets its own communities, and may not ask for another's
        r = client.get(f"/api/v1/export/ledger.csv?{q}", headers=h["officer"])
        assert [row["案件编号"] for row in _csv(r.content)] == [nos[own]]
        r = client.get(f"/api/v1/export/ledger.csv?{q}&community=370481002001",
                       headers=h["officer"])
        assert r.status_code == 403
        r = client.get(f"/api/v1/export/ledger.csv?{q}", headers=h["planner"])
        assert "联系电话" not in r.text
        assert client.get(f"/api/v1/export/ledger.csv?{q}",
                          headers=h["intake"]).status_code == 403
        r = client.get("/api/v1/export/ledger.csv?from=2026-09-30&to=2026-09-01",
                       headers=h["admin"])
        assert r.status_code == 422 and r.json()["field"] == "to"
        r = client.get(f"/api/v1/export/ledger.csv?{q}&category=9999", headers=h["admin"])
        assert r.status_code == 422 and "9999" in r.json()["detail"]
        r = client.get(f"/api/v1/export/ledger.xlsx?{q}", headers=h["admin"])
        assert r.status_code == 200
        path = tmp_path / "api.xlsx"
        path.write_bytes(r.content)
        rows = list(load_workbook(path, read_only=True)["台账"].iter_rows(values_only=True))
        assert len(rows) == 3 and rows[0][0] == "案件编号"
    from casegrid.cli import app as cli

    with cli_database(monkeypatch, city_db_url):
        runner = CliRunner()
        out = tmp_path / "cli" / "ledger.xlsx"
        r = runner.invoke(cli, ["export", "ledger", "--from", "2026-09-01", "--to", "2026-09-30",
                                "--community", COMM_A, "--out", str(out)])
        assert r.exit_code == 0, r.output
        assert "wrote 1 rows" in r.output
        rows = list(load_workbook(out, read_only=True)["台账"].iter_rows(values_only=True))
        assert [row[0] for row in rows[1:]] == [nos[own]]
        r = runner.invoke(cli, ["export", "ledger", "--from", "2026-09-01", "--to", "2026-09-30",
                                "--out", str(tmp_path / "x.pdf")])
        assert r.exit_code == 2 and ".csv or .xlsx" in r.output
        r = runner.invoke(cli, ["export", "ledger", "--from", "2026-9-1", "--to", "2026-09-30",
                                "--out", str(out)])
        assert r.exit_code == 2 and "YYYY-MM-DD" in r.output


def test_export_filters_combine(city_engine):
    """Days of receipt (from's midnight in, the midnight after to out), communities and
    categories together, and a community officer's own communities."""
    with city_engine.begin() as conn:
        cases = {"first": (COMM_A, "0102", sh(2026, 9, 1)),
                 "last": (COMM_A, "0504", sh(2026, 9, 30, 23, 59).replace(second=59,
                                                                           microsecond=999999)),
                 "after": (COMM_A, "0102", sh(2026, 10, 1)),
                 "before": (COMM_A, "0102", sh(2026, 8, 31, 23, 59)),
                 "other": (COMM_B, "0102", sh(2026, 9, 15, 10))}
        ids = {k: make_case(conn, comm, category=cat, received_at=at)
               for k, (comm, cat, at) in cases.items()}
        nos = dict(conn.execute(text('SELECT id, case_no FROM "case"')).all())

        def rows(principal, **kw) -> list[str]:
            q = check_query(conn, LedgerQuery(date(2026, 9, 1), date(2026, 9, 30), principal, **kw))
            sql, params = ledger_sql(q)
            return [r[0] for r in conn.execute(text(sql), params)]

        def no(*keys: str) -> list[str]:
            return [nos[ids[k]] for k in keys]

        assert rows(ADMIN) == no("first", "other", "last")
        assert rows(ADMIN, categories=["0102"]) == no("first", "other")
        assert rows(ADMIN, communities=[COMM_A], categories=["0102"]) == no("first")
        assert rows(ADMIN, communities=[COMM_A, COMM_B], categories=["0504"]) == no("last")
        assert rows(ADMIN, communities=[COMM_B], categories=["0504"]) == []
        assert rows(OFF_A) == no("first", "last")
        assert rows(OFF_A, categories=["0102"]) == no("first")
        assert rows(OFF_B) == no("other")


def test_the_csv_takes_its_connection_before_its_headers_and_gives_it_back(city_db_url):
    """The CSV's connection is taken before its headers leave (so they say where it reads
    from, as every reader of the replica does), and a response dropped unread, as when the
    client is gone before the body starts, gives it back to the pool."""
    from api.routes.export import ledger_csv

    app = create_app(database_url=city_db_url)
    with TestClient(app):
        pool = app.state.engine.pool
        idle = pool.checkedout()
        # The route's function itself (only its request's app is read), so that nothing
        # reads the body.
        response = ledger_csv(SimpleNamespace(app=app), ADMIN, app.state.engine,
                              date(2026, 9, 1), date(2026, 9, 30), [], [])
        assert response.headers["x-casegrid-read-source"] == "primary; lag=0.0s"
        assert pool.checkedout() == idle + 1  # held for the body
        del response
        gc.collect()
        assert pool.checkedout() == idle


def test_hotline_round_trip(year, tmp_path, monkeypatch):
    """Import a hotline export (the sample year), work the cases (the simulation), export
    the replies: every imported ticket with a reply appears once, with its reply."""
    mapping = load_mapping("hotline12345_zh")
    with year.begin() as conn:
        # a case that did not come from the import, with a ticket-like number: never sent
        stray = make_case(conn, COMM_A, received_at=sh(2026, 9, 1, 9))
        conn.execute(text("UPDATE \"case\" SET external_id = 'NOT-IMPORTED' WHERE id = :i"),
                     {"i": stray})
        replied = {r.external_id: r for r in conn.execute(text(
            """SELECT c.external_id, c.replied_at, c.merged_into, c.dispatched_at,
                      (SELECT e.data->>'text' FROM case_event e WHERE e.case_id = c.id
                       AND e.action = 'reply' ORDER BY e.at DESC, e.id DESC LIMIT 1) AS text
               FROM "case" c WHERE c.replied_at IS NOT NULL AND c.external_id IS NOT NULL
                 AND EXISTS (SELECT 1 FROM case_event r WHERE r.case_id = c.id
                             AND r.action = 'register' AND r.data->>'mapping' = :m)"""),
            {"m": mapping.name})}
        unreplied = conn.execute(text(
            'SELECT count(*) FROM "case" WHERE replied_at IS NULL')).scalar_one()
        header, rows = reply_rows(conn, mapping, date(2025, 11, 1), date(2026, 11, 30))
    assert len(replied) > 100 and unreplied > 0
    assert header == ["工单编号", "办理结果", "回复内容", "办结时间", "回访结果", "承办单位"]
    tickets = [r[0] for r in rows]
    assert len(tickets) == len(set(tickets))                       # once each
    assert set(tickets) == set(replied)                             # every replied ticket
    assert "NOT-IMPORTED" not in tickets
    for ticket, result, reply, at, _follow, _unit in rows:
        case = replied[ticket]
        assert reply == case.text and reply
        assert at == case.replied_at.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M:%S")
        assert result == ("合并办理" if case.merged_into else
                          "不予受理" if case.dispatched_at is None else "已办结")
    # the same through the CLI, to a file the hotline reads
    from casegrid.cli import app as cli

    with cli_database(monkeypatch, year.url.render_as_string(hide_password=False)):
        out = tmp_path / "replies.csv"
        r = CliRunner().invoke(cli, ["export", "hotline-replies", "--from", "2025-11-01",
                                     "--to", "2026-11-30", "--mapping", "hotline12345_zh",
                                     "--out", str(out)])
        assert r.exit_code == 0, r.output
        got = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
        assert len(got) == len(replied) and {g["工单编号"] for g in got} == set(replied)
        r = CliRunner().invoke(cli, ["export", "hotline-replies", "--from", "2025-11-01",
                                     "--to", "2026-11-30", "--mapping", "nyc311",
                                     "--out", str(out)])
        assert r.exit_code == 2 and "replies.columns table" in r.output
