"""Address words shorter than the trigram index's three characters (issue 21's search box):
a two-character word (善国) is searched by the known place names holding it, each long
enough for case_address_trgm; a word no known name holds, or one character, is answered
with a hint in the page's language. No statement reads the ledger case by case."""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from cases import search
from tests.helpers.workbench_helpers import COMM_A, case_body, login, point_in

ADDRESS = "善国苑3号楼东侧"


@pytest.fixture
def with_shanguo(wb, city_engine):
    """One more case, at an address holding the compound name 善国苑."""
    body = case_body(*point_in(city_engine, COMM_A), n=3)
    body["address"] = ADDRESS
    r = wb.post("/api/v1/cases", json=body, headers={"Authorization": f"Bearer {wb.token}"})
    assert r.status_code == 201, r.text
    wb.shanguo = r.json()["id"]
    return wb


def _statements(engine):  # noqa: ANN202
    seen: list[tuple[str, dict]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def test_a_two_character_word_finds_cases_by_the_place_names_holding_it(with_shanguo):
    client = with_shanguo
    login(client, "disp")
    engine = client.app.state.engine
    seen, stop = _statements(engine)
    try:
        r = client.get("/work/search", params={"q": "善国"}, follow_redirects=False)
    finally:
        stop()
    # The one case at 善国苑 opens directly.
    assert r.status_code == 303 and r.headers["location"] == f"/work/cases/{client.shanguo}"
    # The ledger was searched by names of three characters or more, never by 善国 itself.
    patterns = [v for s, p in seen if "ILIKE" in s for k, v in p.items() if k.startswith("name")]
    assert "%善国苑%" in patterns and all(len(p.strip("%")) >= 3 for p in patterns)
    assert not any(v == "%善国%" for _, p in seen for v in p.values())
    # ... and the trigram index can serve that statement (a table of three cases is read
    # in order by the planner's choice; without the scans in order, its index conditions).
    statement, params = next((s, p) for s, p in seen if "ILIKE" in s and "name0" in p)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = off"))
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.execute("EXPLAIN " + statement, params)
            plan = "\n".join(r[0] for r in cur.fetchall())
    assert "case_address_trgm" in plan and 'Seq Scan on "case"' not in plan, plan
    # The JSON says how it searched.
    with engine.begin() as conn:
        from cases.tokens import create_token

        tok = create_token(conn, "dispatcher", "d")[1]
    got = client.get("/api/v1/search", params={"q": "善国"},
                 headers={"Authorization": f"Bearer {tok}"}).json()
    assert [i["id"] for i in got["items"]] == [client.shanguo]
    assert "善国苑" in got["address_names"] and got["too_short"] is False


def test_the_names_come_from_the_index(city_engine):
    with city_engine.begin() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(conn.execute(text(
            "EXPLAIN SELECT DISTINCT name FROM gazetteer_entry WHERE casegrid_bigrams(name) @> "
            "ARRAY['善国'] AND kind NOT IN ('doorplate', 'crossing')")).scalars())
        assert "gazetteer_entry_name_bigrams" in plan, plan
        from geo.place_names import names_containing

        found = names_containing(conn, "善国")
    assert "善国苑" in found.names and "善国路" in found.names
    assert all("善国" in n and len(n) >= 3 for n in found.names)


def test_a_word_too_short_gets_a_hint_in_the_page_language(with_shanguo):
    client = with_shanguo
    login(client, "disp")
    engine = client.app.state.engine
    seen, stop = _statements(engine)
    try:
        page = client.get("/work/search", params={"q": "鲸鲨"}).text  # in no known name
        one = client.get("/work/search", params={"q": "辛"}).text
        en = client.get("/work/search", params={"q": "鲸鲨", "lang": "en"}).text
    finally:
        stop()
    assert "地址词请至少输入三个字" in page and "没有已知地名包含“鲸鲨”" in page
    assert "没有找到案件" not in page  # the hint, not a bare "nothing found"
    assert "地址词请至少输入三个字" in one and "没有已知地名" not in one
    assert "Type at least three characters" in en and "no known place holds “鲸鲨”" in en
    assert not any("ILIKE" in s for s, _ in seen)  # the ledger was not searched by them
    assert search.search_cases  # the rows-only helper stays for other callers
