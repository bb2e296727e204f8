"""The bulk hotline import locates address-only rows set-based: confident ones routed with
their address rule, the rest unlocated with suggestions, rows with neither a point nor an
address rejected; the same on the row path and on the exclusive (index rebuild) path."""

from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import text

from casegrid.demo.gazetteer import GAZETTEER_FILE
from cases.bulk_import import import_cases
from geo.routing import route

HEADER = ["工单编号", "来源渠道", "诉求类型", "诉求内容", "地址", "经度", "纬度", "坐标系", "来电时间",
          "来电人", "联系电话", "附件"]


def _write(path, rows: list[tuple[str, str, str, str]]) -> None:  # noqa: ANN001 - a Path
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for ticket, address, lon, lat in rows:
            w.writerow([ticket, "12345热线", "社会生活噪音扰民", "噪音", address, lon, lat,
                        "WGS84" if lon else "", "2025-06-12 20:41:05", "", "", ""])


@pytest.mark.parametrize("rebuild", [False, True])
def test_bulk_import_locates_address_only_rows(city_engine, tmp_path, rebuild) -> None:
    features = json.loads(GAZETTEER_FILE.read_text(encoding="utf-8"))["features"]
    names = [f["properties"]["name"] for f in features]
    compound = next(f for f in features if f["properties"]["kind"] == "compound"
                    and names.count(f["properties"]["name"]) == 1)
    name, home = compound["properties"]["name"], compound["properties"]["community_code_generated"]
    rows = [("T-1", "滕州市荆河街道文昌社区文化广场", "117.165711", "35.081305"),
            ("T-2", f"{name}3号楼", "", ""),
            ("T-3", f"滕州市{name}东侧", "", ""),
            ("T-4", "幸福小区门口", "", ""),
            ("T-5", "善国路与解放路交叉口往北50米", "", ""),
            ("T-6", "没人知道的地方", "", ""),
            ("T-7", "", "", "")]
    src = tmp_path / "hotline.csv"
    _write(src, rows)
    report = import_cases(city_engine, src, "hotline12345_zh", commit=True,
                          rebuild_indexes=rebuild)
    assert report.read == 7 and report.rejected == 1 and report.inserted == 6
    assert report.routed["address_compound"] == 2
    assert report.routed["address_crossing"] == 1
    assert report.routed["unlocated"] == 2
    with city_engine.connect() as conn:
        cases = {r["external_id"]: r for r in conn.execute(text(
            'SELECT c.external_id, c.route_rule, c.community_code, c.post_id, c.input_lon,'
            ' c.input_crs, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.route_alternates,'
            ' l.confidence, l.rule AS locate_rule, jsonb_array_length(l.suggestions) AS n_sugg'
            ' FROM "case" c LEFT JOIN case_locate l ON l.case_id = c.id')).mappings()}
        assert cases["T-1"]["route_rule"] == "inside" and cases["T-1"]["confidence"] is None
        for t in ("T-2", "T-3"):
            c = cases[t]
            assert c["route_rule"] == "address_compound" and c["community_code"] == home
            assert c["post_id"] is not None and c["input_lon"] is None and c["input_crs"] is None
            assert route(conn, c["lon"], c["lat"]).community_code == home
            assert c["locate_rule"] == "address_compound" and c["confidence"] >= 0.7
        assert cases["T-5"]["route_rule"] == "address_crossing"
        twin = cases["T-4"]
        assert twin["route_rule"] == "unlocated" and twin["lon"] is None
        assert twin["community_code"] is None and len(twin["route_alternates"]) == 2
        assert twin["n_sugg"] == 2 and twin["confidence"] < 0.7
        assert cases["T-6"]["route_rule"] == "unlocated" and cases["T-6"]["n_sugg"] == 0
        events = conn.execute(text(
            "SELECT data->>'rule' FROM case_event e JOIN \"case\" c ON c.id = e.case_id"
            " WHERE c.external_id = 'T-2'")).scalar_one()
        assert events == "address_compound"
