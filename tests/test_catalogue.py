"""The category catalogue: seeded by migration 0002 with the national codes DOMAIN.md lists
and the city extensions, looked up with helpful errors, served by the API."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import text

from casegrid.errors import InvalidInput
from casegrid.settings import Settings
from cases.catalogue import duplicate_params, get_category, list_categories

# From ../shared/DOMAIN.md ("Category codes"), plus the social-life noise extension.
DOMAIN_CODES = {"0101", "0102", "0103", "0104", "0106", "0201", "0301", "0302", "0304", "0406",
                "0501", "0504", "0505", "0506", "0507", "0508", "0510"}


def test_seed_holds_the_domain_codes_and_social_life_noise(engine):
    with engine.connect() as conn:
        cats = list_categories(conn)
    codes = [c["code"] for c in cats]
    assert codes == sorted(codes)
    assert DOMAIN_CODES | {"0599"} <= set(codes)
    by_code = {c["code"]: c for c in cats}
    assert by_code["0599"]["name_zh"] == "社会生活噪音扰民"
    assert by_code["0101"]["name_zh"] == "私搭乱建"
    assert by_code["0504"]["name_zh"] == "店外经营"
    for c in cats:
        assert re.fullmatch(r"[0-9]{4}", c["code"])
        assert c["name_zh"] and c["name_en"] and c["major_zh"] and c["major_en"]
        assert re.search(r"[\u4e00-\u9fff]", c["name_zh"]), c
        assert c["name_en"].isascii(), c
    # one major class name per 2-digit prefix
    majors = {}
    for c in cats:
        majors.setdefault(c["code"][:2], set()).add(c["major_en"])
    assert all(len(v) == 1 for v in majors.values()), majors


def test_get_category_explains_how_to_find_valid_codes(engine):
    with engine.begin() as conn:
        assert get_category(conn, " 0599 ")["name_en"].startswith("Social-life noise")
        for bad in ("0999", "noise", "", None):
            with pytest.raises(InvalidInput) as err:
                get_category(conn, bad)
            assert err.value.field == "category"
            assert "/api/v1/categories" in err.value.message
        conn.execute(text("UPDATE category SET active = false WHERE code = '0201'"))
        with pytest.raises(InvalidInput, match="retired"):
            get_category(conn, "0201")
        assert "0201" not in {c["code"] for c in list_categories(conn)}
        assert "0201" in {c["code"] for c in list_categories(conn, include_inactive=True)}


def test_duplicate_parameters_use_overrides_else_settings(engine):
    settings = Settings(duplicate_radius_m=75, duplicate_window_days=3)
    with engine.connect() as conn:
        noise = get_category(conn, "0599")
        shops = get_category(conn, "0504")
        building = get_category(conn, "0101")
    assert duplicate_params(noise, settings) == (100.0, 1)
    assert duplicate_params(shops, settings) == (75.0, 3)   # no override
    assert duplicate_params(building, settings) == (30.0, 30)


def test_categories_endpoint_serves_the_catalogue(api):
    r = api.client.get("/api/v1/categories", headers=api.headers("planner"))
    assert r.status_code == 200
    with api.engine.connect() as conn:
        stored = set(conn.execute(text("SELECT code FROM category WHERE active")).scalars())
    assert {c["code"] for c in r.json()} == stored
