"""The served app tunes the garbage collector for its own process; embedded apps do not."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from api.app import create_app


def test_only_the_server_process_app_tunes_the_collector(city_db_url):
    before = gc.get_threshold()
    try:
        with TestClient(create_app(database_url=city_db_url)) as client:
            assert client.get("/health").status_code == 200
            assert gc.get_threshold() == before
        with TestClient(create_app(database_url=city_db_url, server_process=True)) as client:
            assert client.get("/health").status_code == 200
            assert gc.get_threshold()[0] == 50_000 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)

