"""Open311 GeoReport v2 (wiki.open311.org/GeoReport_v2): the mapping between casegrid's
catalogue and cases and the spec's services and service requests, and their JSON/XML form.

Choices (the spec leaves them to the server):

* ``service_code`` is the category code; ``group`` its major class; ``service_name`` the
  Chinese name, ``description`` the English one.
* ``service_request_id`` is the case number (``case_no``, e.g. CG20260000042). A POST also
  returns a ``token``: it is the case's ``external_id`` on the ``open311`` channel, so
  ``GET tokens/{token}`` finds the case without any extra column, and the same token can
  never make two cases.
* Every service has ``metadata`` true and two optional attributes: ``crs`` (the coordinate
  system of lat/long: wgs84 by the spec, gcj02/bd09 for Chinese map apps) and
  ``time_of_day`` (when the problem happens; noise cases are judged by it).
* ``status`` is ``closed`` when the case is closed, rejected or merged into another, else
  ``open``. ``agency_responsible`` is the community post; ``expected_datetime`` the case's
  current due time.
* Reporter name, phone and email are taken on POST and NEVER returned by any GET: the read
  endpoints are public, as is Open311 practice. Email has no column and is not stored.
  What a GET shows of a case is the publication policy's (:mod:`cases.publication`): only
  public categories (a noise complaint is 404 like an unknown id), the location coarsened
  to a grid cell's centre or the community, and a description only when staff approved it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from xml.etree import ElementTree as ET

from pydantic import ValidationError
from sqlalchemy import Connection

from casegrid.errors import CasegridError, InvalidInput, NotFound
from casegrid.settings import Settings, get_settings
from cases import publication
from cases.attachments import public_intake_photos, register_with_photos
from cases.calendar import CITY_TZ
from cases.catalogue import get_category, list_categories
from cases.filters import CaseFilters
from cases.images import Prepared
from cases.intake import NewCase, create_case
from cases.tokens import Principal

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-25T00:00:00+08:00"
MAX_RANGE = timedelta(days=90)
MAX_RESULTS = 1000
STATUS_NOTES = {
    "registered": "已立案,待审核 / registered, awaiting review",
    "reviewed": "已审核,待派遣 / reviewed, awaiting dispatch",
    "dispatched": "已派遣至社区城管岗 / dispatched to the community post",
    "returned": "退单,待重新派遣 / returned by the handler, awaiting re-dispatch",
    "handled": "已处置,待核实 / handled, awaiting verification",
    "verified": "已核实 / verified",
    "replied": "已答复来电人 / the reporter has been answered",
    "closed": "已结案 / closed",
    "rejected": "不予立案 / not accepted",
}
TIMES_OF_DAY = {"morning": "早晨 morning (06-09)", "daytime": "白天 daytime (09-18)",
                "evening": "晚上 evening (18-23)", "night": "深夜 night (23-06)"}
CRS_VALUES = {"wgs84": "WGS-84 (GPS, the Open311 default)",
              "gcj02": "GCJ-02 (Amap, Tencent, WeChat)", "bd09": "BD-09 (Baidu)"}
# Element names for list items in XML, by the list's own element name.
XML_ITEMS = {"services": "service", "service_requests": "request", "endpoints": "endpoint",
             "formats": "format", "attributes": "attribute", "values": "value", "errors": "error"}


class Open311Error(Exception):
    """An error to answer in the spec's format: ``[{code, description}]`` with ``status``."""

    def __init__(self, status: int, description: str):
        super().__init__(description)
        self.status = status
        self.description = description


def from_domain(exc: CasegridError) -> Open311Error:
    """The Open311 error for a casegrid domain error (the spec knows 400, 403 and 404)."""
    from api.errors import status_for

    status = status_for(exc)
    status = {401: 403, 422: 400, 409: 400}.get(status, status)
    field = f"{exc.field}: " if exc.field else ""
    return Open311Error(status if status in (400, 403, 404) else 400, field + exc.message)


def error_body(err: Open311Error) -> list[dict]:
    return [{"code": err.status, "description": err.description}]


# The spec's two formats (the path's suffix) and their media types.
FORMATS = {"json": "application/json", "xml": "text/xml; charset=utf-8"}


def error_document(err: Open311Error, fmt: str) -> bytes:
    """``err`` as the spec's error list, the body of a response in ``fmt`` (json or xml)."""
    if fmt == "xml":
        return to_xml("errors", error_body(err))
    return json.dumps(error_body(err), ensure_ascii=False).encode("utf-8")


# --- rendering ----------------------------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _append(parent: ET.Element, name: str, value: object) -> None:
    el = ET.SubElement(parent, name)
    if isinstance(value, dict):
        for k, v in value.items():
            _append(el, k, v)
    elif isinstance(value, list):
        for item in value:
            _append(el, XML_ITEMS.get(name, "item"), item)
    else:
        el.text = _text(value)


def to_xml(root: str, value: list | dict) -> bytes:
    """The spec's XML for a list (items named after ``root``) or a single object."""
    el = ET.Element(root)
    if isinstance(value, list):
        for item in value:
            _append(el, XML_ITEMS[root], item)
    else:
        for k, v in value.items():
            _append(el, k, v)
    return ET.tostring(el, encoding="utf-8", xml_declaration=True)


def jsonable(value: object) -> object:
    """Datetimes as ISO 8601 strings, recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --- discovery and services ---------------------------------------------------------------


def discovery(base_url: str) -> dict:
    """The discovery document for this server."""
    return {
        "changeset": CHANGESET,
        "contact": "casegrid city-management bureau; see /docs",
        "key_service": "API keys are casegrid tokens (role intake): `casegrid token create "
                       "--role intake`, from the bureau's administrator",
        "endpoints": [{
            "specification": SPEC_URL,
            "url": base_url.rstrip("/") + "/open311/v2",
            "changeset": CHANGESET,
            "type": "production",
            "formats": ["application/json", "text/xml"],
        }],
    }


def services(conn: Connection) -> list[dict]:
    """One service per active category."""
    return [_service(c) for c in list_categories(conn)]


def _service(c: dict) -> dict:
    description = c["name_en"] + (f". {c['description']}" if c.get("description") else "")
    return {
        "service_code": c["code"],
        "service_name": c["name_zh"],
        "description": description,
        "metadata": True,
        "type": "realtime",
        "keywords": ", ".join(k for k in (c["name_en"], c.get("major_en"), c["code"]) if k),
        "group": c.get("major_zh") or c.get("major_en") or c["code"][:2],
    }


def _require_service(conn: Connection, code: str | None, status: int) -> dict:
    try:
        return get_category(conn, code)
    except InvalidInput as exc:
        raise Open311Error(status, f"service_code: {exc.message}") from None


def service_definition(conn: Connection, code: str) -> dict:
    """The attribute definitions of a service (404 when the code is unknown)."""
    category = _require_service(conn, code, 404)
    return {
        "service_code": category["code"],
        "attributes": [
            _attribute("crs", 1, "坐标系 Coordinate system of lat/long", CRS_VALUES),
            _attribute("time_of_day", 2, "发生时段 When does it happen?", TIMES_OF_DAY),
        ],
    }


def _attribute(code: str, order: int, description: str, values: dict[str, str]) -> dict:
    return {
        "variable": True,
        "code": code,
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": None,
        "order": order,
        "description": description,
        "values": [{"key": k, "name": v} for k, v in values.items()],
    }


# --- POST requests ------------------------------------------------------------------------


def _attributes(form: dict[str, str]) -> dict[str, str]:
    attrs = {}
    for key, value in form.items():
        if key.startswith("attribute[") and key.endswith("]"):
            name = key[len("attribute["):-1]
            allowed = {"crs": CRS_VALUES, "time_of_day": TIMES_OF_DAY}.get(name)
            if allowed is None:
                raise Open311Error(400, f"attribute[{name}] is not an attribute of this service; "
                                        "see GET services/{service_code}")
            if value and value not in allowed:
                raise Open311Error(400, f"attribute[{name}] {value!r} is not one of "
                                        f"{', '.join(allowed)}")
            if value:
                attrs[name] = value
    return attrs


def _number(form: dict[str, str], name: str) -> float | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} {raw!r} is not a number: give decimal degrees, "
                                "e.g. lat=35.09&long=117.16") from None


def new_case_from_form(conn: Connection, form: dict[str, str], token: str) -> NewCase:
    """Check a POST requests form and turn it into a :class:`NewCase` (Open311Error if bad)."""
    category = _require_service(conn, form.get("service_code"), 400)
    attrs = _attributes(form)
    lat, lon = _number(form, "lat"), _number(form, "long")
    address = (form.get("address_string") or "").strip() or None
    if lat is None and lon is None and address is None:
        raise Open311Error(400, "location is missing: give lat and long, or address_string")
    if (lat is None) != (lon is None):
        missing = "long" if lon is None else "lat"
        raise Open311Error(400, f"{missing} is missing: give both lat and long")
    description = (form.get("description") or "").strip()
    if "time_of_day" in attrs:
        description = f"{description} [{TIMES_OF_DAY[attrs['time_of_day']]}]".strip()
    name = " ".join(p for p in ((form.get("first_name") or "").strip(),
                                (form.get("last_name") or "").strip()) if p)
    media = (form.get("media_url") or "").strip()
    try:
        return NewCase(
            lon=lon, lat=lat, crs=attrs.get("crs", "wgs84"), address=address,
            category=category["code"], description=description, channel="open311",
            external_id=token, reporter_name=name or None,
            reporter_phone=(form.get("phone") or "").strip() or None,
            photo_urls=[media] if media else [],
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        where = {"lon": "long", "photo_urls": "media_url", "reporter_phone": "phone",
                 "reporter_name": "first_name/last_name"}.get(where.split(".")[0], where)
        raise Open311Error(400, f"{where}: {first.get('msg', 'invalid')}") from None


def submit(conn: Connection, form: dict[str, str], principal: Principal,
           media: Sequence[Prepared] = (), settings: Settings | None = None) -> list[dict]:
    """Register a service request as a case; the spec's POST response. ``media``: photos
    sent in the request's ``media`` parts, already checked and written to the store,
    attached to the case in the caller's transaction (``cases.attachments``)."""
    token = str(uuid.uuid4())
    data = new_case_from_form(conn, form, token)
    try:
        if media:
            result = register_with_photos(conn, data, principal, media, settings or get_settings())
        else:
            result = create_case(conn, data, principal)
    except CasegridError as exc:
        raise from_domain(exc) from None
    case = result.case
    notice = (f"已转 {case['post_name']} / routed to {case['post_name']}" if case.get("post_name")
              else "待调度员定位派遣 / awaiting a dispatcher to place and route it")
    return [{"service_request_id": case["case_no"], "token": token, "service_notice": notice,
             "account_id": None}]


# --- GET requests -------------------------------------------------------------------------

NEWEST_FIRST = "ORDER BY c.reported_at DESC, c.id DESC"
# The spec's status filter as CaseFilters.settled (cases.vocabulary.settled_sql, the rule
# of the public form's settled too): closed is closed, rejected or merged into another case.
SETTLED = {"open": False, "closed": True}


def request_item(row: dict, media_url: str | None = None) -> dict:
    """One case in its public form (:mod:`cases.publication`) as a GeoReport v2 service
    request; ``media_url``: its public photo, if any (:func:`_media_urls`)."""
    closed = row["settled"]
    if row.get("reply_text"):
        # Once answered, the answer itself (stored masked: cases.privacy).
        notes = row["reply_text"]
    elif row["merged_into"] is not None:
        notes = f"已合并至 {row['merged_into_no']} / merged into {row['merged_into_no']}"
    else:
        notes = STATUS_NOTES.get(row["status"], row["status"])
    return {
        "service_request_id": row["case_no"],
        "status": "closed" if closed else "open",
        "status_notes": notes,
        "service_name": row["name_zh"],
        "service_code": row["category_code"],
        # Only a description staff approved for publication (cases.publication).
        "description": row["description"],
        "agency_responsible": row["post_name"],
        "service_notice": None,
        "requested_datetime": row["reported_at"],
        "updated_datetime": row["updated_at"],
        "expected_datetime": None if closed else row["current_due_at"],
        "address": row["address"],
        "address_id": None,
        "zipcode": None,
        "lat": row["lat"],
        "long": row["lon"],
        "media_url": media_url,
    }


def _media_urls(conn: Connection, rows: list[dict], media_base: str | None) -> dict[int, str]:
    """The first photo sent with each request, where the server publishes citizens' photos
    (``attachment_intake_public``: the route passes its base URL then, else None)."""
    if media_base is None:
        return {}
    ids = public_intake_photos(conn, [r["id"] for r in rows])
    return {case_id: f"{media_base.rstrip('/')}/api/v1/attachments/{aid}" for case_id, aid in ids.items()}


def get_request(conn: Connection, request_id: str, media_base: str | None = None) -> list[dict]:
    """``GET requests/{id}``: a one-element list, or 404."""
    try:
        row = publication.public_case(conn, request_id)
    except NotFound:
        raise Open311Error(404, f"service_request_id {request_id!r} not found") from None
    return [request_item(row, _media_urls(conn, [row], media_base).get(row["id"]))]


def get_token(conn: Connection, token: str) -> list[dict]:
    """``GET tokens/{token}``: the request id a POST token became, or 404."""
    no = publication.is_public_ticket(conn, "open311", token)
    if no is None:
        raise Open311Error(404, f"token {token!r} not found")
    return [{"service_request_id": no, "token": token}]


def _parse_date(value: str | None, name: str) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Open311Error(400, f"{name} {value!r} is not an ISO 8601 date-time, e.g. "
                                "2026-06-01T00:00:00+08:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CITY_TZ)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def find_requests(conn: Connection, params: dict[str, str | None],
                  now: datetime | None = None, media_base: str | None = None) -> list[dict]:
    """``GET requests`` with the spec's filters; newest first, at most 1000.

    ``service_request_id`` (comma list) overrides the other filters, as the spec says. The
    date range defaults to the last 90 days and may not be longer.
    """
    ids = _split(params.get("service_request_id"))
    if ids:
        rows = publication.public_cases(conn, CaseFilters(case_no=ids[:MAX_RESULTS]), NEWEST_FIRST)
        media = _media_urls(conn, rows, media_base)
        return [request_item(r, media.get(r["id"])) for r in rows]
    now = now or datetime.now(UTC)
    start = _parse_date(params.get("start_date"), "start_date")
    end = _parse_date(params.get("end_date"), "end_date")
    if start is None and end is None:
        start, end = now - MAX_RANGE, now
    elif start is None:
        start = end - MAX_RANGE
    elif end is None:
        end = min(start + MAX_RANGE, max(now, start))
    if end < start:
        raise Open311Error(400, "end_date is before start_date")
    if end - start > MAX_RANGE:
        raise Open311Error(400, f"start_date..end_date spans {(end - start).days} days; "
                                "at most 90 days may be asked for at once")
    statuses = _split(params.get("status"))
    bad = [s for s in statuses if s not in SETTLED]
    if bad:
        raise Open311Error(400, f"status {bad[0]!r} is not open or closed")
    # The spec's end_date is inclusive, CaseFilters' end is not: one microsecond (the
    # database's resolution) past it is the same bound.
    filters = CaseFilters(category=_split(params.get("service_code")), reported_from=start,
                          reported_to=end + timedelta(microseconds=1),
                          settled=SETTLED[statuses[0]] if len(set(statuses)) == 1 else None)
    rows = publication.public_cases(conn, filters, f"{NEWEST_FIRST} LIMIT :limit",
                                    {"limit": MAX_RESULTS})
    media = _media_urls(conn, rows, media_base)
    return [request_item(r, media.get(r["id"])) for r in rows]
