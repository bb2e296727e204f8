"""Free text is stored masked: what every default view shows, and the reveal that reads
the text as written (roles that may see the reporter only, each view in the history)."""

from __future__ import annotations

import random
import re

import pytest
from sqlalchemy import text

from cases import privacy
from cases.privacy import mask_contacts, masked_and_original
from tests.helpers.intake_api import interior_points


def _luhn_complete(body: str) -> str:
    """``body`` with the check digit that makes it pass the Luhn test."""
    for d in "0123456789":
        digits = body + d
        total = sum(int(c) if i % 2 == 0 else sum(divmod(int(c) * 2, 10))
                    for i, c in enumerate(reversed(digits)))
        if total % 10 == 0:
            return digits
    raise AssertionError


CARD = _luhn_complete("622202123456789012")  # 19 digits


@pytest.mark.parametrize(("raw", "expected"), [
    ("请回电13812345678谢谢", "请回电138****5678谢谢"),
    ("电话 138-1234-5678 或 +86 139 1234 5678", "电话 138-****-5678 或 +86 139 **** 5678"),
    ("手机８６１３８１２３４５６７８", "手机86138****5678"),
    ("全角１３８　１２３４　５６７８", "全角138 **** 5678"),
    ("座机0632-5512345，(0632)5512345", "座机0632-*****45，(0632)*****45"),
    ("北京010-12345678", "北京010-******78"),
    ("身份证370481199001011234号", "身份证3704**********1234号"),
    ("身份证37048119900101123X", "身份证3704**********123X"),
    ("身份证３７０４８１１９９００１０１１２３ｘ", "身份证3704**********123X"),
    (f"卡号{CARD}", f"卡号{CARD[:4]}{'*' * (len(CARD) - 8)}{CARD[-4:]}"),
    (f"卡号 {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:16]} {CARD[16:]}",
     f"卡号 {CARD[:4]} **** **** ***{CARD[15]} {CARD[16:]}"),
    ("邮件 li.ming@example.com.cn", "邮件 l***@example.com.cn"),
    ("邮件 wang＠example.cn", "邮件 w***@example.cn"),
    ("3号楼301 13812345678王先生", "3号楼301 138****5678王先生"),
    # Left alone: ticket numbers, amounts, dates, house numbers, a 12-digit run, a
    # 16-digit number failing the Luhn check, an 18-digit run that is no date of birth.
    ("工单12345202506010001，罚款2000元，2025-06-01，荆河路13号", None),
    ("订单号 138123456789", None),
    (f"订单 {CARD[:15]}{(int(CARD[15]) + 1) % 10}", None),
    ("编号 370481199013451234", None),
    ("", None),
])
def test_mask_contacts(raw, expected):
    assert mask_contacts(raw) == (raw if expected is None else expected)
    masked, original = masked_and_original(raw)
    assert original == (None if expected is None else raw)


# The scan before its speed-ups (issue 28's masking cost): the run pattern with its
# lookbehind first, and the per-character starring. The fast forms must agree with them.
_REFERENCE_RUN = re.compile(
    rf"(?<!{privacy._D}){privacy._D}(?:{privacy._SEP}?{privacy._D}){{9,}}"
    r"(?:[Xx\uff38\uff58])?(?!" + privacy._D + ")")


def _reference_span(text: str, keep: tuple[int, int]) -> str:
    total = sum(ch.isdigit() or ch in "Xx" for ch in text)
    out, seen = [], 0
    for ch in text:
        if ch.isdigit() or ch in "Xx":
            seen += 1
            out.append(ch if seen <= keep[0] or seen > total - keep[1] else "*")
        else:
            out.append(ch)
    return "".join(out)


def _random_texts(n: int, seed: int) -> list[str]:
    """Texts dense in what the scan looks at: ASCII and full-width digits, every separator,
    X check digits, @, letters and Chinese."""
    rng = random.Random(seed)
    alphabet = ("0123456789" * 4 + "０１２３４５６７８９" + " \u3000-－()（）" + "Xxｘ@＠."
                + "ab号楼电话")
    return [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) if i % 2 else
        # a mobile, ID or landline, with separators dropped in
        "电话" + "".join(c + (rng.choice(" -　") if rng.random() < 0.2 else "") for c in
                       rng.choice(("13812345678", "370481199001011234", "06325512345",
                                   "37048119900101123X"))) + rng.choice(("", "1", "号", "x"))
        for i in range(n)]


def test_fast_scan_agrees_with_the_reference():
    texts = _random_texts(4000, 28)
    for t in texts:
        assert [m.span() for m in privacy._RUN.finditer(t)] == \
            [m.span() for m in _REFERENCE_RUN.finditer(t)], t
        for m in privacy._RUN.finditer(t):  # the runs as _mask_run reads them
            run = m[0].translate(privacy._ASCII).upper().replace("Ｘ", "X")
            for keep in ((3, 4), (4, 2), (0, 0), (5, 4), (4, 4)):
                assert privacy._mask_span(run, keep) == _reference_span(run, keep), (run, keep)
        # The pre-check (fewer than 10 digits and no @) never skips a text masking changes.
        if len(re.findall(privacy._D, t)) < 10 and "@" not in t and "＠" not in t:
            assert mask_contacts(t) == t
            assert _REFERENCE_RUN.search(t) is None
    assert sum(mask_contacts(t) != t for t in texts) > 1000  # the texts do hold numbers


SAID = "我是3号楼的王先生，电话138 1234 5678，身份证370481199001011234，邮箱wang@example.cn"
MASKED = "我是3号楼的王先生，电话138 **** 5678，身份证3704**********1234，邮箱w***@example.cn"


def _history(api, case_id, role="dispatcher"):
    r = api.client.get(f"/api/v1/cases/{case_id}/history", headers=api.headers(role))
    assert r.status_code == 200, r.text
    return r.json()["events"]


def test_masked_for_everyone_by_default_revealed_to_a_dispatcher_and_recorded(api):
    code, lon, lat = interior_points(api.engine)[0]
    r = api.post_case({"lon": lon, "lat": lat, "category": "0599", "channel": "hotline_12345",
                       "description": SAID, "address": "荆河路13号 13912345678",
                       "reporter_phone": "13812345678", "reporter_name": "王先生"})
    assert r.status_code == 201, r.text
    assert r.json()["description"] == MASKED
    case_id = r.json()["id"]
    for role in ("planner", "dispatcher"):
        seen = api.client.get(f"/api/v1/cases/{case_id}", headers=api.headers(role)).json()
        assert seen["description"] == MASKED
    # The reporter's phone field is never masked; its own rule hides it from planners.
    as_dispatcher = api.client.get(f"/api/v1/cases/{case_id}", headers=api.headers("dispatcher"))
    assert as_dispatcher.json()["reporter_phone"] == "13812345678"
    as_planner = api.client.get(f"/api/v1/cases/{case_id}", headers=api.headers("planner")).json()
    assert as_planner["reporter_phone"] is None
    listed = api.client.get("/api/v1/cases", headers=api.headers("planner")).json()["items"]
    assert [c["description"] for c in listed if c["id"] == case_id] == [MASKED]
    popup = api.client.get(f"/maps/api/cases/{case_id}", headers=api.headers("planner"))
    assert popup.status_code == 200 and "1234 5678" not in popup.text

    # A planner may not reveal, and its attempt reveals nothing and records nothing.
    refused = api.client.post(f"/api/v1/cases/{case_id}/reveal", headers=api.headers("planner"))
    assert refused.status_code == 403 and "王先生" not in refused.text
    assert not [e for e in _history(api, case_id) if e["action"] == "reveal_personal_text"]

    shown = api.client.post(f"/api/v1/cases/{case_id}/reveal", headers=api.headers("dispatcher"))
    assert shown.status_code == 200, shown.text
    assert shown.json()["description"] == SAID
    assert shown.json()["address"] == "荆河路13号 13912345678"
    reveals = [e for e in _history(api, case_id) if e["action"] == "reveal_personal_text"]
    assert len(reveals) == 1
    assert reveals[0]["actor"] == "test-dispatcher" and reveals[0]["role"] == "dispatcher"
    assert reveals[0]["at"] and reveals[0]["data"]["fields"] == ["address", "description"]

    with api.engine.connect() as conn:
        stored = conn.execute(text('SELECT description, address FROM "case" WHERE id = :i'),
                              {"i": case_id}).one()
        originals = dict(conn.execute(text(
            "SELECT field, original FROM personal_text WHERE case_id = :i"), {"i": case_id}).all())
    assert stored.description == MASKED and stored.address == "荆河路13号 139****5678"
    assert originals == {"description": SAID, "address": "荆河路13号 13912345678"}


def test_a_case_without_numbers_keeps_no_original(api):
    _, lon, lat = interior_points(api.engine)[1]
    r = api.post_case({"lon": lon, "lat": lat, "category": "0504", "channel": "platform",
                       "description": "3号楼门口店外经营，2025-06-01起"})
    assert r.status_code == 201
    with api.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM personal_text")).scalar_one() == 0


def test_workflow_notes_are_stored_masked_and_revealed(api):
    _, lon, lat = interior_points(api.engine)[2]
    case_id = api.post_case({"lon": lon, "lat": lat, "category": "0504",
                             "channel": "platform", "description": "占道"}).json()["id"]
    note = "已电话联系当事人13912345678"
    r = api.client.post(f"/api/v1/cases/{case_id}/actions", headers=api.headers("supervisor"),
                        json={"action": "accept", "note": note})
    assert r.status_code == 200, r.text
    accept = next(e for e in _history(api, case_id, "planner") if e["action"] == "accept")
    assert accept["note"] == "已电话联系当事人139****5678"
    shown = api.client.post(f"/api/v1/cases/{case_id}/reveal", headers=api.headers("supervisor"))
    assert [(n["action"], n["text"]) for n in shown.json()["notes"]] == [("accept", note)]


def test_bulk_import_stores_free_text_masked_and_keeps_what_was_written(city_engine, tmp_path):
    import pandas as pd

    from bench.ledger import write_hotline_csv
    from cases.bulk_import import import_cases

    path = write_hotline_csv(tmp_path / "orders.csv", 30)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    frame.loc[3, "诉求内容"] = "楼下烧烤扰民，来电人电话１３９ ２２２２ ３３３３"
    frame.loc[7, "地址"] = "荆河路8号 联系 li@example.cn"
    frame.to_csv(path, index=False, encoding="utf-8-sig")
    report = import_cases(city_engine, path, "hotline12345_zh", commit=True)
    assert report.inserted == 30
    with city_engine.connect() as conn:
        texts = conn.execute(text('SELECT description, address FROM "case"')).all()
        originals = sorted(conn.execute(text(
            "SELECT p.field, p.original, c.external_id FROM personal_text p "
            'JOIN "case" c ON c.id = p.case_id')).all())
    assert "楼下烧烤扰民，来电人电话139 **** 3333" in {t.description for t in texts}
    assert "荆河路8号 联系 l***@example.cn" in {t.address for t in texts}
    assert [(f, o, e) for f, o, e in originals] == [
        ("address", "荆河路8号 联系 li@example.cn", frame.loc[7, "工单编号"]),
        ("description", "楼下烧烤扰民，来电人电话１３９ ２２２２ ３３３３", frame.loc[3, "工单编号"])]
    # A second run stores nothing twice, the originals included.
    import_cases(city_engine, path, "hotline12345_zh", commit=True)
    with city_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM personal_text")).scalar_one() == 2


def test_database_errors_never_spell_the_parameters(engine):
    """Statement parameters carry reporter data; an error's text (what the logs get) leaves
    them out (casegrid.db.make_engine: hide_parameters)."""
    from sqlalchemy.exc import DBAPIError

    with engine.connect() as conn, pytest.raises(DBAPIError) as err:
        conn.execute(text("SELECT 1 / 0 WHERE CAST(:phone AS text) IS NOT NULL"),
                     {"phone": "13812345678"})
    assert "division by zero" in str(err.value) and "13812345678" not in str(err.value)


def test_activity_notes_are_stored_masked(city_engine):
    from cases.activities import create_activity
    from cases.tokens import Principal

    with city_engine.begin() as conn:
        code = conn.execute(text(
            "SELECT c.code FROM community c JOIN boundary_generation g ON g.id = c.generation_id "
            "AND g.active ORDER BY c.code LIMIT 1")).scalar_one()
        made = create_activity(conn, {
            "kind": "school", "title": "垃圾分类进校园", "communities": [code],
            "started_at": "2026-11-02T09:00:00+08:00",
            "note": "联系人张老师 139-2222-3333"}, Principal(1, "disp", "dispatcher"))
        stored = conn.execute(text("SELECT note FROM activity WHERE id = :i"),
                              {"i": made["id"]}).scalar_one()
    assert made["note"] == stored == "联系人张老师 139-****-3333"
