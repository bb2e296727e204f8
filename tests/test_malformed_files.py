"""Malformed boundary files give clear errors, from the library and through the CLI (exit
code 2, a message naming the file and what to do, never a traceback).

tests/test_boundary_import.py already covers truncated/empty/missing GeoJSON, a shapefile
without .prj and the size limit at the library level; this module fills the gaps: the same
through the CLI, other formats (GeoPackage layers, shapefile parts), files that are not
geodata at all, and mixed geometry types feature by feature.
"""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import LineString, Point, box
from typer.testing import CliRunner

from casegrid.errors import ImportFailed
from casegrid.settings import get_settings
from geo.boundary_import import read_boundaries
from tests.helpers.paths import PROJECT_ROOT

FIX = PROJECT_ROOT / "tests" / "fixtures"
KW = dict(level="community", code_field="code", name_field="name")


def _squares(n: int = 2) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": [f"M{i}" for i in range(n)], "name": [f"m{i}" for i in range(n)]},
        geometry=[box(117.10 + i * 0.01, 35.10, 117.11 + i * 0.01, 35.11) for i in range(n)],
        crs=4326)


def _shapefile(tmp_path: Path, drop: str | None = None) -> Path:
    shp = tmp_path / "parts.shp"
    _squares().to_file(shp)
    if drop:
        (tmp_path / f"parts{drop}").unlink()
    return shp


# Each maker returns (path, words the message must contain).
def _truncated(tmp_path):
    text = json.dumps(json.loads(_squares().to_json()))
    path = tmp_path / "cut.geojson"
    path.write_text(text[: len(text) // 2])
    return path, ["cannot read cut.geojson"]


def _zero_bytes(tmp_path):
    path = tmp_path / "zero.geojson"
    path.write_bytes(b"")
    return path, ["zero.geojson"]


def _not_geojson(tmp_path):
    path = tmp_path / "plain.json"
    path.write_text(json.dumps({"hello": "world", "items": [1, 2, 3]}))
    return path, ["plain.json"]


def _binary_garbage(tmp_path):
    path = tmp_path / "garbage.gpkg"
    path.write_bytes(bytes(range(256)) * 40)
    return path, ["garbage.gpkg"]


def _no_prj(tmp_path):
    return _shapefile(tmp_path, ".prj"), ["--crs", ".prj"]


def _no_dbf(tmp_path):
    # Found: without the .dbf the error was "--code-field 'code' is not a field of
    # parts.shp; available fields: " (an empty list), pointing at the wrong thing.
    return _shapefile(tmp_path, ".dbf"), ["parts.shp is missing its .dbf", "attribute table"]


def _no_shx(tmp_path):
    return _shapefile(tmp_path, ".shx"), ["parts.shp is missing its .shx"]


def _empty_gpkg_layer(tmp_path):
    path = tmp_path / "empty.gpkg"
    _squares().iloc[:0].to_file(path, layer="communities")
    return path, ["no features"]


def _empty_shapefile(tmp_path):
    path = tmp_path / "none.shp"
    _squares().iloc[:0].to_file(path)
    return path, ["no features"]


def _two_layers(tmp_path):
    path = tmp_path / "two.gpkg"
    _squares().to_file(path, layer="communities")
    _squares(1).to_file(path, layer="old")
    return path, ["2 layers", "communities", "old", "--layer"]


def _folder_without_shapefile(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "readme.txt").write_text("no shapefile here")
    return folder, ["folder"]


MAKERS = [_truncated, _zero_bytes, _not_geojson, _binary_garbage, _no_prj, _no_dbf, _no_shx,
          _empty_gpkg_layer, _empty_shapefile, _two_layers, _folder_without_shapefile]


@pytest.mark.parametrize("make", MAKERS, ids=lambda f: f.__name__.strip("_"))
def test_malformed_file_fails_with_a_clear_import_failed(tmp_path, make):
    path, words = make(tmp_path)
    with pytest.raises(ImportFailed) as exc:
        read_boundaries(path, **KW)
    message = exc.value.message
    for word in words:
        assert word in message, message
    assert exc.value.field in ("path", "crs", "layer")
    assert "Traceback" not in message and len(message) < 600


def test_a_complete_shapefile_with_upper_case_parts_is_read(tmp_path):
    shp = _shapefile(tmp_path)
    for part in tmp_path.glob("parts.*"):
        if part.suffix in (".dbf", ".shx"):
            part.rename(part.with_suffix(part.suffix.upper()))
    features, report = read_boundaries(shp, **KW)
    assert report.accepted == 2 and sorted(features["code"]) == ["M0", "M1"]


@pytest.fixture
def cli(engine, monkeypatch):
    import casegrid.cli.boundaries as boundaries_cli
    from casegrid.cli import app

    monkeypatch.setattr(boundaries_cli, "engine", lambda: engine)
    runner = CliRunner()

    def run(path: Path, *extra: str):
        res = runner.invoke(app, ["boundaries", "import", str(path), "--level", "community",
                                  "--code-field", "code", "--name-field", "name", *extra])
        return res, res.output + (res.stderr if res.stderr_bytes is not None else "")

    return run


@pytest.mark.parametrize("make", [_truncated, _no_prj, _no_dbf, _empty_gpkg_layer, _two_layers,
                                  _not_geojson, _binary_garbage], ids=lambda f: f.__name__.strip("_"))
def test_cli_exits_2_with_the_message_and_no_traceback(cli, tmp_path, make):
    path, words = make(tmp_path)
    res, output = cli(path, "--commit")
    assert res.exit_code == 2, output
    flat = " ".join(output.split())
    assert "error" in flat
    for word in words:
        assert word in flat, flat
    assert "Traceback" not in output and isinstance(res.exception, SystemExit)


def test_cli_refuses_a_file_over_the_size_limit(cli, monkeypatch):
    monkeypatch.setattr(get_settings(), "max_upload_mb", 0)
    res, output = cli(FIX / "subdistricts_4527.geojson")
    flat = " ".join(output.split())
    assert res.exit_code == 2 and "over the 0 MB limit" in flat and "CASEGRID_MAX_UPLOAD_MB" in flat
    assert "Traceback" not in output


def test_cli_shapefile_without_prj_imports_once_crs_is_given(cli, tmp_path, engine):
    path, _ = _no_prj(tmp_path)
    res, output = cli(path, "--crs", "EPSG:4326", "--commit")
    assert res.exit_code == 0, output
    from sqlalchemy import text

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM community")).scalar_one() == 2


def _mixed(tmp_path) -> Path:
    square = box(117.10, 35.10, 117.11, 35.11)
    feats = [
        {"code": "P", "name": "polygon", "geometry": square.__geo_interface__},
        {"code": "MP", "name": "multipolygon", "geometry": {
            "type": "MultiPolygon", "coordinates": [box(117.12, 35.10, 117.13, 35.11).__geo_interface__["coordinates"]]}},
        {"code": "PT", "name": "point", "geometry": Point(117.1, 35.1).__geo_interface__},
        {"code": "LN", "name": "line", "geometry": LineString([(117.1, 35.1), (117.2, 35.2)]).__geo_interface__},
        {"code": "GC", "name": "collection", "geometry": {"type": "GeometryCollection", "geometries": [
            box(117.14, 35.10, 117.15, 35.11).__geo_interface__,
            LineString([(117.14, 35.1), (117.16, 35.12)]).__geo_interface__]}},
        {"code": "GL", "name": "lines only", "geometry": {"type": "GeometryCollection", "geometries": [
            LineString([(117.14, 35.1), (117.16, 35.12)]).__geo_interface__]}},
        {"code": "NG", "name": "no geometry", "geometry": None},
    ]
    path = tmp_path / "mixed.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": f["code"], "name": f["name"]},
         "geometry": f["geometry"]} for f in feats]}))
    return path


def test_mixed_geometry_types_are_sorted_feature_by_feature(tmp_path):
    features, report = read_boundaries(_mixed(tmp_path), **KW)
    assert report.read == 7
    assert sorted(features["code"]) == ["GC", "MP", "P"]
    reasons = {r.code: r.reason for r in report.rejected}
    assert set(reasons) == {"PT", "LN", "GL", "NG"}
    assert "not a polygon: Point" in reasons["PT"]
    assert "not a polygon: LineString" in reasons["LN"]
    assert "GeometryCollection of LineString" in reasons["GL"]
    assert "missing or empty geometry" in reasons["NG"]
    # The collection keeps only its polygon (0.01 x 0.01 degree), reported as repaired.
    gc = features.set_index("code").geometry["GC"]
    assert gc.geom_type == "Polygon" and gc.area == pytest.approx(0.0001, rel=1e-9)
    assert [r.code for r in report.repaired] == ["GC"]


def test_mixed_file_through_the_cli_lists_the_rejects_and_commits_the_polygons(cli, tmp_path, engine):
    res, output = cli(_mixed(tmp_path), "--commit")
    assert res.exit_code == 0, output
    flat = " ".join(output.split())
    assert "7 read, 3 accepted, 1 repaired, 4 rejected" in flat
    from sqlalchemy import text

    with engine.connect() as conn:
        codes = sorted(conn.execute(text("SELECT code FROM community")).scalars())
    assert codes == ["GC", "MP", "P"]


def test_a_file_of_only_non_polygons_commits_nothing_through_the_cli(cli, tmp_path, engine):
    path = tmp_path / "points.geojson"
    gpd.GeoDataFrame({"code": ["A", "B"], "name": ["a", "b"]},
                     geometry=[Point(117.1, 35.1), Point(117.2, 35.2)], crs=4326).to_file(path)
    res, output = cli(path, "--commit")
    flat = " ".join(output.split())
    assert res.exit_code == 2 and "no feature could be imported" in flat, flat
    from sqlalchemy import text

    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM boundary_generation")).scalar_one() == 0
