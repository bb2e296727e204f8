"""Real data: New York's 311 requests. The memory learns from the requests of 2013-12-25
(address, point, the city's own community board), then the requests of 2022-05-01 are
located by their address text and borough only. Among the confident answers the community
board must agree with the city's own for at least 98%: the matcher must know when it does
not know."""

from __future__ import annotations

import pandas as pd

from casegrid.csv_text import TEXT
from geo.address_file import locate_frame
from geo.address_memory import learn_file
from tests.helpers.paths import require_realdata

ADDRESS = ["Incident Address", "Borough"]
MIN_AGREEMENT = 0.98


def _with_board(path) -> pd.DataFrame:  # noqa: ANN001 - a Path
    frame = pd.read_csv(path, dtype=TEXT, keep_default_na=False)
    board = frame["Community Board"].str.strip()
    # "Unspecified BROOKLYN", "0 Unspecified": no truth to learn or to check against.
    return frame[~board.str.contains("Unspecified", na=True) & (board != "")]


def test_nyc_memory_from_one_day_locates_another(engine, tmp_path) -> None:
    teach = _with_board(require_realdata("nyc", "311_service_requests_2013-12-25.csv"))
    ask = _with_board(require_realdata("nyc", "311_service_requests_2022-05-01.csv"))
    ask = ask[ask["Incident Address"].str.strip() != ""]
    history = tmp_path / "history.csv"
    teach.to_csv(history, index=False)
    with engine.begin() as conn:
        report = learn_file(conn, history, address_cols=ADDRESS, lon_col="Longitude",
                            lat_col="Latitude", community_col="Community Board")
        assert report["learned_rows"] > 2000
        located, summary = locate_frame(conn, ask.reset_index(drop=True), ADDRESS)
    confident = located[located["community_code"].notna()]
    agree = (confident["community_code"] == confident["Community Board"].str.strip()).mean()
    share = len(confident) / len(located)
    print(f"\nNYC 311: taught {report['learned_rows']} rows of 2013-12-25; asked "
          f"{len(located)} rows of 2022-05-01 by address text; located {len(confident)} "
          f"({share:.1%}), board agreement {agree:.1%}; with suggestions only "
          f"{summary['with_suggestions']}; by rule {summary['by_rule']}")
    bad = confident[confident["community_code"] != confident["Community Board"].str.strip()]
    print(bad[["Incident Address", "Borough", "Community Board", "community_code", "rule", "confidence"]].to_string())
    assert len(confident) >= 20, "the memory located almost nothing"
    assert agree >= MIN_AGREEMENT
