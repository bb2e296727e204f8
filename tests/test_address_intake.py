"""Address-only complaints through intake, a dispatcher's placement, ``locate-file``, the
gazetteer import and learning from a history file, on the sample city."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from casegrid.demo.gazetteer import GAZETTEER_FILE
from geo.address_file import locate_file
from geo.address_match import match_address
from geo.address_memory import learn_file
from geo.case_locate import case_locate
from geo.gazetteer import import_gazetteer_file
from geo.routing import route
from tests.helpers.intake_api import body


@pytest.fixture(scope="module")
def features() -> list[dict]:
    return json.loads(GAZETTEER_FILE.read_text(encoding="utf-8"))["features"]


def _compound(features: list[dict]) -> dict:
    names = [f["properties"]["name"] for f in features]
    return next(f for f in features if f["properties"]["kind"] == "compound"
                and names.count(f["properties"]["name"]) == 1)


def test_an_address_only_case_is_routed_by_its_address(api, features) -> None:
    f = _compound(features)
    name, home = f["properties"]["name"], f["properties"]["community_code_generated"]
    r = api.post_case(body(address=f"滕州市{name}3号楼东侧", external_id="addr-ok"))
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["routing"]["rule"] == "address_compound"
    assert out["routing"]["community_code"] == home and out["routing"]["post"] is not None
    # No coordinates were sent, so none are recorded as sent; the point is the matcher's.
    assert out["location"]["input_lon"] is None and out["location"]["lon"] is not None
    with api.engine.connect() as conn:
        stored = case_locate(conn, out["id"])
        event = conn.execute(text("SELECT data FROM case_event WHERE case_id = :c"),
                             {"c": out["id"]}).scalar_one()
    assert stored["rule"] == "address_compound" and stored["confidence"] >= 0.7
    assert stored["normalized"].startswith(name)
    assert event["rule"] == "address_compound" and "confidence" in event["note"]


def test_an_ambiguous_address_waits_with_suggestions_and_a_placement_teaches(api, features) -> None:
    twins = {f["properties"]["community_code_generated"] for f in features
             if f["properties"]["name"] == "幸福小区"}
    r = api.post_case(body(address="幸福小区5号楼门口", external_id="addr-twin-1"))
    assert r.status_code == 201, r.text
    case = r.json()
    assert case["routing"]["rule"] == "unlocated" and case["routing"]["community_code"] is None
    suggestions = case["routing"]["alternates"]
    assert {s["community_code"] for s in suggestions} == twins
    assert all(s["why"] and s["lon"] and s["community_name"] for s in suggestions)
    with api.engine.connect() as conn:
        stored = case_locate(conn, case["id"])
    assert stored["rule"] is None and stored["confidence"] < 0.7
    assert len(stored["suggestions"]) == 2

    # The dispatcher places it with one click on the first suggestion.
    pick = suggestions[0]
    r = api.client.post(f"/api/v1/cases/{case['id']}/actions", headers=api.headers("dispatcher"),
                        json={"action": "reroute", "lon": pick["lon"], "lat": pick["lat"],
                              "reason": "placed from the address suggestions"})
    assert r.status_code == 200, r.text
    assert r.json()["community_code"] == pick["community_code"]

    # The next call from the same address is located by the memory, same community.
    r = api.post_case(body(address="幸福小区5号楼门口", external_id="addr-twin-2"))
    nxt = r.json()
    assert nxt["routing"]["rule"] == "address_memory"
    assert nxt["routing"]["community_code"] == pick["community_code"]
    # ... while the compound said on its own is still ambiguous (the placement was for
    # building 5, and the memory does not overrule two real compounds of that name).
    with api.engine.connect() as conn:
        assert not match_address(conn, "幸福小区").located


def test_locate_file_writes_one_row_per_row(city_engine, features, tmp_path) -> None:
    f = _compound(features)
    rows = [{"id": "1", "addr": f["properties"]["name"], "town": ""},
            {"id": "2", "addr": "", "town": "滕州"},
            {"id": "3", "addr": "幸福小区", "town": ""},
            {"id": "4", "addr": "善国路与解放路交叉口", "town": ""},
            {"id": "5", "addr": f["properties"]["name"], "town": ""},
            {"id": "6", "addr": "完全不知道的地方", "town": ""}]
    src = tmp_path / "in.csv"
    with open(src, "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "addr", "town"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out.csv"
    with city_engine.connect() as conn:
        summary = locate_file(conn, src, out, ["addr"])
        with open(out, encoding="utf-8") as fh:
            got = list(csv.DictReader(fh))
        assert [g["id"] for g in got] == ["1", "2", "3", "4", "5", "6"]
        assert summary["located"] == 3 and summary["with_suggestions"] == 1
        assert summary["distinct_addresses"] == 4
        assert got[0]["rule"] == "address_compound" and got[0]["community_code"]
        assert route(conn, float(got[0]["lon"]), float(got[0]["lat"])).community_code == \
            got[0]["community_code"]
        assert got[1]["lon"] == "" and got[1]["rule"] == ""
        assert got[2]["lon"] == "" and len(json.loads(got[2]["suggestions"])) == 2
        assert got[3]["rule"] == "address_crossing"
        assert got[5]["rule"] == "" and got[5]["confidence"] == "0.0"


def test_locate_file_cli_refuses_a_missing_column(tmp_path) -> None:
    from casegrid.cli import app

    src = tmp_path / "in.csv"
    src.write_text("a,b\n1,2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["locate-file", str(src), "--address-col", "addr",
                                      "--out", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert "addr" in result.output


def test_gazetteer_import_reports_and_only_writes_on_commit(city_engine, tmp_path) -> None:
    with city_engine.connect() as conn:
        a, b = conn.execute(text(
            "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM community"
            " ORDER BY code LIMIT 2")).all()
    src = tmp_path / "compounds.csv"
    src.write_text(
        "名称,别名,lon,lat\n"
        f"金桂园,金桂小区;桂园,{a[0]},{a[1]}\n"
        f"金桂园,,{a[0]},{a[1]}\n"            # the same name twice in one community
        f"双子苑,,{a[0]},{a[1]}\n"
        f"双子苑,,{b[0]},{b[1]}\n"            # one name in two communities
        ",,117.1,35.0\n"                      # no name
        "坏坐标苑,,abc,35.0\n", encoding="utf-8")
    with city_engine.connect() as conn:
        trans = conn.begin()
        report = import_gazetteer_file(conn, src, kind="compound", name_field="名称",
                                       alias_field="别名")
        trans.rollback()
        assert report.read == 6 and report.accepted == 4 and len(report.rejected) == 2
        assert [d["name"] for d in report.duplicates] == ["金桂园"]
        assert [d["name"] for d in report.in_several_communities] == ["双子苑"]
        assert conn.execute(text(
            "SELECT count(*) FROM gazetteer_entry WHERE source = 'compounds.csv'")).scalar_one() == 0
    with city_engine.begin() as conn:
        import_gazetteer_file(conn, src, kind="compound", name_field="名称", alias_field="别名")
        assert match_address(conn, "桂园").located
        assert not match_address(conn, "双子苑").located


def test_learning_from_a_history_file(city_engine, tmp_path) -> None:
    src = tmp_path / "history.csv"
    src.write_text("地址,经度,纬度\n"
                   "滕州市老粮站宿舍,117.16,35.08\n"
                   "老粮站宿舍,117.1601,35.0801\n"
                   ",117.16,35.08\n"
                   "无坐标的地址,,\n", encoding="utf-8")
    with city_engine.begin() as conn:
        report = learn_file(conn, src, address_cols=["地址"], lon_col="经度", lat_col="纬度")
        assert report["learned_rows"] == 2 and report["memory_entries"] == 1
        m = match_address(conn, "老粮站宿舍门口")
        assert m.located and m.rule == "address_memory"
        assert m.community_code == route(conn, 117.16, 35.08).community_code
        assert m.confidence > 0.85  # seen twice
