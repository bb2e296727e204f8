"""`GET /api/v1/cases?overdue=true` and each case's due status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.helpers.intake_api import interior_points


def _submit(api, lon, lat, n):
    return api.post_case({
        "lon": lon, "lat": lat, "category": "0102", "channel": "patrol",
        "description": f"exposed garbage {n}", "reported_at": datetime.now(UTC).isoformat(),
    }).json()


def test_overdue_filter_and_due_status(api):
    (_, lon, lat), *_ = interior_points(api.engine)
    fresh, late, closed = (_submit(api, lon, lat, n) for n in range(3))
    assert fresh["current_due_at"] is not None
    assert fresh["due_status"] in ("on_time", "due_soon")
    past = datetime.now(UTC) - timedelta(hours=3)
    with api.engine.begin() as conn:
        conn.execute(text('UPDATE "case" SET current_due_at = :t WHERE id IN (:a, :b)'),
                     {"t": past, "a": late["id"], "b": closed["id"]})
        conn.execute(text('UPDATE "case" SET closed_at = now(), status = \'closed\' WHERE id = :b'),
                     {"b": closed["id"]})
    headers = api.headers("dispatcher")
    got = api.client.get("/api/v1/cases", params={"overdue": "true"}, headers=headers).json()
    assert [c["id"] for c in got["items"]] == [late["id"]]
    assert got["items"][0]["due_status"] == "overdue"
    others = api.client.get("/api/v1/cases", params={"overdue": "false"}, headers=headers).json()
    assert {c["id"] for c in others["items"]} == {fresh["id"], closed["id"]}
    one = api.client.get(f"/api/v1/cases/{closed['id']}", headers=headers).json()
    assert one["due_status"] == "done_late"


def test_overdue_must_be_a_boolean(api):
    r = api.client.get("/api/v1/cases", params={"overdue": "maybe"}, headers=api.headers("dispatcher"))
    assert r.status_code == 422
    assert r.json()["field"] == "overdue"
