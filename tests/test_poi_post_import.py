"""Post and POI import on real PostGIS: upserts, rejections with reasons, filters, CRS
conversion of real NYC data checked against an independent pyproj conversion."""

from __future__ import annotations

import json

import geopandas as gpd
import pandas as pd
import pyproj
import pytest
import shapely
from sqlalchemy import text

from casegrid.errors import ImportFailed, InvalidInput
from geo.boundary_import import import_boundaries
from geo.coords import wgs84_to_gcj02
from geo.poi_import import import_pois, read_pois
from geo.post_import import import_posts
from tests.helpers.paths import PROJECT_ROOT, require_realdata

FIX = PROJECT_ROOT / "tests" / "fixtures"
SAMPLE = PROJECT_ROOT / "data" / "boundaries"
GEOD = pyproj.Geod(ellps="WGS84")
HEADER = "community_code,name,contact_name,contact_phone,address,hours,lon,lat\n"


def _communities(conn) -> None:
    """Active communities C1, C2, C3, C5 (tests/fixtures)."""
    import_boundaries(conn, FIX / "communities_gap_overlap_4527.geojson", level="community",
                      code_field="code", name_field="name", commit=True)


def _posts(conn) -> dict[str, tuple]:
    rows = conn.execute(text(
        "SELECT community_code, name, phone, ST_X(geom), ST_Y(geom) FROM community_post")).all()
    return {r[0]: tuple(r[1:]) for r in rows}


# --- posts ---------------------------------------------------------------------------------


def test_posts_upsert_and_rejections(engine, tmp_path):
    csv = tmp_path / "posts.csv"
    csv.write_text(
        HEADER
        + "C1,Post one,Li,0632-1,Road 1,8-17,117.16,35.08\n"
        + "C2,Post two,Wang,0632-2,,,,\n"  # no location: allowed
        + "C9,Ghost post,,,,,117.16,35.08\n"  # not a community
        + "C1,Post one again,,,,,,\n"  # duplicate code
        + "C3,Bad lat,,,,,117.16,135.08\n"
        + ",No code,,,,,,\n"
        + "C5,,,,,,,\n",  # no name
        encoding="utf-8",
    )
    with engine.begin() as conn:
        _communities(conn)
        dry = import_posts(conn, csv)
        assert _posts(conn) == {}
    assert dry.read == 7 and dry.accepted == 2 and not dry.committed
    reasons = {r.feature: r.reason for r in dry.rejected}
    assert set(reasons) == {3, 4, 5, 6, 7}
    assert "not a community of the active generation" in reasons[3]
    assert "duplicate community_code" in reasons[4]
    assert "lat" in reasons[5] and "range" in reasons[5]
    assert "community_code is empty" in reasons[6]
    assert "name is empty" in reasons[7]
    assert any("have no post: C3, C5" in w for w in dry.warnings)

    with engine.begin() as conn:
        report = import_posts(conn, csv, commit=True)
        assert report.written == {"inserted": 2, "updated": 0}
        posts = _posts(conn)
    assert posts["C1"] == ("Post one", "0632-1", pytest.approx(117.16), pytest.approx(35.08))
    assert posts["C2"] == ("Post two", "0632-2", None, None)

    csv.write_text(HEADER + "C1,Post one renamed,Li,0632-9,,,117.17,35.09\n", encoding="utf-8")
    with engine.begin() as conn:
        report = import_posts(conn, csv, commit=True)
        posts = _posts(conn)
    assert report.written == {"inserted": 0, "updated": 1}
    assert posts["C1"][:2] == ("Post one renamed", "0632-9") and "C2" in posts


def test_posts_gcj02_coordinates_converted(engine, tmp_path):
    wgs = (117.16, 35.08)
    gx, gy = wgs84_to_gcj02(*wgs)
    csv = tmp_path / "posts.csv"
    csv.write_text(HEADER + f"C1,Post,,,,,{gx[0]:.9f},{gy[0]:.9f}\n", encoding="utf-8")
    with engine.begin() as conn:
        _communities(conn)
        import_posts(conn, csv, crs="gcj02", commit=True)
        _, _, lon, lat = _posts(conn)["C1"]
    _, _, err = GEOD.inv(lon, lat, *wgs)
    assert err < 0.5


def test_sample_city_posts_reimport_updates_all(city_engine):
    path = SAMPLE / "posts.csv"
    if not path.exists():
        pytest.skip("data/boundaries/posts.csv not present yet")
    expected = pd.read_csv(path, dtype=str)
    with city_engine.begin() as conn:
        report = import_posts(conn, path, commit=True)
        phones = dict(conn.execute(text("SELECT community_code, phone FROM community_post")).all())
    assert report.rejected == []
    assert report.written == {"inserted": 0, "updated": len(expected)}
    # Phone numbers keep their leading zero (read as text, not numbers).
    assert phones[expected["community_code"][0]] == expected["contact_phone"][0]


def test_posts_unreadable_file(tmp_path):
    bad = tmp_path / "posts.csv"
    bad.write_text(HEADER, encoding="utf-8")
    with pytest.raises(ImportFailed, match="no rows"):
        import_posts(None, bad)  # fails before touching the database


# --- POIs ----------------------------------------------------------------------------------


@pytest.mark.realdata
def test_hospitals_open_only_and_reimport_replaces(engine):
    path = require_realdata("nyc", "hospitals.csv")
    raw = pd.read_csv(path)
    open_rows = raw[raw["status"].str.upper() == "OPEN"]
    kw = dict(kind="hospital", name_field="name", id_field="id", filters=["status=OPEN"],
              commit=True)
    with engine.begin() as conn:
        first = import_pois(conn, path, **kw)
    with engine.begin() as conn:
        second = import_pois(conn, path, **kw)
        rows = conn.execute(text(
            "SELECT source_id, kind, ST_X(geom), ST_Y(geom), properties->>'status' FROM poi")).all()
    assert first.accepted == len(open_rows) and first.rejected == []
    assert second.written["replaced"] == len(open_rows)
    assert len(rows) == len(open_rows)
    assert {r[1] for r in rows} == {"hospital"} and {r[4] for r in rows} == {"open"}
    ref = open_rows.iloc[0]
    got = next(r for r in rows if r[0] == str(ref["id"]))
    assert got[2] == pytest.approx(ref["long"]) and got[3] == pytest.approx(ref["lat"])


@pytest.mark.realdata
def test_farmers_market_with_longitude_zero_rejected():
    path = require_realdata("nyc", "farmers_markets.csv")
    raw = pd.read_csv(path)
    bad = raw.index[raw["Longitude"].abs() < 1].tolist()
    assert len(bad) == 1
    pois, report = read_pois(path, kind="market", name_field="Market Name")
    assert [r.feature for r in report.rejected] == [bad[0] + 1]
    assert "bad coordinate" in report.rejected[0].reason
    assert len(pois) == len(raw) - 1


@pytest.mark.realdata
def test_schools_shapefile_in_feet_lands_in_place(engine):
    folder = require_realdata("nyc", "public_schools_2011")
    districts = require_realdata("nyc", "community_districts_2013_dcp.geojson")
    with engine.begin() as conn:
        report = import_pois(conn, folder, kind="school", name_field="SCHOOLNAME",
                             id_field="ATS_CODE", commit=True)
        rows = conn.execute(text("SELECT source_id, ST_X(geom), ST_Y(geom) FROM poi")).all()
    assert report.source_crs == "EPSG:2263" and report.accepted == 1709
    x0, y0, x1, y1 = gpd.read_file(districts).total_bounds
    outside = [r for r in rows if not (x0 <= r[1] <= x1 and y0 <= r[2] <= y1)]
    assert len(outside) <= 2
    # Independent conversion of the raw State Plane feet of one school.
    raw = gpd.read_file(folder)
    school = raw[raw["ATS_CODE"].str.strip() == "15K001"].geometry.iloc[0]
    lon, lat = pyproj.Transformer.from_crs(2263, 4326, always_xy=True).transform(school.x, school.y)
    got = next(r for r in rows if r[0] == "15K001")
    _, _, err = GEOD.inv(got[1], got[2], lon, lat)
    assert err < 1.0
    assert -74.1 < lon < -73.9 and 40.6 < lat < 40.7  # Brooklyn, not the raw feet


def test_mixed_kinds_with_mapping_and_unknown_rejected(tmp_path):
    feats = [
        {"type": "Feature", "properties": {"kind": k, "name": n},
         "geometry": {"type": "Point", "coordinates": [117.16 + i * 0.001, 35.08]}}
        for i, (k, n) in enumerate([("school", "A"), ("医院", "B"), ("zoo", "C"), ("market", "")])
    ]
    feats.append({"type": "Feature", "properties": {"kind": "park_plaza", "name": "Plaza"},
                  "geometry": {"type": "Polygon", "coordinates": [[[117.15, 35.07], [117.16, 35.08],
                               [117.16, 35.07], [117.15, 35.08], [117.15, 35.07]]]}})
    path = tmp_path / "pois.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}), encoding="utf-8")
    pois, report = read_pois(path, kind_field="kind", kind_map="医院=hospital", name_field="name")
    assert list(pois["kind"]) == ["school", "hospital", "park_plaza"]
    reasons = {r.feature: r.reason for r in report.rejected}
    assert set(reasons) == {3, 4}
    assert "'zoo' is not one of" in reasons[3] and "--kind-map" in reasons[3]
    assert "name is empty" in reasons[4]
    plaza = pois.geometry.iloc[2]  # bow-tie plaza repaired, still polygonal
    assert plaza.is_valid and plaza.geom_type == "MultiPolygon"
    assert shapely.area(plaza) == pytest.approx(2 * 0.01 * 0.005 / 2)


def test_sample_pois_by_kind_field(engine):
    path = SAMPLE / "pois.geojson"
    if not path.exists():
        pytest.skip("data/boundaries/pois.geojson not present yet")
    n = len(gpd.read_file(path))
    with engine.begin() as conn:
        report = import_pois(conn, path, kind_field="kind", name_field="name",
                             id_field="poi_id", commit=True)
        count = conn.execute(text("SELECT count(*) FROM poi WHERE source = 'pois.geojson'")).scalar_one()
    assert report.rejected == [] and count == n


def test_poi_option_errors(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text("title,X_COORD,Y_COORD\nA,1,2\n", encoding="utf-8")
    with pytest.raises(InvalidInput, match="exactly one of --kind or --kind-field"):
        read_pois(csv, name_field="title")
    with pytest.raises(InvalidInput, match="--kind must be one of"):
        read_pois(csv, kind="zoo", name_field="title")
    with pytest.raises(ImportFailed, match="pass --lon-field"):
        read_pois(csv, kind="school", name_field="title")
    with pytest.raises(InvalidInput, match="FIELD=VALUE"):
        read_pois(csv, kind="school", name_field="title", lon_field="X_COORD",
                  lat_field="Y_COORD", filters=["status"])
    with pytest.raises(ImportFailed, match="--name-field 'name' is not a field"):
        read_pois(csv, kind="school", name_field="name", lon_field="X_COORD", lat_field="Y_COORD")


def test_cli_posts_and_poi_dry_runs(engine, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    import casegrid.cli.boundaries as cli_mod
    from casegrid.cli import app

    monkeypatch.setattr(cli_mod, "engine", lambda: engine)
    csv = tmp_path / "posts.csv"
    csv.write_text(HEADER + "C1,Post,,,,,117.16,35.08\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(app, ["posts", "import", str(csv), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["accepted"] == 1
    res = runner.invoke(app, ["poi", "import", str(csv), "--kind", "market", "--name-field", "name"])
    assert res.exit_code == 0, res.output
    assert "dry run" in res.output
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM poi")).scalar_one() == 0
        assert _posts(conn) == {}
    res = runner.invoke(app, ["poi", "import", str(csv), "--kind", "zoo", "--name-field", "name"])
    assert res.exit_code == 2 and "--kind must be one of" in res.output
