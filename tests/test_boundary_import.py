"""Boundary import: reading, repair, rejection, topology, dry runs and generations, on real
PostGIS with real public data and small hand-built fixtures (tests/fixtures/README.md)."""

from __future__ import annotations

import json
import math

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely
from sqlalchemy import text
from typer.testing import CliRunner

from casegrid.errors import ImportFailed
from casegrid.settings import get_settings
from geo.boundary_import import import_boundaries, plan_import, read_boundaries
from geo.topology import check_active
from tests.helpers.paths import PROJECT_ROOT, require_realdata

FIX = PROJECT_ROOT / "tests" / "fixtures"
# The fixture squares are laid out in EPSG:4527 metres from this origin (see the README).
X0, Y0 = 39514000.0, 3883000.0


def _counts(conn) -> dict[str, int]:
    return {
        t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()
        for t in ("boundary_generation", "subdistrict", "community", "community_piece")
    }


def _fixture_subdistricts(conn):
    return import_boundaries(
        conn, FIX / "subdistricts_4527.geojson", level="subdistrict", code_field="code",
        name_field="name", commit=True,
    )


# --- real data -----------------------------------------------------------------------------


@pytest.mark.realdata
def test_boston_repairs_exactly_the_invalid_four_and_stores_26_valid(engine):
    path = require_realdata("boston", "neighborhoods.geojson")
    raw = gpd.read_file(path)
    invalid_names = set(raw.loc[~raw.is_valid, "name"])
    assert len(invalid_names) == 4  # what the data's README promises
    with engine.begin() as conn:
        report = import_boundaries(conn, path, level="community", code_field="name",
                                   name_field="name", commit=True)
    assert {r.code for r in report.repaired} == invalid_names
    assert all("intersection" in r.problem.lower() for r in report.repaired)
    assert report.rejected == [] and report.accepted == 26
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT count(*), bool_and(ST_IsValid(geom)), count(DISTINCT ST_GeometryType(geom))"
            " FROM community WHERE generation_id = :g"), {"g": report.written["generation"]}).one()
    assert tuple(row) == (26, True, 1)


@pytest.mark.realdata
def test_nyc_dry_run_writes_nothing_commit_stores_71(engine):
    path = require_realdata("nyc", "community_districts_2013_dcp.geojson")
    with engine.begin() as conn:
        before = _counts(conn)
        report = import_boundaries(conn, path, level="community", code_field="BoroCD",
                                   name_field="BoroCD")
        assert report.committed is False and report.accepted == 71
        assert _counts(conn) == before
    with engine.begin() as conn:
        report = import_boundaries(conn, path, level="community", code_field="BoroCD",
                                   name_field="BoroCD", commit=True)
    with engine.connect() as conn:
        codes = set(conn.execute(text("SELECT code FROM community WHERE generation_id = :g"),
                                 {"g": report.written["generation"]}).scalars())
        pieces = conn.execute(text("SELECT count(DISTINCT community_id) FROM community_piece")).scalar_one()
    assert len(codes) == 71 and "305" in codes and "164" in codes  # integer codes, not '305.0'
    assert pieces == 71


def _wgs_to_gcj(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published GCJ-02 forward formula, written out again here so the test does not
    trust geo.coords (Krasovsky a=6378245, ee=0.00669342162296594323)."""
    a, ee = 6378245.0, 0.00669342162296594323
    x, y = lon - 105.0, lat - 35.0
    t_lat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
             + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
             + (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
             + (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0)
    t_lon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
             + (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
             + (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
             + (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0)
    rad = lat / 180.0 * np.pi
    magic = 1 - ee * np.sin(rad) ** 2
    d_lat = t_lat * 180.0 / ((a * (1 - ee)) / (magic * np.sqrt(magic)) * np.pi)
    d_lon = t_lon * 180.0 / (a / np.sqrt(magic) * np.cos(rad) * np.pi)
    return lon + d_lon, lat + d_lat


@pytest.mark.realdata
def test_gcj02_counties_land_on_the_reference_conversion(engine):
    path = require_realdata("china", "zaozhuang_counties_gcj02.geojson")
    with engine.begin() as conn:
        report = import_boundaries(conn, path, level="subdistrict", code_field="adcode",
                                   name_field="name", crs="gcj02", commit=True)
        assert report.source_crs == "gcj02"
        stored = conn.execute(text(
            "SELECT ST_AsBinary(geom) FROM subdistrict WHERE code = '370481'")).scalar_one()
    raw = gpd.read_file(path)
    raw_geom = raw.loc[raw["adcode"].astype(str) == "370481"].geometry.iloc[0]
    ours = shapely.get_coordinates(shapely.from_wkb(bytes(stored)))
    theirs = shapely.get_coordinates(raw_geom)
    assert ours.shape == theirs.shape
    # Re-applying the forward formula to what we stored must give the file's GCJ-02 vertices.
    fx, fy = _wgs_to_gcj(ours[:, 0], ours[:, 1])
    geod = pyproj.Geod(ellps="WGS84")
    _, _, err = geod.inv(fx, fy, theirs[:, 0], theirs[:, 1])
    assert np.max(err) < 1.0
    # And the shift itself is the several hundred metres GCJ-02 is known for.
    _, _, shift = geod.inv(ours[:, 0], ours[:, 1], theirs[:, 0], theirs[:, 1])
    assert 200 < np.median(shift) < 1000


# --- fixtures: repair and rejection --------------------------------------------------------


def test_bow_tie_repaired_and_bad_features_rejected_with_reasons():
    features, report = read_boundaries(FIX / "mixed_invalid.geojson", level="community",
                                       code_field="code", name_field="name")
    assert report.read == 9
    assert [(r.code, r.problem.split("[")[0]) for r in report.repaired] == [("B1", "Self-intersection")]
    bow = features.set_index("code").geometry["B1"]
    assert bow.is_valid and bow.geom_type == "MultiPolygon" and len(bow.geoms) == 2
    # The two triangles of the bow tie: each 0.01 x 0.005 / 2 square degrees.
    assert bow.area == pytest.approx(2 * 0.01 * 0.005 / 2, rel=1e-9)
    reasons = {r.feature: (r.code, r.reason) for r in report.rejected}
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8}
    assert reasons[2][0] == "P1" and "not a polygon: Point" in reasons[2][1]
    assert "LineString" in reasons[3][1]
    assert "missing or empty geometry" in reasons[4][1]
    assert reasons[5][0] is None and "code is empty" in reasons[5][1]
    assert "duplicate code 'B1'" in reasons[6][1] and "feature 1" in reasons[6][1]
    assert "name is empty" in reasons[7][1]
    assert "--crs" in reasons[8][1] and "out of longitude/latitude range" in reasons[8][1]
    assert sorted(features["code"]) == ["B1", "V1"] and report.accepted == 2


def test_non_4326_file_gap_and_overlap_areas():
    features, report = read_boundaries(FIX / "communities_gap_overlap_4527.geojson",
                                       level="community", code_field="code", name_field="name")
    assert report.source_crs == "EPSG:4527"
    from geo.topology import analyse

    topo = analyse(features)
    assert topo.metric_crs == "EPSG:4527"
    # The notch cut into C3: 50 m x 40 m, enclosed by C1 below.
    assert len(topo.gaps) == 1 and topo.gaps[0].area_m2 == pytest.approx(2000.0, abs=0.5)
    to_metric = pyproj.Transformer.from_crs(4326, 4527, always_xy=True)
    gx, gy = to_metric.transform(topo.gaps[0].lon, topo.gaps[0].lat)
    assert X0 + 500 < gx < X0 + 550 and Y0 + 1000 < gy < Y0 + 1040
    # C1 [0,1000] and C2 [990,2000] share a 10 m x 1000 m strip.
    assert [(o.code_a, o.code_b) for o in topo.overlaps] == [("C1", "C2")]
    assert topo.overlaps[0].area_m2 == pytest.approx(10_000.0, abs=0.5)
    ox, _ = to_metric.transform(topo.overlaps[0].lon, topo.overlaps[0].lat)
    assert X0 + 990 <= ox <= X0 + 1000


def test_straddling_community_gets_majority_parent_and_share(engine):
    with engine.begin() as conn:
        _fixture_subdistricts(conn)
        features, report = plan_import(conn, FIX / "communities_gap_overlap_4527.geojson",
                                       level="community", code_field="code", name_field="name")
    parents = dict(zip(features["code"], features["parent_code"], strict=True))
    assert parents == {"C1": "S1", "C2": "S2", "C3": "S2", "C5": None}
    issues = {p.code: p for p in report.topology.parent_issues}
    assert set(issues) == {"C3", "C5"}
    # C3 = 2000 x 1000 minus the 2000 m2 notch, which lies in S1: S2 holds 1,000,000 m2.
    assert issues["C3"].status == "straddling"
    assert issues["C3"].share_in_parent == pytest.approx(1_000_000 / 1_998_000, abs=1e-5)
    assert issues["C5"].status == "outside" and issues["C5"].best_code is None
    # C2 is 1% outside S2 (10 m of its 1010 m width): exactly at the 99% threshold, not flagged.
    assert "C2" not in issues


def test_declared_parent_checked_and_stored(engine):
    with engine.begin() as conn:
        _fixture_subdistricts(conn)
        report = import_boundaries(conn, FIX / "communities_gap_overlap_4527.geojson",
                                   level="community", code_field="code", name_field="name",
                                   parent_field="sub", commit=True)
        stored = dict(conn.execute(text(
            "SELECT code, subdistrict_code FROM community WHERE generation_id = :g"),
            {"g": report.written["generation"]}).all())
    # C3 has no declared parent: assigned; C5 declared S1 but lies outside every subdistrict.
    assert stored == {"C1": "S1", "C2": "S2", "C3": "S2", "C5": "S1"}
    issues = {p.code: p.status for p in report.topology.parent_issues}
    assert issues == {"C3": "straddling", "C5": "outside"}
    with engine.connect() as conn:
        active = check_active(conn)
    assert [(o.code_a, o.code_b) for o in active.overlaps] == [("C1", "C2")]
    assert {p.code for p in active.parent_issues} == {"C3", "C5"}


def test_wrong_parent_reported(engine, tmp_path):
    data = json.loads((FIX / "communities_gap_overlap_4527.geojson").read_text())
    data["features"][0]["properties"]["sub"] = "S2"  # C1 lies wholly in S1
    data["features"][3]["properties"]["sub"] = "S9"  # no such subdistrict
    path = tmp_path / "wrong.geojson"
    path.write_text(json.dumps(data))
    with engine.begin() as conn:
        _fixture_subdistricts(conn)
        _, report = plan_import(conn, path, level="community", code_field="code",
                                name_field="name", parent_field="sub")
    issues = {p.code: p for p in report.topology.parent_issues}
    assert issues["C1"].status == "wrong_parent" and issues["C1"].best_code == "S1"
    assert issues["C1"].share_in_parent == 0.0
    assert issues["C5"].status == "unknown_parent"


# --- fixtures: file errors -----------------------------------------------------------------


def test_shapefile_without_prj_needs_crs(tmp_path):
    gdf = gpd.read_file(FIX / "subdistricts_4527.geojson")
    shp = tmp_path / "noprj.shp"
    gdf.to_file(shp)
    (tmp_path / "noprj.prj").unlink()
    with pytest.raises(ImportFailed) as exc:
        read_boundaries(shp, level="subdistrict", code_field="code", name_field="name")
    assert "--crs" in exc.value.message and ".prj" in exc.value.message
    features, report = read_boundaries(shp, level="subdistrict", code_field="code",
                                       name_field="name", crs="EPSG:4527")
    assert report.source_crs == "EPSG:4527" and report.accepted == 2
    lon, lat = features.geometry.iloc[0].centroid.coords[0]
    assert 117.0 < lon < 117.3 and 35.0 < lat < 35.2


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("truncated.geojson", "cannot read truncated.geojson"),
        ("empty.geojson", "no features"),
        ("missing.geojson", "no such file"),
    ],
)
def test_unusable_files_fail_clearly(name, needle):
    with pytest.raises(ImportFailed) as exc:
        read_boundaries(FIX / name, level="community", code_field="code", name_field="name")
    assert needle in exc.value.message


def test_unknown_field_lists_available_fields():
    with pytest.raises(ImportFailed) as exc:
        read_boundaries(FIX / "subdistricts_4527.geojson", level="community",
                        code_field="CODE", name_field="name")
    assert "--code-field 'CODE'" in exc.value.message
    assert "available fields: code, name" in exc.value.message


def test_oversized_file_refused(monkeypatch):
    monkeypatch.setattr(get_settings(), "max_upload_mb", 0)
    with pytest.raises(ImportFailed) as exc:
        read_boundaries(FIX / "subdistricts_4527.geojson", level="subdistrict",
                        code_field="code", name_field="name")
    assert "over the 0 MB limit" in exc.value.message


def test_import_with_nothing_valid_refuses_to_commit(engine, tmp_path):
    data = json.loads((FIX / "mixed_invalid.geojson").read_text())
    data["features"] = data["features"][1:4]  # point, line, no geometry
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(data))
    with engine.begin() as conn, pytest.raises(ImportFailed, match="no feature could be imported"):
        import_boundaries(conn, path, level="community", code_field="code", name_field="name",
                          commit=True)


# --- generations ---------------------------------------------------------------------------


def test_reimport_creates_new_generation_and_keeps_old(engine):
    kw = dict(level="community", code_field="code", name_field="name", commit=True)
    with engine.begin() as conn:
        first = import_boundaries(conn, FIX / "communities_gap_overlap_4527.geojson", **kw)
    with engine.begin() as conn:
        second = import_boundaries(conn, FIX / "communities_gap_overlap_4527.geojson", **kw)
    g1, g2 = first.written["generation"], second.written["generation"]
    assert g2 != g1
    with engine.connect() as conn:
        active = dict(conn.execute(text("SELECT id, active FROM boundary_generation")).all())
        per_gen = dict(conn.execute(text(
            "SELECT generation_id, count(*) FROM community GROUP BY generation_id")).all())
        stored_report = conn.execute(text(
            "SELECT report FROM boundary_generation WHERE id = :g"), {"g": g2}).scalar_one()
    assert active == {g1: False, g2: True}
    assert per_gen == {g1: 4, g2: 4}
    assert stored_report["topology"]["overlaps"][0]["code_a"] == "C1"


def test_huge_polygon_is_stored_and_subdivided(engine, tmp_path):
    # A circle of 20,000 vertices around Tengzhou, radius ~2 km.
    n = 20_000
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    ring = np.column_stack([117.16 + 0.022 * np.cos(t), 35.08 + 0.018 * np.sin(t)])
    gdf = gpd.GeoDataFrame({"code": ["H1"], "name": ["Huge"]},
                           geometry=[shapely.Polygon(ring)], crs=4326)
    path = tmp_path / "huge.gpkg"
    gdf.to_file(path)
    with engine.begin() as conn:
        report = import_boundaries(conn, path, level="community", code_field="code",
                                   name_field="name", commit=True)
        assert report.repaired == [] and report.accepted == 1
        pieces, covered = conn.execute(text(
            "SELECT count(*), bool_or(ST_Covers(geom, ST_SetSRID(ST_MakePoint(117.16, 35.08), 4326)))"
            " FROM community_piece")).one()
    assert pieces > 20_000 / get_settings().subdivide_max_vertices
    assert covered


# --- CLI -----------------------------------------------------------------------------------


def test_cli_dry_run_json_and_error_exit(engine, monkeypatch):
    import casegrid.cli.boundaries as cli_mod
    from casegrid.cli import app

    monkeypatch.setattr(cli_mod, "engine", lambda: engine)
    runner = CliRunner()
    res = runner.invoke(app, ["boundaries", "import", str(FIX / "mixed_invalid.geojson"),
                              "--level", "community", "--code-field", "code",
                              "--name-field", "name", "--json"])
    assert res.exit_code == 0, res.output
    body = json.loads(res.stdout[res.stdout.index("{"):])
    assert body["committed"] is False and body["accepted"] == 2 and len(body["rejected"]) == 7
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM community")).scalar_one() == 0

    res = runner.invoke(app, ["boundaries", "import", str(FIX / "subdistricts_4527.geojson"),
                              "--level", "subdistrict", "--code-field", "code",
                              "--name-field", "name", "--commit"])
    assert res.exit_code == 0, res.output
    assert "committed" in res.output
    res = runner.invoke(app, ["boundaries", "list"])
    assert "subdistricts_4527.geojson" in res.output.replace("\n", "").replace("│", "").replace(" ", "")
    res = runner.invoke(app, ["boundaries", "check", "--json"])
    assert res.exit_code == 0
    check = json.loads(res.stdout)
    assert check["features"] == 2 and check["overlaps"] == [] and check["gaps"] == []

    res = runner.invoke(app, ["boundaries", "import", str(FIX / "empty.geojson"), "--level",
                              "community", "--code-field", "code", "--name-field", "name"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["boundaries", "activate", "999"])
    assert res.exit_code == 2


def test_sample_city_imports_clean_and_active_check_agrees(engine, city_engine):
    sample = PROJECT_ROOT / "data" / "boundaries"
    if not (sample / "communities.geojson").exists():
        pytest.skip("sample city files not present yet")
    with engine.begin() as conn:
        subs = import_boundaries(conn, sample / "subdistricts.geojson", level="subdistrict",
                                 code_field="code", name_field="name", commit=True)
        comms = import_boundaries(conn, sample / "communities.geojson", level="community",
                                  code_field="code", name_field="name", commit=True)
        parents = dict(conn.execute(text(
            "SELECT code, subdistrict_code FROM community WHERE generation_id = :g"),
            {"g": comms.written["generation"]}).all())
    assert subs.accepted == 5 and comms.accepted == 55
    assert comms.topology.clean
    # Parents assigned by area (no --parent-field) agree with the codes: 12-digit community
    # codes start with their 9-digit subdistrict code.
    assert all(p == c[:9] for c, p in parents.items())
    with city_engine.connect() as conn:
        active = check_active(conn)
    assert active.features == 55 and active.clean and active.parents_checked
