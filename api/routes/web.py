"""The workbench over HTTP: sign-in, the home page, work lists and the case page.

* ``GET|POST /login``, ``POST /logout``: people's sessions (:mod:`api.web_session`).
* ``GET /work``: the person's queues with counts; ``GET /work/search?q=``.
* ``GET /work/queue/{name}``: a queue, soonest due first, filtered and paged;
  ``POST /work/queue/{name}/bulk``: one action on several selected cases.
* ``GET /work/cases/{id}``: the case page; ``POST /work/cases/{id}/actions/{action}``:
  an action through :func:`cases.workflow.apply_action`; ``GET
  /work/cases/{id}/move-preview``: where a dragged marker would route.

Every changing form carries the session's form token (403 and nothing changed without it).
Pages render HTML errors; rules and queries all come from ``cases/`` and ``geo/``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from api.deps import ConnDep, calendar_today
from api.errors import status_for
from api.root_path import app_path, root_of
from api.uploads import multipart_variant
from api.web_session import (
    SESSION_COOKIE,
    WebSession,
    optional_session,
    safe_next,
    session_policy,
    set_session_cookie,
)
from casegrid.errors import CasegridError, Conflict, FileRefused, InvalidInput, NotFound
from cases import attachments, filters, queries, queues, reference, replies, search, users, workflow
from cases.calendar_horizon import current_horizon
from cases.deadlines import due_summary
from cases.images import Prepared
from cases.users import Session
from cases.vocabulary import CHANNELS, CLOSED_STATES
from web import case_page, evidence, forms, i18n, placement
from web.render import render, working_left

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "casegrid_login_csrf"
NARROW = ("subdistrict", "community", "category", "channel", "from", "to")
_CASE_NO = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


# -- helpers ---------------------------------------------------------------------------------


def _lang(request: Request, form: dict | None = None) -> str:
    return i18n.check_lang((form or {}).get("lang") or request.query_params.get("lang"))


def _lang_url(request: Request, lang: str) -> str:
    """This page in the other language."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]
    if lang != "en":
        params.append(("lang", "en"))
    from urllib.parse import urlencode

    return request.url.path + ("?" + urlencode(params) if params else "")


def _html(request: Request, template: str, lang: str, session: Session | None, status: int = 200,
          **context) -> HTMLResponse:
    body = render(template, lang, root=root_of(request.scope),
                  who=session.principal if session else None,
                  csrf=session.csrf_token if session else "", lang_url=_lang_url(request, lang),
                  **context)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _error_page(request: Request, lang: str, session: Session | None, exc: CasegridError,
                nav=None) -> HTMLResponse:  # noqa: ANN001
    t = i18n.strings(lang)
    status = status_for(exc)
    heading = {404: t["not_found"], 403: t["forbidden"]}.get(status, t["error"])
    return _html(request, "error.html", lang, session, status=status, heading=heading,
                 message=exc.message, nav=nav)


def _csrf_refused(request: Request, lang: str, session: Session | None) -> HTMLResponse:
    t = i18n.strings(lang)
    return _html(request, "error.html", lang, session, status=403, heading=t["forbidden"],
                 message=t["csrf_failed"])


def _narrow(params) -> tuple[filters.CaseFilters, dict]:  # noqa: ANN001 - a Mapping
    """A person's own filters of a queue (and the same as query parameters to carry on)."""
    chosen = {k: (params.get(k) or "").strip() for k in NARROW}
    to = filters.parse_time(chosen["to"], "to")
    if to is not None and len(chosen["to"]) == 10:
        to = filters.day_window(None, to.date())[1]  # "to" a day includes that day
    f = filters.CaseFilters(
        subdistrict=filters.split_list(chosen["subdistrict"]),
        community=filters.split_list(chosen["community"]),
        category=filters.split_list(chosen["category"]),
        channel=filters.split_list(chosen["channel"]),
        reported_from=filters.parse_time(chosen["from"], "from"),
        reported_to=to,
    )
    return f, {k: v for k, v in chosen.items() if v}


def _carried(form: dict) -> dict:
    """The list filters an action form carries (as ``q_<name>``: a form's own fields, such
    as a reply's ``channel``, must not be read as the list's filters)."""
    return {k: form[f"q_{k}"] for k in NARROW if form.get(f"q_{k}")}


def _nav(conn, session: Session, counts: bool) -> list:  # noqa: ANN001
    mine = queues.queues_for(session.principal)
    n = queues.queue_counts(conn, session.principal) if counts else {}
    return [(q, n.get(q.name)) for q in mine]


def _stamps(conn, session: Session) -> reference.Stamps:  # noqa: ANN001
    """The reference data's version stamps, as read with the session (or now)."""
    if session.beside is not None:
        return reference.Stamps.from_row(session.beside)
    return reference.read_stamps(conn)


def _now(conn, session: Session | None = None) -> datetime:  # noqa: ANN001
    """The transaction's time (read with the session when there is one)."""
    if session is not None and session.now is not None:
        return session.now
    from sqlalchemy import text

    return conn.execute(text("SELECT now()")).scalar_one()


# -- signing in ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, conn: ConnDep, next: str | None = None) -> Response:
    """The sign-in form (a signed-in person goes straight on)."""
    target = safe_next(next)
    lang = i18n.check_lang(request.query_params.get("lang") or ("en" if "lang=en" in target else None))
    if optional_session(request, conn) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_page(request, lang, target)


def _login_page(request: Request, lang: str, target: str, *, error: str | None = None,
                username: str = "", status: int = 200, notice: str | None = None) -> Response:
    import secrets

    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = _html(request, "login.html", lang, None, status=status, login_csrf=token,
                     next=target, error=error, username=username, notice=notice)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=request.url.scheme == "https")
    return response


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request, conn: ConnDep,
    username: Annotated[str, Form()] = "", password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "",
    lang: Annotated[str, Form()] = "",
) -> Response:
    """Check the password; on success a session cookie and a 303 to where the person was
    going (``/work`` by default)."""
    import hmac

    lang = i18n.check_lang(lang)
    t = i18n.strings(lang)
    target = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE) or ""
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_page(request, lang, target, error=t["csrf_failed"], username=username,
                           status=403)
    address = request.client.host if request.client else "unknown"
    try:
        secret, _session = users.sign_in(conn, username, password, address, session_policy(request))
    except users.SignInThrottled as exc:
        return _login_page(request, lang, target, error=t["throttled"].format(s=exc.retry_after),
                           username=username, status=429)
    except CasegridError:
        # The failure is recorded (the transaction commits: the page is a normal answer).
        return _login_page(request, lang, target, error=t["wrong_password"], username=username,
                           status=401)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, secret)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, conn: ConnDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    """End the session (with its form token: no other site can sign a person out)."""
    session = optional_session(request, conn)
    if session is not None and not session.csrf_ok(csrf_token):
        return _csrf_refused(request, _lang(request), session)
    users.sign_out(conn, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- home, search, queues --------------------------------------------------------------------


@router.get("/work", response_class=HTMLResponse)
def home(request: Request, conn: ConnDep, session: WebSession) -> Response:
    """The person's work lists with how many cases wait in each."""
    lang = _lang(request)
    warning = None
    if session.principal.role == "admin":  # admins import the holiday notices
        settings = request.app.state.settings
        warning = current_horizon(conn, settings.calendar_horizon_days,
                                  calendar_today(request)).message("en" if lang == "en" else "zh")
    loop = None
    if session.principal.role in ("supervisor", "admin"):  # 满意率, 回访率, 重办率 this month
        from cases.overview import citizen_loop

        loop = citizen_loop(conn, calendar_today(request))
    return _html(request, "home.html", lang, session, nav=_nav(conn, session, counts=True),
                 calendar_warning=warning, failed_deliveries=_failed_deliveries(conn, session),
                 citizen_loop=loop)


def _failed_deliveries(conn, session: Session) -> int | None:  # noqa: ANN001
    """Admins' home: how many notifications were given up (issue 23; /work/deliveries)."""
    from notify.outbox import failed_count

    return failed_count(conn) if session.principal.role == "admin" else None


@router.get("/work/nav", response_class=HTMLResponse)
def nav_counts(request: Request, conn: ConnDep, session: WebSession, current: str = "") -> Response:
    """The queue list with counts: a fragment that the pages showing the list without
    counts (queue, case, search) load once they are shown, so that counting every open
    case does not hold up the page the person asked for."""
    return _html(request, "nav.html", _lang(request), session, nav=_nav(conn, session, counts=True),
                 current_queue=current if current in queues.QUEUES else None)


@router.get("/work/search", response_class=HTMLResponse)
def search_page(request: Request, conn: ConnDep, session: WebSession, q: str = "") -> Response:
    """Cases by case number, hotline ticket, phone or address; one hit opens its page."""
    lang = _lang(request)
    found = search.search(conn, q, session.principal)
    rows = found.rows
    if len(rows) == 1:
        return RedirectResponse(f"/work/cases/{rows[0]['id']}" + ("?lang=en" if lang == "en" else ""),
                                status_code=303)
    return _html(request, "search.html", lang, session, rows=rows, search_q=q, found=found,
                 nav=_nav(conn, session, counts=False))


def _rows_with_time_left(conn, session: Session, rows: list[dict], lang: str) -> list[dict]:  # noqa: ANN001
    calendar = reference.calendar(conn, _stamps(conn, session))
    now, t = _now(conn, session), i18n.strings(lang)
    for r in rows:
        r["left"] = working_left(calendar, r["current_due_at"], now, t)
    return rows


@router.get("/work/queue/{name}", response_class=HTMLResponse)
def queue_page(request: Request, conn: ConnDep, session: WebSession, name: str,
               after: str | None = None) -> Response:
    """A work list as a table (cards on a phone), soonest due first."""
    lang = _lang(request)
    try:
        queue = queues.get_queue(name)
        if not queue.visible_to(session.principal):
            raise NotFound(f"no queue {name!r} for your role", field="name")
        narrow, chosen = _narrow(request.query_params)
        size = request.app.state.settings.queue_page_size
        page, total = queues.queue_page_and_count(conn, queue, session.principal, narrow=narrow,
                                                  limit=size, after=after)
    except CasegridError as exc:
        return _error_page(request, lang, session, exc, nav=_nav(conn, session, counts=False))
    nav = _nav(conn, session, counts=False)  # counted by /work/nav once the list is shown
    bulk = [a for a in queue.bulk if session.principal.role in workflow.allowed_roles(a)]
    scope = None if session.principal.sees_all_communities else session.principal.communities
    here = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    # Every row links to its case with the list's parameters: the query written once.
    from web.render import page_url

    probe = page_url("/work/cases/0", lang, queue=name, **chosen)
    case_link = (root_of(request.scope) + "/work/cases/", probe[len("/work/cases/0"):])
    return _html(request, "queue.html", lang, session, nav=nav, current_queue=name, queue=queue,
                 rows=_rows_with_time_left(conn, session, page.items, lang), next_cursor=page.next_cursor,
                 after=after, total=total,
                 bulk=bulk, options=reference.filter_options(conn, _stamps(conn, session), scope), channels=CHANNELS,
                 chosen={k: chosen.get(k, "") for k in NARROW}, narrow_params=chosen,
                 filtered=bool(chosen), here=here, case_link=case_link, flash=_flash(request, lang))


@router.post("/work/queue/{name}/bulk")
def queue_bulk(request: Request, conn: ConnDep, session: WebSession, name: str,
               action: Annotated[str, Form()] = "", case: Annotated[list[str], Form()] = [],  # noqa: B006
               csrf_token: Annotated[str, Form()] = "", back: Annotated[str, Form()] = "") -> Response:
    """One action on each selected case (each in its own savepoint: one refusal does not
    undo the others); back to the list with how many were done."""
    lang = _lang(request)
    if not session.csrf_ok(csrf_token):
        return _csrf_refused(request, lang, session)
    queue = queues.QUEUES.get(name)
    if queue is None or action not in queue.bulk:
        return _error_page(request, lang, session, InvalidInput(
            f"action {action!r} is not offered on several cases of this list", field="action"))
    done = failed = 0
    for item in case:
        try:
            case_id, version = (int(x) for x in item.split(":", 1))
        except ValueError:
            failed += 1
            continue
        try:
            workflow.apply_action(conn, case_id, action, {}, session.principal, version)
            done += 1
        except CasegridError:
            failed += 1
    target = safe_next(back) if back.startswith(f"/work/queue/{name}") else f"/work/queue/{name}"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}bulk={action}&ok={done}&failed={failed}", status_code=303)


def _flash(request: Request, lang: str) -> dict | None:
    """The line saying what the last action did (from the redirect's query)."""
    t, q = i18n.strings(lang), request.query_params
    done = q.get("done") or q.get("bulk")
    if done not in workflow.RULES:
        return None
    label = forms.form_for(done).label(lang)
    if q.get("bulk"):
        ok, failed = q.get("ok", "0"), q.get("failed", "0")
        text = t["bulk_done"].format(n=ok, a=label) if ok.isdigit() else ""
        if failed.isdigit() and int(failed):
            return {"text": text + " · " + t["bulk_failed"].format(n=failed, a=label), "tone": "warn"}
        return {"text": text, "tone": "ok"}
    prev = q.get("prev", "")
    return {"text": t["done"].format(a=label) + (f" · {prev}" if _CASE_NO.match(prev) else ""),
            "tone": "ok"}


# -- the case page ---------------------------------------------------------------------------


def _case_page(request: Request, conn, session: Session, case_id: int, lang: str, *,  # noqa: ANN001
               queue_name: str | None, params, form_state: forms.FormState | None = None,  # noqa: ANN001
               conflict_since: datetime | None = None, status: int = 200,
               extra: dict | None = None) -> HTMLResponse:
    """Render the case page; :class:`NotFound` and the like are raised to the caller.
    ``extra``: more context for the panels (a refused photo upload's form)."""
    from geo import map_data

    who = session.principal
    t = i18n.strings(lang)
    now = _now(conn, session)
    stamps = _stamps(conn, session)
    # One read of the whole row with its names (404 outside the person's communities).
    case = queries.get_case(conn, case_id, who, whole=True)
    case.pop("geom", None)  # the point is lon/lat
    full = workflow.view_of(dict(case), who, now)
    events = case_page.labelled_events(workflow.case_events(conn, case_id), lang)
    allowed = workflow.actions_for(conn, case, who)
    settings = request.app.state.settings
    scope = None if who.sees_all_communities else who.communities
    duplicates = []
    if case["lon"] is not None:
        radius, days = reference.duplicate_rule(conn, stamps, case["category_code"],
                                                settings.duplicate_radius_m,
                                                settings.duplicate_window_days)
        duplicates = [d for d in map_data.nearby_cases(conn, case_id, radius, days, scope, limit=10)
                      if d["status"] not in CLOSED_STATES]
    codes = [c for c in [case["community_code"], *[a.get("code") for a in case["route_alternates"] or []]] if c]
    geoms = {g["code"]: g for g in reference.community_geometries(conn, stamps, codes)}
    queue = queues.QUEUES.get(queue_name or "")
    narrow_params = {k: params.get(k) for k in NARROW if params.get(k)}
    move_action = next((a for a in ("reroute", "redispatch") if a in allowed), None)
    display = _display(request)
    conflict = None
    if conflict_since is not None:
        conflict = {"events": [e for e in events if e["at"] > conflict_since]}
    photos = evidence.page_context(conn, case, events, who, settings, root_of(request.scope),
                                   params)
    map_payload = _map_payload(case, geoms, duplicates, display, move_action is not None, t,
                               app_path(request, ""))
    return _html(
        request, "case.html", lang, session, status=status, case=case,
        left=working_left(reference.calendar(conn, stamps), case["current_due_at"], now, t)
        if case["current_due_at"] and case["closed_at"] is None else None,
        dues=due_summary(case, now), events=events,
        deadline_label=case_page.deadline_label(full["dues"], lang),
        # the common next step first, refusals and send-backs last
        actions=sorted((forms.form_for(a) for a in allowed),
                       key=lambda f: {"primary": 0, "plain": 1, "danger": 2}.get(f.tone, 1)),
        form_state=form_state, conflict=conflict, opened_at=now.isoformat(),
        # the communities to choose from, only when a form of this page offers the choice
        communities=reference.community_choices(conn, stamps) if any(
            fld.kind == "community" for a in allowed for fld in forms.form_for(a).fields) else [],
        duplicates=duplicates, can_merge="reject" in allowed, can_move=move_action is not None,
        move_action=move_action, routing_text=case_page.routing_text(case, t, lang),
        panels=case_page.PANELS, **photos, **(extra or {}), queue=queue, narrow_params=narrow_params,
        nav=_nav(conn, session, counts=False), current_queue=queue.name if queue else None,
        map_data=map_payload, flash=_flash(request, lang),
        reply_drafts=replies.drafts(conn, case_id, who) if "reply" in allowed else [],
        placement=placement.placement_context(conn, case, allowed, display, t, lang,
                                              app_path(request, "")))


def _display(request: Request):  # noqa: ANN202
    from maps.display import display_from_settings

    return display_from_settings(request.app.state.settings)


def _map_payload(case: dict, geoms: dict, duplicates: list[dict], display, can_move: bool,  # noqa: ANN001
                 t: dict, root: str) -> dict:
    """What the case page's small map draws, in the base map's datum."""
    if case["lon"] is None:
        return {}
    lon, lat = display.point(case["lon"], case["lat"])
    own = geoms.get(case["community_code"])
    payload = {
        "point": [lat, lon], "case_no": case["case_no"], "can_move": can_move,
        "tiles": display.tiles, "attribution": display.attribution, "crs": display.datum,
        "community": {"name": own["name"], "geometry": display.geojson(own["geometry"])} if own else None,
        "alternates": [{"name": g["name"], "geometry": display.geojson(g["geometry"])}
                       for code, g in geoms.items() if code != case["community_code"]],
        "post": None, "duplicates": [],
        "preview_url": f"{root}/work/cases/{case['id']}/move-preview",
        "words": {"post": t["post"], "duplicates": t["duplicates"], "case": case["case_no"]},
    }
    if case.get("post_lon") is not None:
        plon, plat = display.point(case["post_lon"], case["post_lat"])
        payload["post"] = {"latlng": [plat, plon], "name": case["post_name"]}
    for d in duplicates:
        dlon, dlat = display.point(d["lon"], d["lat"])
        payload["duplicates"].append({"latlng": [dlat, dlon], "case_no": d["case_no"],
                                      "href": f"{root}/work/cases/{d['id']}"})
    return payload


@router.get("/work/cases/{case_id}", response_class=HTMLResponse)
def case_view(request: Request, conn: ConnDep, session: WebSession, case_id: int,
              queue: str | None = None) -> Response:
    """One case: what was reported, where, its deadline, history and the person's actions."""
    lang = _lang(request)
    try:
        return _case_page(request, conn, session, case_id, lang, queue_name=queue,
                          params=request.query_params)
    except CasegridError as exc:
        return _error_page(request, lang, session, exc, nav=_nav(conn, session, counts=False))


async def _action_with_photos(request: Request) -> Response:
    from api.routes.web_photos import action_with_photos  # imports this module

    return await action_with_photos(request)


async def case_action(request: Request, conn: ConnDep, session: WebSession, case_id: int,
                      action: str) -> Response:
    """Take an action from the case page. Success: 303 to the next case of the list (or the
    case itself); a refusal: the page again with the message at the form (422), or what
    changed since the page was opened (409). Without the form token: 403, nothing done.
    A form with photos (``multipart/form-data``) is served by
    :func:`api.routes.web_photos.action_with_photos`."""
    form = dict((await request.form()).items())
    return await run_in_threadpool(_take_action, request, conn, session, case_id, action, form)


router.add_api_route("/work/cases/{case_id}/actions/{action}", case_action, methods=["POST"],
                     response_class=HTMLResponse,
                     route_class_override=multipart_variant(_action_with_photos))


def _take_action(request: Request, conn, session: Session, case_id: int, action: str,  # noqa: ANN001
                 form: dict, prepared: Sequence[Prepared] = ()) -> Response:
    """The action of a posted form (with its evidence files, already written: the action
    and their rows are stored together or not at all)."""
    lang = _lang(request, form)
    if not session.csrf_ok(form.get("csrf_token")):
        return _csrf_refused(request, lang, session)
    queue_name = form.get("queue") or None
    state = forms.FormState(action, {k: v for k, v in form.items() if k != "csrf_token"})
    try:
        version = int(form.get("version", ""))
    except ValueError:
        version = None
    opened = _opened_at(form.get("opened_at"))
    try:
        payload = forms.payload_from_form(action, form)
        if prepared:
            attachments.act_with_files(conn, case_id, action, payload, prepared,
                                       session.principal, version, request.app.state.settings)
        else:
            workflow.apply_action(conn, case_id, action, payload, session.principal, version)
    except Conflict as exc:
        if version is not None and exc.current and exc.current.get("version") != version:
            try:
                return _case_page(request, conn, session, case_id, lang, queue_name=queue_name,
                                  params=_carried(form), conflict_since=opened, status=409)
            except CasegridError as inner:
                return _error_page(request, lang, session, inner)
        state.errors["_"] = exc.message
        return _retry(request, conn, session, case_id, lang, queue_name, form, state, 409)
    except FileRefused as exc:  # past the case's limit of files
        state.errors["photo"] = evidence.refusal_text(exc, [p.original_name for p in prepared],
                                                      lang, request.app.state.settings)
        return _retry(request, conn, session, case_id, lang, queue_name, form, state,
                      status_for(exc))
    except (InvalidInput, NotFound) as exc:
        if isinstance(exc, NotFound) and exc.field == "id":
            return _error_page(request, lang, session, exc)
        state.errors[exc.field if exc.field in {f.name for f in forms.form_for(action).fields}
                     else "_"] = exc.message
        return _retry(request, conn, session, case_id, lang, queue_name, form, state, 422)
    except CasegridError as exc:
        state.errors["_"] = exc.message
        return _retry(request, conn, session, case_id, lang, queue_name, form, state, status_for(exc))
    return RedirectResponse(_after_action(conn, session, case_id, action, lang, queue_name, form),
                            status_code=303)


def _retry(request, conn, session, case_id, lang, queue_name, form, state, status):  # noqa: ANN001, ANN202
    try:
        return _case_page(request, conn, session, case_id, lang, queue_name=queue_name,
                          params=_carried(form), form_state=state, status=status)
    except CasegridError as exc:
        return _error_page(request, lang, session, exc)


def _opened_at(raw: str | None) -> datetime | None:
    try:
        value = datetime.fromisoformat(raw or "")
    except ValueError:
        return None
    return value if value.tzinfo else None


def _after_action(conn, session: Session, case_id: int, action: str, lang: str,  # noqa: ANN001
                  queue_name: str | None, form: dict) -> str:
    """Where to go after an action: the list's next case, soonest due first; the list
    itself when it is done; the case when it was not opened from a list."""
    from web.render import page_url

    case_no = queries.get_case(conn, case_id, session.principal)["case_no"] \
        if _visible(conn, case_id, session) else ""
    queue = queues.QUEUES.get(queue_name or "")
    if queue is None or not queue.visible_to(session.principal):
        return page_url(f"/work/cases/{case_id}", lang, done=action, prev=case_no)
    try:
        narrow, chosen = _narrow(_carried(form))
    except InvalidInput:  # filters that no longer parse: the whole list
        narrow, chosen = None, {}
    page = queues.queue_page(conn, queue, session.principal, narrow=narrow, limit=1,
                             exclude=case_id)
    if page.items:
        return page_url(f"/work/cases/{page.items[0]['id']}", lang, queue=queue.name,
                        done=action, prev=case_no, **chosen)
    return page_url(f"/work/queue/{queue.name}", lang, done=action, prev=case_no, **chosen)


def _visible(conn, case_id: int, session: Session) -> bool:  # noqa: ANN001
    try:
        queries.get_case(conn, case_id, session.principal)
        return True
    except NotFound:  # returned to another community: no longer this officer's
        return False


@router.get("/work/cases/{case_id}/move-preview", response_class=HTMLResponse)
def move_preview(request: Request, conn: ConnDep, session: WebSession, case_id: int,
                 lon: str = "", lat: str = "", crs: str = "wgs84") -> Response:
    """Where the case would go if its point were here: community and rule (a fragment the
    case page shows before the move is saved)."""
    from markupsafe import escape

    from geo.routing import route

    lang = _lang(request)
    t = i18n.strings(lang)
    try:
        queries.get_case(conn, case_id, session.principal)
        r = route(conn, lon, lat, crs if crs in ("wgs84", "gcj02") else "wgs84")
    except CasegridError as exc:
        return HTMLResponse(f'<p class="field-error">{escape(exc.message)}</p>', status_code=status_for(exc))
    rule = case_page.rule_word(r.rule, lang)
    if r.near_boundary:
        rule += " · " + t["near_boundary"].format(a=", ".join(a.get("name") or a["code"] for a in r.alternates))
    text = t["move_preview"].format(c=r.community_name or "—", r=rule)
    return HTMLResponse(f'<p data-community="{escape(r.community_code or "")}">{escape(text)}</p>')
