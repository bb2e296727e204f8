"""Shared by the workbench tests: accounts, a point inside a community, a case through the
intake API, the form token of a page."""

from __future__ import annotations

import re

from sqlalchemy import text

from cases.tokens import create_token
from cases.users import create_user

PASSWORD = "correct horse battery"
COMM_A = "370481001001"
COMM_B = "370481002001"


def make_users(engine) -> dict[str, str]:
    """One account per role (officer bound to COMM_A, a second officer to COMM_B); returns
    username -> display name."""
    people = {"sup": ("supervisor", "监督员李华", None), "disp": ("dispatcher", "调度员王芳", None),
              "off": ("community_officer", "岗员赵强", [COMM_A]),
              "offb": ("community_officer", "岗员钱明", [COMM_B]), "plan": ("planner", "规划孙丽", None)}
    with engine.begin() as conn:
        for username, (role, display, comms) in people.items():
            create_user(conn, username, role, PASSWORD, communities=comms, display_name=display)
    return {u: d for u, (_r, d, _c) in people.items()}


def point_in(engine, code: str) -> tuple[float, float]:
    """A point well inside the community ``code`` (active boundaries)."""
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(ST_Buffer(geom::geography, -60)::geometry) p "
            "FROM community c JOIN boundary_generation g ON g.id = c.generation_id AND g.active "
            "WHERE c.code = :c) q"), {"c": code}).one()
    return float(row[0]), float(row[1])


def intake_token(engine) -> str:
    with engine.begin() as conn:
        return create_token(conn, "intake", "hotline gateway")[1]


def case_body(lon: float, lat: float, n: int = 1, category: str = "0508") -> dict:
    return {"lon": lon, "lat": lat, "category": category, "channel": "hotline_12345",
            "external_id": f"T{n:06d}", "description": f"夜间噪音扰民 {n}",
            "address": f"北辛路{n}号", "reporter_name": "张三", "reporter_phone": "13800000000"}


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
VERSION = re.compile(r'name="version" value="(\d+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no form token in the page"
    return m.group(1)


def login(client, username: str, password: str = PASSWORD, next_url: str = "/work"):
    """Sign ``username`` in through the login form (its form token included); returns the
    response to the POST, not followed."""
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": csrf_of(page.text), "next": next_url},
                       follow_redirects=False)


def signed_in(client, username: str, password: str = PASSWORD) -> None:
    """:func:`login`, checked: the person is signed in (303 to the page asked for)."""
    r = login(client, username, password)
    assert r.status_code == 303, r.text


def status_of(engine, case_id: int) -> str:
    """The case's state as the ledger holds it."""
    with engine.connect() as conn:
        return conn.execute(text('SELECT status FROM "case" WHERE id = :id'), {"id": case_id}).scalar_one()
