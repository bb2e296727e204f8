"""Intake in batches (api/intake_batch.py, cases.intake.register_cases).

A batch mixes every kind of submission a busy hour brings (good ones, a bad token, a role
that may not submit, invalid bodies, bad coordinates, an unknown category, a ticket sent
twice in the batch, a ticket already stored, a community officer outside its communities);
each must get exactly the outcome it would get alone, and only the good ones are stored,
once. Then the real server under concurrent load: requests share transactions, and the
same ticket raced by many clients is one case.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DataError

import cases.intake_batch as intake_batch
from api.app import create_app
from casegrid.errors import CoordinateError, Forbidden, InvalidInput, Unauthorized
from casegrid.settings import Settings, get_settings
from cases.intake import NewCase, create_case
from cases.intake_batch import Accepted, register_batch
from cases.tokens import Principal, create_token
from tests.helpers.intake_api import interior_points
from tests.helpers.server import running_server


def _raw(lon: float, lat: float, ticket: str | None, **kw) -> bytes:
    data = {"lon": lon, "lat": lat, "category": "0599", "channel": "hotline_12345",
            "external_id": ticket, "description": "楼下广场舞噪音", **kw}
    return json.dumps(data, ensure_ascii=False).encode()


def _body(lon: float, lat: float, ticket: str | None, **kw) -> NewCase:
    return NewCase.model_validate_json(_raw(lon, lat, ticket, **kw))


def _stored(engine, ticket: str) -> int:
    with engine.connect() as conn:
        return conn.execute(text('SELECT count(*) FROM "case" WHERE external_id = :t'),
                            {"t": ticket}).scalar_one()


def test_a_mixed_batch_gives_each_submission_its_own_outcome(city_engine):
    points = interior_points(city_engine)
    (code_a, lon_a, lat_a), (_code_b, lon_b, lat_b) = points[0], points[1]
    with city_engine.begin() as conn:
        intake = create_token(conn, "intake", "batch-intake")[1]
        planner = create_token(conn, "planner", "batch-planner")[1]
        officer = create_token(conn, "community_officer", "batch-officer", [code_a])[1]
        revoked_id, revoked = create_token(conn, "intake", "batch-revoked")
        conn.execute(text("UPDATE api_token SET revoked_at = now() WHERE id = :i"), {"i": revoked_id})
        known = create_case(conn, _body(lon_b, lat_b, "T-known"),
                            Principal(0, "earlier", "intake"), get_settings()).case
    items = [
        (intake, _body(lon_a, lat_a, "T-1")),                       # 0 good
        ("not-a-token", _body(lon_a, lat_a, "T-2")),                 # 1 unknown token
        (revoked, _body(lon_a, lat_a, "T-3")),                       # 2 revoked token
        (planner, _body(lon_a, lat_a, "T-4")),                       # 3 role may not submit
        ("not-a-token", _body(lon_a, lat_a, "T-4b", category="9999")),  # 4 token before category
        (intake, _body(lon_a, lat_a, "T-5", category="9999")),      # 5 unknown category
        (intake, _body(35.08, 117.16, "T-6")),                       # 6 swapped lon/lat
        (intake, _body(lon_b, lat_b, "T-1")),                        # 7 same ticket as 0
        (intake, _body(lon_a, lat_a, "T-known")),                    # 8 ticket already stored
        (officer, _body(lon_b, lat_b, "T-7")),                       # 9 outside its communities
        (officer, _body(lon_a, lat_a, "T-8")),                       # 10 its own community
        (None, _body(lon_a, lat_a, "T-9")),                          # 11 no token at all
        (intake, _body(lon_a, lat_a, None, address="滕州市荆河街道")),  # 12 no ticket
    ]
    before = _count(city_engine)
    out = register_batch(city_engine, items, get_settings())

    assert isinstance(out[0], Accepted) and out[0].result.created
    assert out[0].result.case["community_code"] == code_a
    for i, text_part in ((1, "unknown token"), (2, "revoked"), (4, "unknown token"),
                         (11, "missing token")):
        assert isinstance(out[i], Unauthorized) and text_part in str(out[i]), (i, out[i])
    assert isinstance(out[3], Forbidden) and out[3].field == "Authorization"
    assert isinstance(out[5], InvalidInput) and out[5].field == "category"
    assert isinstance(out[6], CoordinateError) and out[6].field in ("lon", "lat")
    # The ticket sent twice in one batch is one case: the second gets the first's.
    assert isinstance(out[7], Accepted) and not out[7].result.created
    assert out[7].result.case["id"] == out[0].result.case["id"]
    assert isinstance(out[8], Accepted) and not out[8].result.created
    assert out[8].result.case["id"] == known["id"]
    assert isinstance(out[9], Forbidden) and out[9].field == "lon"
    assert isinstance(out[10], Accepted) and out[10].result.case["community_code"] == code_a
    assert isinstance(out[12], Accepted) and out[12].result.case["external_id"] is None
    # Exactly the three new cases (0, 10, 12) and their register events were written.
    assert _count(city_engine) == (before[0] + 3, before[1] + 3)
    for ticket, n in (("T-1", 1), ("T-2", 0), ("T-5", 0), ("T-6", 0), ("T-7", 0), ("T-8", 1)):
        assert _stored(city_engine, ticket) == n, ticket


def test_batch_results_equal_the_one_at_a_time_results(city_engine):
    """Routing, due times, duplicates and the stored row do not depend on the batch."""
    points = interior_points(city_engine)[:12]
    with city_engine.begin() as conn:
        token = create_token(conn, "dispatcher", "batch-eq")[1]
    alone = [register_batch(city_engine, [(token, _body(lon, lat, f"A-{i}", category="0504"))],
                            get_settings())[0] for i, (_c, lon, lat) in enumerate(points)]
    together = register_batch(city_engine, [(token, _body(lon, lat, f"B-{i}", category="0504"))
                                            for i, (_c, lon, lat) in enumerate(points)],
                              get_settings())
    keys = ("community_code", "subdistrict_code", "post_id", "route_rule", "near_boundary",
            "route_alternates", "lon", "lat", "category_code", "status", "due_provisional")
    for a, b in zip(alone, together, strict=True):
        assert isinstance(a, Accepted) and isinstance(b, Accepted)
        assert {k: a.result.case[k] for k in keys} == {k: b.result.case[k] for k in keys}
        # Each batched case finds its one-at-a-time twin 0 m away as a possible duplicate.
        twins = [d for d in b.result.possible_duplicates if d["id"] == a.result.case["id"]]
        assert twins and twins[0]["distance_m"] == 0.0
        delta = b.result.case["current_due_at"] - a.result.case["current_due_at"]
        assert abs(delta.total_seconds()) < 60


def test_a_batch_the_database_refuses_is_retried_one_by_one(city_engine, monkeypatch):
    """One submission the database cannot take must not cost the others theirs."""
    points = interior_points(city_engine)
    with city_engine.begin() as conn:
        token = create_token(conn, "intake", "batch-retry")[1]
    real = intake_batch.register_batch_committed

    def refuse_poison(conn, items, settings):  # noqa: ANN001
        if any("POISON" in (data.external_id or "") for _s, data in items):
            raise DataError("INSERT ...", {}, Exception("value refused"))
        return real(conn, items, settings)

    monkeypatch.setattr(intake_batch, "register_batch_committed", refuse_poison)
    batcher = intake_batch.IntakeBatcher(city_engine, get_settings())
    items = [(token, _body(points[i][1], points[i][2], f"R-{i}")) for i in range(3)]
    items.insert(1, (token, _body(points[5][1], points[5][2], "R-POISON")))
    with city_engine.connect() as conn:
        out = batcher._register(conn, items)
    assert [type(o).__name__ for o in out] == ["Accepted", "DataError", "Accepted", "Accepted"]
    assert [_stored(city_engine, t) for t in ("R-0", "R-POISON", "R-1", "R-2")] == [1, 0, 1, 1]


@pytest.fixture
def live_server(city_engine, city_db_url):
    """The app on a loopback port (uvicorn in a thread), so requests really overlap."""
    app = create_app(settings=Settings(database_url=city_db_url), database_url=city_db_url)
    with running_server(app) as base:
        yield app, base


def test_concurrent_requests_share_transactions_and_a_raced_ticket_is_one_case(live_server, city_engine):
    app, base = live_server
    points = interior_points(city_engine)
    with city_engine.begin() as conn:
        token = create_token(conn, "intake", "batch-live")[1]
    headers = {"Authorization": f"Bearer {token}"}

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60,
                                     limits=httpx.Limits(max_connections=48)) as client:
            distinct = [client.post("/api/v1/cases", content=_raw(lon, lat, f"L-{i}"),
                                    headers={"Content-Type": "application/json"})
                        for i, (_c, lon, lat) in enumerate(points * 2)]
            raced = [client.post("/api/v1/cases", content=_raw(points[3][1], points[3][2], "L-race"),
                                 headers={"Content-Type": "application/json"}) for _ in range(16)]
            bad = [client.post("/api/v1/cases", content=_raw(200.0, 35.0, f"L-bad-{i}"),
                               headers={"Content-Type": "application/json"}) for i in range(4)]
            return await asyncio.gather(*distinct, *raced, *bad)

    responses = asyncio.run(fire())
    n = len(points) * 2
    distinct, raced, bad = responses[:n], responses[n:n + 16], responses[n + 16:]
    assert all(r.status_code == 201 for r in distinct), {r.status_code for r in distinct}
    assert sorted(r.status_code for r in raced) == [200] * 15 + [201]
    assert len({r.json()["id"] for r in raced}) == 1
    assert all(r.status_code == 422 and r.json()["field"] == "lon" for r in bad)
    assert _stored(city_engine, "L-race") == 1
    with city_engine.connect() as conn:
        stored = conn.execute(text(
            "SELECT count(*) FROM \"case\" WHERE external_id LIKE 'L-%'")).scalar_one()
        events = conn.execute(text(
            "SELECT count(*) FROM case_event e JOIN \"case\" c ON c.id = e.case_id"
            " WHERE c.external_id LIKE 'L-%' AND e.action = 'register'")).scalar_one()
    assert stored == events == n + 1
    intake = app.state.intake
    # They were registered together: fewer transactions than requests.
    assert intake.cases == len(responses) and intake.batches < intake.cases


def _count(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(text('SELECT count(*) FROM "case"')).scalar_one(),
                conn.execute(text("SELECT count(*) FROM case_event")).scalar_one())


def test_mixed_coordinate_systems_in_one_batch_land_on_the_same_spot(city_engine):
    """GCJ-02 and BD-09 points are converted per CRS for the whole batch; each must come
    back to its own WGS-84 position (and a bad one in between must not shift the rest)."""
    from geo.coords import wgs84_to_bd09, wgs84_to_gcj02

    with city_engine.begin() as conn:
        token = create_token(conn, "intake", "batch-crs")[1]
    points = interior_points(city_engine)[:6]
    items, expected = [], []
    for i, (code, lon, lat) in enumerate(points):
        gx, gy = (float(v[0]) for v in wgs84_to_gcj02([lon], [lat]))
        bx, by = (float(v[0]) for v in wgs84_to_bd09([lon], [lat]))
        items += [(token, _body(gx, gy, f"C-g{i}", crs="gcj02")),
                  (token, _body(bx, by, f"C-b{i}", crs="bd09")),
                  (token, _body(lon, lat, f"C-w{i}"))]
        expected += [(code, lon, lat)] * 3
    items.insert(4, (token, _body(float("nan"), 35.0, "C-nan", crs="gcj02")))
    out = register_batch(city_engine, items, get_settings())
    assert isinstance(out.pop(4), CoordinateError)
    for got, (code, lon, lat) in zip(out, expected, strict=True):
        case = got.result.case
        assert case["community_code"] == code
        assert abs(case["lon"] - lon) < 1e-7 and abs(case["lat"] - lat) < 1e-7


def test_a_batch_that_fails_for_the_database_s_own_reasons_is_not_retried(city_engine, monkeypatch):
    """Unreachable or timed out: every submission gets the error (a 503 to retry) at once,
    instead of repeating the failure once per submission."""
    from sqlalchemy.exc import OperationalError

    calls = []

    def unreachable(conn, items, settings):  # noqa: ANN001
        calls.append(len(items))
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(intake_batch, "register_batch_committed", unreachable)
    batcher = intake_batch.IntakeBatcher(city_engine, get_settings())
    with pytest.raises(OperationalError), city_engine.connect() as conn:
        batcher._register(conn, [("t", _body(117.1, 35.1, None))] * 5)
    assert calls == [5]


def test_rejected_and_closed_cases_are_not_offered_as_duplicates(city_engine):
    """Possible duplicates are open cases: the same spot's rejected and closed complaints
    are history, not something to merge into."""
    (_code, lon, lat), = interior_points(city_engine)[:1]
    with city_engine.begin() as conn:
        token = create_token(conn, "intake", "batch-dups")[1]
    first = register_batch(city_engine, [(token, _body(lon, lat, f"D-{i}")) for i in range(3)],
                           get_settings())
    ids = [o.result.case["id"] for o in first]
    with city_engine.begin() as conn:
        conn.execute(text("UPDATE \"case\" SET status = 'rejected' WHERE id = :i"), {"i": ids[0]})
        conn.execute(text("UPDATE \"case\" SET status = 'closed', closed_at = now() WHERE id = :i"),
                     {"i": ids[1]})
    (later,) = register_batch(city_engine, [(token, _body(lon, lat, "D-later"))], get_settings())
    assert [d["id"] for d in later.result.possible_duplicates] == [ids[2]]


def test_the_duplicate_search_runs_after_commit_holding_no_statistics_row(city_engine, monkeypatch):
    """The INSERT's statistics trigger locks today's case_stat rows until COMMIT; the next
    batch (another worker's) needs the same rows. While the search runs, another session
    must be able to update them at once, and the search still finds the batch's twins."""
    (_code, lon, lat) = interior_points(city_engine)[2]
    with city_engine.begin() as conn:
        intake = create_token(conn, "intake", "after-commit")[1]
    seen = {}
    real = intake_batch.add_possible_duplicates

    def search_while_another_session_updates(conn, results):  # noqa: ANN001
        with city_engine.begin() as other:
            other.execute(text("SET LOCAL lock_timeout = '2s'"))
            seen["updated"] = other.execute(text(
                "UPDATE case_stat SET accepted = accepted WHERE dim = 'channel' "
                "AND key = 'hotline_12345'")).rowcount
        real(conn, results)

    monkeypatch.setattr(intake_batch, "add_possible_duplicates", search_while_another_session_updates)
    out = register_batch(city_engine, [(intake, _body(lon, lat, "AC-1")),
                                       (intake, _body(lon, lat, "AC-2"))], get_settings())
    assert seen["updated"] >= 1  # no lock wait (lock_timeout would have raised)
    first, second = (o.result for o in out)
    assert [d["id"] for d in first.possible_duplicates] == [second.case["id"]]
    assert [d["id"] for d in second.possible_duplicates] == [first.case["id"]]


@pytest.mark.parametrize("error", ["sqlalchemy", "driver"])
def test_a_failed_duplicate_search_after_commit_still_answers_with_the_stored_case(
        city_engine, monkeypatch, error):
    """The search runs after COMMIT: whether SQLAlchemy or the driver itself reports the
    failure (psycopg raises its own error when the connection is already closed as the
    search switches it to autocommit), the stored case is the answer."""
    import psycopg
    from sqlalchemy.exc import OperationalError

    (_code, lon, lat) = interior_points(city_engine)[3]
    with city_engine.begin() as conn:
        intake = create_token(conn, "intake", f"after-commit-fails-{error}")[1]

    def unreachable(conn, results):  # noqa: ANN001
        if error == "driver":
            raise psycopg.OperationalError("the connection is closed")
        raise OperationalError("SELECT ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(intake_batch, "add_possible_duplicates", unreachable)
    ticket = f"AC-3-{error}"
    (out,) = register_batch(city_engine, [(intake, _body(lon, lat, ticket))], get_settings())
    assert isinstance(out, Accepted) and out.result.created
    assert out.result.possible_duplicates == []
    assert _stored(city_engine, ticket) == 1


def test_the_next_batch_commits_while_the_previous_batch_searches(city_engine, monkeypatch):
    """With one transaction in flight, a committed batch's duplicate search must not hold
    the slot: the next batch registers meanwhile."""
    import threading

    points = interior_points(city_engine)
    with city_engine.begin() as conn:
        token = create_token(conn, "intake", "pipeline")[1]
    first_searching, release_first = threading.Event(), threading.Event()
    real = intake_batch.search_duplicates_after_commit

    def slow_first_search(conn, outcomes):  # noqa: ANN001
        if any(o.result.case["external_id"] == "P-1" for o in outcomes if isinstance(o, Accepted)):
            first_searching.set()
            assert release_first.wait(30)
        real(conn, outcomes)

    monkeypatch.setattr(intake_batch, "search_duplicates_after_commit", slow_first_search)

    async def scenario() -> None:
        batcher = intake_batch.IntakeBatcher(city_engine, get_settings(), in_flight=1)
        await batcher.start()
        try:
            first = asyncio.ensure_future(batcher.submit(token, _body(points[0][1], points[0][2], "P-1")))
            await asyncio.get_running_loop().run_in_executor(None, first_searching.wait, 30)
            second = await asyncio.wait_for(
                batcher.submit(token, _body(points[1][1], points[1][2], "P-2")), 10)
            assert second.result.created and not first.done()
            release_first.set()
            assert (await asyncio.wait_for(first, 30)).result.created
        finally:
            release_first.set()
            await batcher.stop()

    asyncio.run(scenario())
    assert _stored(city_engine, "P-1") == _stored(city_engine, "P-2") == 1


def test_intake_statements_stay_prepared_across_batches(city_db_url, city_engine):
    """Each batch runs the same handful of statements; they must be prepared once per
    connection and then run on a cached plan, not parsed and planned per batch. Two things
    used to defeat that: the duplicate search ended its transaction with ROLLBACK, which
    makes psycopg forget every prepared statement of the connection, and the routing took
    its points as float arrays, whose length the planner reads, so it planned each call
    anew. One pooled connection, so every batch meets the same statement cache."""
    from casegrid.db import make_engine

    engine = make_engine(city_db_url, Settings(pool_size=1, pool_max_overflow=0))
    points = interior_points(city_engine)
    with city_engine.begin() as conn:
        token = create_token(conn, "intake", "prepared")[1]
    try:
        for n in range(14):  # psycopg prepares after 5 runs; PostgreSQL goes generic after 5 more
            batch = [(token, _body(lon, lat, f"PREP-{n}-{i}"))
                     for i, (_code, lon, lat) in enumerate(points[: 1 + n % 3])]
            assert all(isinstance(o, Accepted) for o in register_batch(engine, batch, get_settings()))
        with engine.connect() as conn:
            plans = conn.execute(text(
                "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")).all()
    finally:
        engine.dispose()

    def plans_of(marker: str) -> tuple[int, int]:
        found = [(g, c) for s, g, c in plans if marker in s]
        assert found, f"no prepared statement contains {marker!r}"
        return found[0]

    # The insert, the routing, the duplicate search, and the lookups (tokens, categories,
    # time limits, generation, calendar) in one statement: cases.intake_lookups.
    for marker in ('INSERT INTO "case"', "AS point_id", "SELECT q.ord, d.*", "AS generation_id"):
        generic, custom = plans_of(marker)
        assert generic > 0, f"{marker}: {custom} custom plans and no generic plan"
    assert "DISTINCT ON (k.cat" in next(s for s, _g, _c in plans if "AS generation_id" in s)
    alone = [s for s, _g, _c in plans if "AS generation_id" not in s and (
        "FROM api_token" in s or "FROM category" in s or "FROM calendar_year" in s)]
    assert alone == [], "a lookup ran as a statement of its own"
