"""Response templates (常用回复): reply texts per category, kept by admins and offered in the
reply form with the case's facts filled in.

A template's body may name the case's facts in braces, e.g. ``您反映的{address}{category}问题,
{post}已于{handled}处理完毕。如有疑问请致电{post_phone}。`` The fields are :data:`FIELDS`; a body
naming any other is refused when it is saved, so a reply never goes out with a hole in it.
``category_code`` ``*`` offers a template for every category.
"""

from __future__ import annotations

import string
from datetime import datetime

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput, NotFound
from cases.calendar import CITY_TZ
from cases.tokens import Principal
from geo.boundaries import boundary_name_join

ANY = "*"
FIELDS: dict[str, str] = {
    "case_no": "案件编号",
    "category": "问题类别",
    "address": "地址",
    "community": "社区",
    "post": "城市管理岗",
    "post_phone": "城市管理岗电话",
    "received": "受理日期",
    "handled": "处置日期",
    "handle_note": "处置情况",
}
MAX_BODY = 2000
MAX_TITLE = 100


def _fields_of(body: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(body) if name is not None]
    except ValueError as exc:  # an unmatched brace
        raise InvalidInput(f"body has a stray brace ({exc}); write {{field}} for a fact, "
                           "{{ or }} for a brace", field="body") from None


def check_body(body: object) -> str:
    """The body, stripped, if every ``{field}`` it names is one of :data:`FIELDS`."""
    if not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY:
        raise InvalidInput(f"body must be text of 1 to {MAX_BODY} characters", field="body")
    unknown = [f for f in _fields_of(body) if f not in FIELDS]
    if unknown:
        raise InvalidInput(f"body names {{{unknown[0]}}}, which is not a field; fields: "
                           f"{', '.join('{' + f + '}' for f in FIELDS)}", field="body")
    return body.strip()


def list_templates(conn: Connection, category_code: str | None = None) -> list[dict]:
    """Templates of one category (and those for every category), or all."""
    sql = ("SELECT id, category_code, title, body, updated_at, updated_by FROM response_template "
           "WHERE CAST(:c AS text) IS NULL OR category_code IN (:c, '*') "
           "ORDER BY category_code = '*', category_code, title")
    return [dict(r) for r in conn.execute(text(sql), {"c": category_code}).mappings()]


def save_template(conn: Connection, category_code: str, title: str, body: str,
                  actor: str) -> dict:
    """Insert a template, or replace the body of the category's template of that title."""
    if category_code != ANY and conn.execute(
            text("SELECT 1 FROM category WHERE code = :c"), {"c": category_code}).first() is None:
        raise InvalidInput(f"no category {category_code!r}; give a catalogue code or * for every "
                           "category", field="category_code")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
        raise InvalidInput(f"title must be text of 1 to {MAX_TITLE} characters", field="title")
    body = check_body(body)
    row = conn.execute(text(
        "INSERT INTO response_template (category_code, title, body, updated_at, updated_by) "
        "VALUES (:c, :t, :b, now(), :a) ON CONFLICT (category_code, title) DO UPDATE SET "
        "body = EXCLUDED.body, updated_at = now(), updated_by = EXCLUDED.updated_by "
        "RETURNING id, category_code, title, body, updated_at, updated_by"),
        {"c": category_code, "t": title.strip(), "b": body, "a": actor}).mappings().one()
    return dict(row)


def delete_template(conn: Connection, template_id: int) -> None:
    """Remove a template (404 when there is none of that id)."""
    if not conn.execute(text("DELETE FROM response_template WHERE id = :i"),
                        {"i": template_id}).rowcount:
        raise NotFound(f"no response template {template_id}", field="id")


def _day(value: datetime | None) -> str:
    return value.astimezone(CITY_TZ).strftime("%Y年%m月%d日") if value else ""


def case_facts(conn: Connection, case_id: int, actor: Principal) -> dict[str, str]:
    """The :data:`FIELDS` of a case, as text (404 if the actor may not see it)."""
    from cases.workflow import load_case

    case = load_case(conn, case_id, actor)
    row = conn.execute(text(
        f"""SELECT cat.name_zh AS category, cm.name AS community, p.name AS post,
                  p.phone AS post_phone,
                  (SELECT note FROM case_event e WHERE e.case_id = :id AND e.action = 'handle'
                   ORDER BY e.at DESC, e.id DESC LIMIT 1) AS handle_note
           FROM category cat
           LEFT JOIN community_post p ON p.id = :post
           {boundary_name_join("community", ":comm", "cm")}
           WHERE cat.code = :cat"""),
        {"id": case_id, "post": case["post_id"], "comm": case["community_code"],
         "cat": case["category_code"]}).mappings().one()
    facts = {"case_no": case["case_no"], "address": case["address"] or "",
             "received": _day(case["received_at"]), "handled": _day(case["handled_at"]),
             **{k: row[k] or "" for k in ("category", "community", "post", "post_phone",
                                          "handle_note")}}
    return {k: facts[k] for k in FIELDS}


def drafts(conn: Connection, case_id: int, actor: Principal) -> list[dict]:
    """The templates offered for a case, each with its text filled in from the case."""
    from cases.workflow import load_case

    case = load_case(conn, case_id, actor)
    facts = case_facts(conn, case_id, actor)
    return [{"id": t["id"], "title": t["title"], "category_code": t["category_code"],
             "text": t["body"].format_map(facts)}
            for t in list_templates(conn, case["category_code"])]
