"""The workbench over HTTP (no browser): sign-in, sessions, form tokens, scope, actions
naming the person, the 409 page, queues, search, the JSON queues and the user CLI.

The whole loop in a real browser is tests/test_workbench_browser.py.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from typer.testing import CliRunner

from cases.users import SessionPolicy, session_for, sign_in
from tests.helpers.cli import cli_database
from tests.helpers.workbench_helpers import (
    COMM_A,
    PASSWORD,
    VERSION,
    csrf_of,
    login,
)


def version_of(engine, case_id: int) -> tuple[str, int]:
    with engine.connect() as conn:
        row = conn.execute(text('SELECT status, version FROM "case" WHERE id = :id'), {"id": case_id}).one()
    return row[0], row[1]


def test_sign_in_sets_a_safe_session_and_wrong_password_sets_none(wb):
    r = login(wb, "sup", "not the password")
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    assert "casegrid_session" not in r.headers.get("set-cookie", "")
    r = login(wb, "nobody", "whatever at all")
    assert r.status_code == 401  # same answer as a wrong password
    r = login(wb, "sup")
    assert r.status_code == 303 and r.headers["location"] == "/work"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("casegrid_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = wb.get("/work")
    assert home.status_code == 200 and "监督员李华" in home.text and "待审核" in home.text
    # the form token is not the cookie, and the password is stored as argon2id only
    assert csrf_of(home.text) not in cookie
    with wb.app.state.engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM app_user WHERE username='sup'")).scalar()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


def test_logged_out_request_goes_to_login_and_comes_back(wb):
    cid = wb.ids[0]
    r = wb.get(f"/work/cases/{cid}?lang=en", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    page = wb.get(r.headers["location"])
    assert "Sign in" in page.text  # the page it was going to is English: so is the form
    target = re.search(r'name="next" value="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert target == f"/work/cases/{cid}?lang=en"
    r = login(wb, "disp", next_url=target)
    assert r.status_code == 303 and r.headers["location"] == target
    assert "北辛路1号" in wb.get(target).text
    # never sent to another site after signing in
    wb.cookies.clear()
    r = login(wb, "disp", next_url="//evil.example/x")
    assert r.headers["location"] == "/work"


def test_logout_revokes_the_session(wb):
    login(wb, "disp")
    home = wb.get("/work")
    secret = wb.cookies.get("casegrid_session")
    r = wb.post("/logout", data={"csrf_token": csrf_of(home.text)}, follow_redirects=False)
    assert r.status_code == 303
    with wb.app.state.engine.connect() as conn:
        assert session_for(conn, secret, SessionPolicy()) is None
    wb.cookies.set("casegrid_session", secret)  # replaying the old cookie does not work
    assert wb.get("/work", follow_redirects=False).status_code == 303


def test_form_without_token_is_refused_and_changes_nothing(wb, city_engine):
    cid = wb.ids[0]
    login(wb, "sup")
    before = version_of(city_engine, cid)
    r = wb.post(f"/work/cases/{cid}/actions/accept", data={"version": str(before[1])})
    assert r.status_code == 403
    r = wb.post(f"/work/cases/{cid}/actions/accept", data={"version": str(before[1]), "csrf_token": "forged"})
    assert r.status_code == 403
    assert version_of(city_engine, cid) == before
    # a login form posted without its token is refused too
    wb.cookies.clear()
    r = wb.post("/login", data={"username": "sup", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "casegrid_session" not in r.headers.get("set-cookie", "")


def test_officer_gets_the_same_404_for_another_community_as_for_nothing(wb):
    own, other = wb.ids
    login(wb, "off")
    assert wb.get(f"/work/cases/{own}").status_code == 200
    theirs = wb.get(f"/work/cases/{other}")
    missing = wb.get("/work/cases/999999")
    assert theirs.status_code == missing.status_code == 404
    assert "北辛路2号" not in theirs.text
    norm = lambda html: re.sub(r"\d+", "N", re.sub(r'value="[^"]+"', "", html))  # noqa: E731
    assert norm(theirs.text) == norm(missing.text)
    # and cannot act on it either
    r = wb.post(f"/work/cases/{other}/actions/handle", data={"csrf_token": csrf_of(wb.get("/work").text),
                                                               "version": "1", "note": "x"})
    assert r.status_code == 404


def test_actions_name_the_person_and_open_the_next_case(wb, city_engine):
    first, second = wb.ids
    login(wb, "sup")
    queue = wb.get("/work/queue/review")
    assert queue.status_code == 200 and "CG" in queue.text
    page = wb.get(f"/work/cases/{first}?queue=review")
    assert f'action="/work/cases/{first}/actions/accept"' in page.text
    assert "actions/dispatch" not in page.text  # only this person's actions
    r = wb.post(f"/work/cases/{first}/actions/accept",
                data={"csrf_token": csrf_of(page.text), "version": VERSION.search(page.text).group(1),
                      "opened_at": "", "queue": "review", "note": "属实"}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/work/cases/{second}?queue=review")  # the next case
    assert "已完成" in wb.get(r.headers["location"]).text
    with city_engine.connect() as conn:
        ev = conn.execute(text("SELECT e.actor, e.role, u.username FROM case_event e JOIN app_user u "
                               "ON u.id = e.user_id WHERE e.case_id = :c AND e.action = 'accept'"),
                          {"c": first}).one()
    assert tuple(ev) == ("监督员李华", "supervisor", "sup")
    assert "监督员李华" in wb.get(f"/work/cases/{first}").text  # on the timeline


def test_case_page_names_the_current_deadline_and_offers_acknowledge_once(wb, city_engine):
    """The head names the step the deadline belongs to (审核时限 for a new case, 处置时限 once
    dispatched); an officer gets 签收 as a one-tap first action until it is done; actions
    without a form of their own wait under "more actions"."""
    from cases.tokens import Principal
    from cases.workflow import apply_action

    cid = wb.ids[0]
    login(wb, "sup")
    assert "审核时限" in wb.get(f"/work/cases/{cid}").text
    with city_engine.begin() as conn:
        apply_action(conn, cid, "accept", {}, Principal(None, "监督员周", "supervisor"), 1)
        apply_action(conn, cid, "dispatch", {}, Principal(None, "调度员吴", "dispatcher"), 2)
    wb.cookies.clear()
    login(wb, "off")
    page = wb.get(f"/work/cases/{cid}").text
    assert "处置时限" in page and "审核时限" not in page
    actions = page[page.index('id="actions"'):]
    assert actions.index('id="form-acknowledge"') < actions.index('id="form-handle"')
    ack = actions[actions.index('id="form-acknowledge"'):]
    assert "<textarea" not in ack[:ack.index("</form>")]  # one tap, nothing to type
    r = wb.post(f"/work/cases/{cid}/actions/acknowledge",
                data={"csrf_token": csrf_of(page), "version": VERSION.search(page).group(1)},
                follow_redirects=False)
    assert r.status_code == 303
    page = wb.get(f"/work/cases/{cid}").text
    assert 'id="form-acknowledge"' not in page
    wb.cookies.clear()
    login(wb, "sup")
    page = wb.get(f"/work/cases/{cid}").text
    more = page[page.index('<details class="more"'):]
    assert 'id="form-publish_description"' in more  # no form of its own yet: folded


def test_invalid_form_is_shown_again_with_the_field_error(wb, city_engine):
    cid = wb.ids[0]
    login(wb, "sup")
    page = wb.get(f"/work/cases/{cid}")
    r = wb.post(f"/work/cases/{cid}/actions/reject",
                data={"csrf_token": csrf_of(page.text), "version": "1", "reason": "invalid", "note": ""})
    assert r.status_code == 422
    assert 'aria-invalid="true"' in r.text and "note is required" in r.text
    assert version_of(city_engine, cid) == ("registered", 1)


def test_stale_form_shows_what_changed(wb, city_engine):
    cid = wb.ids[0]
    login(wb, "sup")
    page = wb.get(f"/work/cases/{cid}")
    opened = re.search(r'name="opened_at" value="([^"]+)"', page.text).group(1)
    token = csrf_of(page.text)
    # someone else accepts it meanwhile (through the API, as another supervisor would)
    with city_engine.begin() as conn:
        from cases.tokens import Principal
        from cases.workflow import apply_action

        apply_action(conn, cid, "reject", {"reason": "invalid", "note": "重复来电"},
                     Principal(None, "监督员周", "supervisor"), 1)
    r = wb.post(f"/work/cases/{cid}/actions/accept",
                data={"csrf_token": token, "version": "1", "opened_at": opened})
    assert r.status_code == 409
    assert "此案件在您打开后已被修改" in r.text and "监督员周" in r.text and "重复来电" in r.text
    assert version_of(city_engine, cid) == ("rejected", 2)


def test_repeated_failures_are_slowed(wb):
    for _ in range(5):
        assert login(wb, "disp", "wrong password!").status_code == 401
    r = login(wb, "disp", "wrong password!")
    assert r.status_code == 429 and "秒后再试" in r.text
    # even the right password waits its turn
    assert login(wb, "disp").status_code == 429


def test_disabled_account_loses_its_session(wb, city_engine):
    from cases.users import disable_user

    login(wb, "disp")
    assert wb.get("/work").status_code == 200
    with city_engine.begin() as conn:
        disable_user(conn, "disp")
    assert wb.get("/work", follow_redirects=False).status_code == 303
    assert login(wb, "disp").status_code == 401


def test_search_and_queues_json(wb):
    login(wb, "disp")
    r = wb.get("/work/search?q=T000001", follow_redirects=False)  # a hotline ticket: one hit
    assert r.status_code == 303 and r.headers["location"] == f"/work/cases/{wb.ids[0]}"
    assert "北辛路2号" in wb.get("/work/search?q=北辛路").text
    with wb.app.state.engine.begin() as conn:
        from cases.tokens import create_token

        tok = create_token(conn, "supervisor", "s")[1]
    r = wb.get("/api/v1/queues", headers={"Authorization": f"Bearer {tok}"})
    review = next(q for q in r.json()["queues"] if q["name"] == "review")
    assert review["count"] == 2
    rows = wb.get("/api/v1/queues/review", headers={"Authorization": f"Bearer {tok}"}).json()
    assert [row["id"] for row in rows["items"]] == wb.ids  # soonest due first


def test_search_by_phone_follows_who_may_see_it(wb, city_engine):
    """A phone typed in any spacing finds the reporter's cases for the people who may see
    the phone (an officer only its own community's); a planner's phone search finds
    nothing, in the page and in the JSON; case numbers in lower case are found too."""
    from cases.tokens import create_token

    with city_engine.begin() as conn:
        tokens = {role: create_token(conn, role, role)[1] for role in ("dispatcher", "planner")}
        case_no = conn.execute(text('SELECT case_no FROM "case" WHERE id = :i'),
                               {"i": wb.ids[1]}).scalar_one()
    for typed in ("13800000000", "138 0000 0000", "+86 138-0000-0000"):
        r = wb.get("/api/v1/search", params={"q": typed},
                   headers={"Authorization": f"Bearer {tokens['dispatcher']}"})
        assert sorted(i["id"] for i in r.json()["items"]) == sorted(wb.ids), typed
    r = wb.get("/api/v1/search", params={"q": "13800000000"},
               headers={"Authorization": f"Bearer {tokens['planner']}"})
    assert r.status_code == 200 and r.json()["items"] == []
    r = wb.get("/api/v1/search", params={"q": "x" * 101},
               headers={"Authorization": f"Bearer {tokens['dispatcher']}"})
    assert r.status_code == 422 and "q" in r.text

    login(wb, "off")  # the officer of COMM_A: one of the reporter's two cases is theirs
    r = wb.get("/work/search", params={"q": "138-0000-0000"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/work/cases/{wb.ids[0]}"
    wb.cookies.clear()
    login(wb, "plan")
    assert "北辛路" not in wb.get("/work/search", params={"q": "13800000000"}).text
    wb.cookies.clear()
    login(wb, "disp")
    page = wb.get("/work/search", params={"q": "13800000000"}).text
    assert "北辛路1号" in page and "北辛路2号" in page
    r = wb.get("/work/search", params={"q": case_no.lower()}, follow_redirects=False)
    assert r.headers["location"] == f"/work/cases/{wb.ids[1]}"
    r = wb.get("/work/search", params={"q": "辛路2号"}, follow_redirects=False)  # address words
    assert r.headers["location"] == f"/work/cases/{wb.ids[1]}"


def test_maps_take_the_session_and_link_to_the_case_page(wb):
    cid = wb.ids[0]
    assert wb.get("/maps/dispatch", follow_redirects=False).status_code == 303
    assert wb.get(f"/maps/api/cases/{cid}").status_code == 401
    login(wb, "disp")
    assert wb.get("/maps/dispatch").status_code == 200
    assert wb.get(f"/maps/api/cases/{cid}").json()["record_url"] == f"/work/cases/{cid}"


def test_user_cli(city_db_url, city_engine, monkeypatch):
    from casegrid.cli import app

    with cli_database(monkeypatch, city_db_url):
        runner = CliRunner()
        r = runner.invoke(app, ["user", "create", "wang", "--role", "community_officer", "--community",
                                COMM_A, "--display-name", "王五", "--password-stdin"],
                          input="a long enough secret\n")
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["user", "create", "li", "--role", "community_officer", "--password-stdin"],
                          input="a long enough secret\n")
        assert r.exit_code == 2 and "community" in r.output
        r = runner.invoke(app, ["user", "create", "short", "--role", "dispatcher", "--password-stdin"],
                          input="short\n")
        assert r.exit_code == 2 and "password" in r.output
        r = runner.invoke(app, ["user", "list"])
        assert "wang" in r.output and "王五" in r.output and "secret" not in r.output
        with city_engine.begin() as conn:
            secret, _ = sign_in(conn, "wang", "a long enough secret", "t", SessionPolicy())
        r = runner.invoke(app, ["user", "reset-password", "wang", "--password-stdin"],
                          input="another long secret\n")
        assert r.exit_code == 0, r.output
        with city_engine.begin() as conn:
            assert session_for(conn, secret, SessionPolicy()) is None  # reset ends sessions
            sign_in(conn, "wang", "another long secret", "t", SessionPolicy())
        r = runner.invoke(app, ["user", "disable", "wang"])
        assert r.exit_code == 0, r.output
