"""Contact details in complaint text are masked for planners and the public feed."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from cases.privacy import MASK, mask_contacts
from tests.test_intake_api import _api, interior_points  # noqa: F401 - the api fixture


@pytest.mark.parametrize(("raw", "expected"), [
    ("请回电13812345678谢谢", f"请回电{MASK}谢谢"),
    ("电话 138-1234-5678 或 +86 139 1234 5678", f"电话 {MASK} 或 {MASK}"),
    ("座机0632-5512345，(0632)5512345", f"座机{MASK}，{MASK}"),
    ("身份证370481199001011234号", f"身份证{MASK}号"),
    ("身份证37048119900101123X", f"身份证{MASK}"),
    ("邮件 li.ming@example.com.cn", f"邮件 {MASK}"),
    # Left alone: ticket numbers, amounts, dates, house numbers, a 12-digit run.
    ("工单12345202506010001，罚款2000元，2025-06-01，荆河路13号", None),
    ("订单号 138123456789", None),
    ("", None),
])
def test_mask_contacts(raw, expected):
    assert mask_contacts(raw) == (raw if expected is None else expected)


def test_planner_and_public_feed_see_the_text_masked_dispatcher_as_written(api):
    code, lon, lat = interior_points(api.engine)[0]
    said = "广场舞太吵，请回电13812345678"
    r = api.post_case({"lon": lon, "lat": lat, "category": "0599", "channel": "hotline_12345",
                       "description": said, "reporter_phone": "13812345678"})
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    as_dispatcher = api.client.get(f"/api/v1/cases/{case_id}", headers=api.headers("dispatcher")).json()
    assert as_dispatcher["description"] == said
    as_planner = api.client.get(f"/api/v1/cases/{case_id}", headers=api.headers("planner")).json()
    assert as_planner["description"] == f"广场舞太吵，请回电{MASK}"
    assert as_planner["reporter_phone"] is None
    listed = api.client.get("/api/v1/cases", headers=api.headers("planner")).json()["items"]
    assert all("13812345678" not in (c["description"] or "") for c in listed)
    popup = api.client.get(f"/maps/api/cases/{case_id}", headers=api.headers("planner"))
    assert popup.status_code == 200 and "13812345678" not in popup.text
    public = api.client.get(f"/open311/v2/requests/{r.json()['case_no']}.json")
    assert public.status_code == 200 and "13812345678" not in public.text
    assert MASK in public.json()[0]["description"]
    # Stored as written: masking is a view, never a loss.
    with api.engine.connect() as conn:
        assert conn.execute(text('SELECT description FROM "case" WHERE id = :i'),
                            {"i": case_id}).scalar_one() == said
