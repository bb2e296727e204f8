"""The address memory learns from GPS/app cases incrementally, and only what reporters agree
on (geo.address_learning), on the sample city through the intake API."""

from __future__ import annotations

import math

from sqlalchemy import text
from typer.testing import CliRunner

from casegrid.settings import Settings
from casegrid.worker import Worker
from geo.address_learning import learn_new_cases
from geo.address_match import match_address
from geo.routing import M_PER_DEG
from tests.helpers.cli import cli_database
from tests.helpers.intake_api import body, interior_points

ADDRESS = "银杏巷小卖部"  # no name the gazetteer knows: only the memory can place it


def _moved(lon: float, lat: float, east_m: float) -> tuple[float, float]:
    return lon + east_m / (M_PER_DEG * math.cos(math.radians(lat))), lat


def report(api, n: int, lon: float, lat: float, phone: str, address: str = ADDRESS,
           channel: str = "app") -> int:
    r = api.post_case(body(lon, lat, channel=channel, external_id=f"LEARN-{n}", address=address,
                           reporter_phone=phone))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def learn(api, **settings):  # noqa: ANN001, ANN201
    with api.engine.begin() as conn:
        return learn_new_cases(conn, Settings(**settings) if settings else None)


def memory(api, key_like: str = "%银杏巷%") -> list:
    with api.engine.connect() as conn:
        return conn.execute(text("SELECT community_label, n FROM address_memory WHERE key LIKE :k"),
                            {"k": key_like}).all()


def test_one_sighting_is_not_memory_two_reporters_who_agree_are(api) -> None:
    code, lon, lat = interior_points(api.engine)[3]
    report(api, 1, lon, lat, "13800000001")
    first = learn(api)
    assert first.cases_read >= 1 and first.sightings == 1 and first.learned == 0
    assert memory(api) == []
    with api.engine.connect() as conn:
        assert not match_address(conn, ADDRESS).located
    # The same person again, 30 m away: still one reporter.
    report(api, 2, *_moved(lon, lat, 30), "138 0000 0001")
    assert learn(api).learned == 0
    # Someone else, 40 m away: two reporters agree; both sightings become memory.
    report(api, 3, *_moved(lon, lat, -40), "13900000002")
    third = learn(api)
    assert (third.cases_read, third.sightings, third.learned) == (1, 1, 3)
    assert memory(api) == [(code, 3)]
    with api.engine.connect() as conn:
        m = match_address(conn, ADDRESS)
    assert m.located and m.rule == "address_memory" and m.community_code == code
    # Nothing new: nothing read, nothing counted twice.
    again = learn(api)
    assert (again.cases_read, again.learned) == (0, 0) and memory(api) == [(code, 3)]


def test_reporters_who_disagree_teach_nothing_and_an_outlier_never(api) -> None:
    points = interior_points(api.engine)
    (code_a, lon_a, lat_a), (_code_b, lon_b, lat_b) = points[5], points[40]
    report(api, 1, lon_a, lat_a, "13800000001")
    report(api, 2, lon_b, lat_b, "13800000002")
    assert learn(api).learned == 0 and memory(api) == []
    # A third reporter near the first: two of three agree; the far one stays out.
    report(api, 3, *_moved(lon_a, lat_a, 50), "13800000003")
    assert learn(api).learned == 2
    assert memory(api) == [(code_a, 2)]
    with api.engine.connect() as conn:
        learned = dict(conn.execute(text(
            "SELECT c.reporter_phone, s.learned FROM address_sighting s"
            ' JOIN "case" c ON c.id = s.case_id')).all())
    assert learned == {"13800000001": True, "13800000002": False, "13800000003": True}


def test_hotline_points_and_address_rules_are_not_sightings(api) -> None:
    code, lon, lat = interior_points(api.engine)[7]
    # A hotline operator's typed coordinates are not a measurement of where the problem is.
    report(api, 1, lon, lat, "13800000001", channel="hotline_12345")
    report(api, 2, lon, lat, "13800000002", channel="hotline_12345")
    assert learn(api).sightings == 0
    # A case located by its address is the matcher's own answer, never evidence for it.
    with api.engine.connect() as conn:
        case_count = conn.execute(text('SELECT count(*) FROM "case"')).scalar_one()
    assert learn(api).cases_read == 0 and case_count >= 2


def test_the_watermark_waits_for_a_missing_id_then_passes_it(api) -> None:
    code, lon, lat = interior_points(api.engine)[9]
    report(api, 1, lon, lat, "13800000001")
    assert learn(api).cases_read >= 1
    # An id handed out to a transaction that has not committed (or rolled back): a gap.
    with api.engine.begin() as conn:
        missing = conn.execute(text("SELECT nextval(pg_get_serial_sequence('\"case\"', 'id'))")).scalar_one()
    report(api, 2, *_moved(lon, lat, 20), "13800000002")
    waiting = learn(api)
    assert waiting.cases_read == 0 and waiting.waiting_for == missing
    assert memory(api) == []
    # Past the settle time the gap is passed, as a rolled-back insert.
    passed = learn(api, address_learn_settle_s=0)
    assert passed.cases_read == 1 and passed.waiting_for is None and passed.learned == 2
    assert memory(api) == [(code, 2)]


def test_the_worker_and_the_cli_use_the_same_learner(api, city_db_url, monkeypatch) -> None:
    code, lon, lat = interior_points(api.engine)[11]
    report(api, 1, lon, lat, "13800000001")
    report(api, 2, *_moved(lon, lat, 10), "13800000002")
    worker = Worker(api.engine, Settings(database_url=city_db_url), channels={})
    try:
        assert worker.run_pass()["address_cases"] >= 2
        # Learned once; the next pass within CASEGRID_ADDRESS_LEARN_EVERY_S does not read.
        assert worker.run_pass()["address_cases"] == 0
    finally:
        worker.pool.shutdown()
    assert memory(api) == [(code, 2)]
    report(api, 3, *_moved(lon, lat, -10), "13800000003")
    from casegrid.cli import app

    with cli_database(monkeypatch, city_db_url):
        out = CliRunner().invoke(app, ["gazetteer", "learn-ledger", "--commit"])
        assert out.exit_code == 0, out.output
        assert '"learned": 1' in out.output and memory(api) == [(code, 3)]
        rescan = CliRunner().invoke(app, ["gazetteer", "learn-ledger", "--rescan", "--commit"])
        assert rescan.exit_code == 0, rescan.output
        assert '"learned": 0' in rescan.output and memory(api) == [(code, 3)]
