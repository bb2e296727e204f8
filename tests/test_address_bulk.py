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


def _varied_sample(conn, features: list[dict]) -> list[str]:  # noqa: ANN001 - a Connection
    """Addresses of every kind the matcher answers, in several spoken forms, with repeats;
    teaches the memory a few addresses first (one in one community, one in two, house
    numbers of a street on one side)."""
    from geo.address_memory import learn_placement

    names = [f["properties"]["name"] for f in features]
    compounds = [f for f in features if f["properties"]["kind"] == "compound"][:60:3]
    communities = conn.execute(text(
        "SELECT c.code, c.name, ST_X(ST_PointOnSurface(c.geom)) AS lon,"
        " ST_Y(ST_PointOnSurface(c.geom)) AS lat FROM community c"
        " JOIN boundary_generation g ON g.id = c.generation_id AND g.active"
        " ORDER BY c.code LIMIT 3")).all()
    a, b, _c = communities
    learn_placement(conn, "张记烧烤店", a.lon, a.lat, a.code)
    learn_placement(conn, "李记面馆", a.lon, a.lat, a.code)
    learn_placement(conn, "李记面馆", b.lon, b.lat, b.code)
    for number in (20, 24, 60):
        learn_placement(conn, f"新华巷{number}号", a.lon + number * 1e-6, a.lat, a.code)
    learn_placement(conn, names[names.index(compounds[1]["properties"]["name"])],
                    b.lon, b.lat, b.code)  # the memory disagrees with the gazetteer
    out = []
    for i, f in enumerate(compounds):
        name = f["properties"]["name"]
        typo = name[0] + ("丙" if name[1] != "丙" else "丁") + name[2:]
        out += [name, f"滕州市{name}{i + 1}号楼东侧", f"{name}往北50米", typo, f"{name}对面"]
        if f["properties"]["aliases"]:
            out.append(f["properties"]["aliases"])
    out += ["幸福小区", "北辛街道幸福小区", "善国路", "塔寺路", "解放路", "荆河路100号", "滕州市荆河路一百号",
            "荆和路100号", "荆河路5000号", "善国路与解放路交叉口往北50米", "善国路解放路口",
            "荆河路与解放路交叉口", f"荆河街道{a.name}", f"{b.name}", "张记烧烤店门口",
            "李记面馆", "新华巷22号", "新华巷40号", "新华巷200号", "某某烧烤店门口",
            "952 East 58th St, Brooklyn", "没人知道的地方", "张记烧烤"]
    out += [f["properties"]["name"] for f in features if f["properties"]["kind"] == "landmark"]
    return out + out[::7]  # repeats, in other chunks


@pytest.mark.parametrize("rebuild", [False, True])
def test_bulk_answers_are_match_address_answers(city_engine, tmp_path, rebuild) -> None:
    """Never confidently wrong holds in bulk as in a single lookup: each address-only row
    gets exactly what ``match_address`` answers for its address alone (point, community,
    rule, confidence, why and its reasons, suggestions), on both insert paths, across
    chunks."""
    from geo.address_match import match_address

    features = json.loads(GAZETTEER_FILE.read_text(encoding="utf-8"))["features"]
    with city_engine.begin() as conn:
        addresses = _varied_sample(conn, features)
    src = tmp_path / "varied.csv"
    _write(src, [(f"V-{i}", a, "", "") for i, a in enumerate(addresses)])
    report = import_cases(city_engine, src, "hotline12345_zh", commit=True,
                          rebuild_indexes=rebuild, chunk_rows=17)
    assert report.inserted == len(addresses)
    with city_engine.connect() as conn:
        stored = {r["external_id"]: r for r in conn.execute(text(
            'SELECT c.external_id, c.address, c.route_rule, c.community_code,'
            ' ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.route_alternates,'
            ' l.rule, l.confidence, l.normalized, l.why, l.reasons, l.suggestions'
            ' FROM "case" c JOIN case_locate l ON l.case_id = c.id')).mappings()}
        assert len(stored) == len(addresses)
        rules = set()
        for i, address in enumerate(addresses):
            got, m = stored[f"V-{i}"], match_address(conn, address)
            want = m.to_dict()
            assert got["address"] == address
            assert (got["rule"], got["confidence"], got["normalized"], got["why"]) == (
                want["rule"], want["confidence"], want["normalized"], want["why"]), address
            assert got["reasons"] == want["reasons"], address
            assert got["suggestions"] == want["suggestions"], address
            if m.located:
                assert got["route_rule"] == m.rule and got["community_code"] == m.community_code
                assert got["lon"] == pytest.approx(m.lon, abs=1e-9), address
                assert got["lat"] == pytest.approx(m.lat, abs=1e-9), address
            else:
                assert got["route_rule"] == "unlocated" and got["lon"] is None, address
                assert got["route_alternates"] == want["suggestions"], address
            rules.add(m.rule if m.located else ("suggestions" if m.suggestions else "none"))
    # The sample is varied: every kind of answer is compared.
    # (A road alone is in several communities here: suggestions, among the compared.)
    assert {"address_compound", "address_crossing", "address_doorplate", "address_memory", "address_community", "suggestions", "none"} - rules == set()


def test_answers_do_not_depend_on_the_batch(city_engine) -> None:
    """An address gets the same answer whatever is matched with it, in whatever order (a
    bulk import matches each chunk's new addresses together): addresses that share a
    signature (one place said with another building or phrase) share the names' options,
    not the memory's answer for the first of them ("荆河名苑", taught in another community,
    must not turn "滕州市荆河名苑2号楼东侧" ambiguous)."""
    from geo.address_match import match_address, match_addresses

    features = json.loads(GAZETTEER_FILE.read_text(encoding="utf-8"))["features"]
    with city_engine.begin() as conn:
        addresses = list(dict.fromkeys(_varied_sample(conn, features)))
        alone = {a: match_address(conn, a).to_dict() for a in addresses}
        for batch in (addresses, addresses[::-1]):
            for a, m in zip(batch, match_addresses(conn, batch), strict=True):
                assert m.to_dict() == alone[a], a


def test_a_failure_in_the_matching_thread_leaves_nothing(city_engine, tmp_path,
                                                          monkeypatch) -> None:
    """An import given an engine matches in a thread of its own, on a connection of its
    own; an error there is raised by the import, which then stored nothing, and that
    connection is back in the pool."""
    import threading

    import geo.address_bulk as address_bulk

    real, threads = address_bulk.match_addresses, []

    def failing_second_time(conn, addresses):  # noqa: ANN001 - match_addresses' arguments
        threads.append(threading.current_thread())
        if len(threads) == 2:
            raise RuntimeError("simulated matcher failure")
        return real(conn, addresses)

    monkeypatch.setattr(address_bulk, "match_addresses", failing_second_time)
    src = tmp_path / "two_chunks.csv"
    _write(src, [(f"F-{i}", f"荆河路{i}号", "", "") for i in range(1, 9)])
    with pytest.raises(RuntimeError, match="simulated matcher failure"):
        import_cases(city_engine, src, "hotline12345_zh", commit=True, chunk_rows=4)
    assert len(threads) == 2 and threading.main_thread() not in threads
    assert city_engine.pool.checkedout() == 0
    with city_engine.connect() as conn:
        assert conn.execute(text('SELECT count(*) FROM "case"')).scalar_one() == 0
        assert conn.execute(text("SELECT count(*) FROM case_locate")).scalar_one() == 0
        assert conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'")).scalar_one() == 0


def test_inside_a_callers_transaction_its_own_memory_is_used(city_engine, tmp_path) -> None:
    """Given the caller's connection, the import matches on it: what the caller taught the
    memory in its transaction, not committed yet, locates the rows (a connection of the
    import's own would not see it)."""
    from geo.address_memory import learn_placement

    src = tmp_path / "taught.csv"
    _write(src, [("M-1", "张记烧烤店", "", "")])
    with city_engine.begin() as conn:
        c = conn.execute(text(
            "SELECT c.code, ST_X(ST_PointOnSurface(c.geom)) AS lon,"
            " ST_Y(ST_PointOnSurface(c.geom)) AS lat FROM community c"
            " JOIN boundary_generation g ON g.id = c.generation_id AND g.active"
            " ORDER BY c.code LIMIT 1")).one()
        learn_placement(conn, "张记烧烤店", c.lon, c.lat, c.code)
        report = import_cases(conn, src, "hotline12345_zh", commit=True)
        assert report.routed == {"address_memory": 1}
        assert conn.execute(text(
            "SELECT community_code FROM \"case\" WHERE external_id = 'M-1'")).scalar_one() == c.code


def test_the_matchers_connection_is_opened_only_for_address_only_rows(city_engine,
                                                                       tmp_path) -> None:
    """An import that owns its transaction opens the matcher's own connection on the first
    chunk with address-only rows: a file of coordinates takes one connection from the pool,
    one with a single address-only row in its last chunk two."""
    from sqlalchemy import event

    checkouts = []

    def count(*_pool_event_arguments) -> None:
        checkouts.append(1)

    placed = [(f"P-{i}", "滕州市荆河街道文昌社区文化广场", "117.165711", "35.081305")
              for i in range(1, 9)]
    coordinates, mixed = tmp_path / "coordinates.csv", tmp_path / "mixed.csv"
    _write(coordinates, placed)
    _write(mixed, [(f"X-{t}", a, lon, lat) for t, a, lon, lat in placed]
           + [("X-last", "善国路与解放路交叉口往北50米", "", "")])
    event.listen(city_engine, "checkout", count)
    try:
        report = import_cases(city_engine, coordinates, "hotline12345_zh", commit=True,
                              chunk_rows=4)
        alone = len(checkouts)
        checkouts.clear()
        report_mixed = import_cases(city_engine, mixed, "hotline12345_zh", commit=True,
                                    chunk_rows=4)
    finally:
        event.remove(city_engine, "checkout", count)
    assert report.inserted == 8 and report_mixed.routed["address_crossing"] == 1
    assert alone == 1
    assert len(checkouts) == 2
    assert city_engine.pool.checkedout() == 0
