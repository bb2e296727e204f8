"""Who may call what: the ONE table of (operation, caller) → expected HTTP status.

``tests/test_access_matrix.py`` generates one test per cell and fails when a route of the
app is missing here, so a new endpoint cannot ship without its row. The table is written
by hand from the rules the project states (README, ``cases/tokens.py`` role descriptions,
the docstrings of ``api/routes/*``, DOMAIN.md's "the handling unit may not close its own
case"), not derived from the code under test.

Callers (columns):

* ``admin``, ``dispatcher``, ``supervisor``, ``planner``, ``intake``: a token of that role;
* ``officer_own``: a community officer of the community the target case lies in (for
  submissions: the community the submitted point lies in);
* ``officer_other``: a community officer of another community;
* ``no_token``: no credentials at all; ``revoked``: a dispatcher token revoked before use.

Operations that act on one case get a fresh case in the officer's own community, brought
to ``state`` by a separate admin token (so nobody in the table handled it before).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CALLERS = ("admin", "dispatcher", "supervisor", "officer_own", "officer_other", "planner",
           "intake", "no_token", "revoked")


@dataclass(frozen=True)
class Operation:
    """One row: a route (method + path template as registered), how to call it, and the
    expected status per caller, in :data:`CALLERS` order."""

    method: str
    route: str
    expected: tuple[int, ...]
    label: str = ""                      # tells apart rows of one route (workflow actions)
    url: str | None = None               # concrete URL; {case_id} is the fresh case
    state: str | None = None             # the fresh case's state (None: no case needed)
    body: dict | None = field(default=None, hash=False)
    auth: str = "bearer"                 # bearer | api_key (Open311 form field) | form | none
    upload: bool = False                 # send a photo as multipart (part "photo")

    @property
    def name(self) -> str:
        return f"{self.method} {self.route}" + (f" [{self.label}]" if self.label else "")

    def expect(self) -> dict[str, int]:
        return dict(zip(CALLERS, self.expected, strict=True))


_STATS = "/api/v1/stats?from=2020-01-01&to=2030-12-31"
_BBOX = "/maps/api/cases?bbox=116.9,34.9,117.4,35.3"
_ACT = "/api/v1/cases/{case_id}/actions"
_PUBLIC = (200,) * 9
_ANY_TOKEN = (200, 200, 200, 200, 200, 200, 200, 401, 401)


def _action(label: str, state: str, expected: tuple[int, ...], **payload) -> Operation:
    return Operation("POST", "/api/v1/cases/{case_id}/actions", expected, label=label, url=_ACT,
                     state=state, body={"action": label, **payload})


OPERATIONS: tuple[Operation, ...] = (
    #                                                       adm  dis  sup  own  oth  pla  int  none rev
    Operation("GET", "/health", _PUBLIC),
    # Public too; 503 for all here because no worker runs beside this test's app.
    Operation("GET", "/health/ready", (503,) * 9),
    Operation("GET", "/openapi.json", _PUBLIC),
    Operation("GET", "/docs", _PUBLIC),
    Operation("GET", "/docs/oauth2-redirect", _PUBLIC),
    Operation("GET", "/redoc", _PUBLIC),
    # Intake: a community officer may submit only inside its own communities.
    Operation("POST", "/api/v1/cases", (201, 201, 201, 201, 403, 403, 201, 401, 401),
              body={"category": "0504", "channel": "patrol", "description": "matrix"}),
    Operation("GET", "/api/v1/cases", _ANY_TOKEN, url="/api/v1/cases", state="registered"),
    Operation("GET", "/api/v1/cases/{case_id}", (200, 200, 200, 200, 404, 200, 200, 401, 401),
              url="/api/v1/cases/{case_id}", state="registered"),
    Operation("GET", "/api/v1/cases/{case_id}/history", (200, 200, 200, 200, 404, 200, 200, 401, 401),
              url="/api/v1/cases/{case_id}/history", state="registered"),
    Operation("GET", "/api/v1/route", _ANY_TOKEN, url="/api/v1/route?lon=117.16&lat=35.08"),
    Operation("GET", "/api/v1/communities", _ANY_TOKEN),
    Operation("GET", "/api/v1/categories", _ANY_TOKEN),
    Operation("GET", "/api/v1/categories/{code}/time-limits", _ANY_TOKEN,
              url="/api/v1/categories/0101/time-limits"),
    Operation("PUT", "/api/v1/categories/{code}/time-limits", (200, 403, 403, 403, 403, 403, 403, 401, 401),
              url="/api/v1/categories/0101/time-limits",
              body={"limits": [{"step": "handle", "amount": 3, "unit": "working_days"}]}),
    # Privacy: which categories the public sees (admin sets it); the texts as written are
    # for the people who call reporters back, never planners or intake connectors.
    Operation("GET", "/api/v1/categories/public", _ANY_TOKEN),
    Operation("PUT", "/api/v1/categories/{code}/public", (200, 403, 403, 403, 403, 403, 403, 401, 401),
              url="/api/v1/categories/0101/public", body={"public": True}),
    Operation("POST", "/api/v1/cases/{case_id}/reveal", (200, 200, 200, 200, 404, 403, 403, 401, 401),
              url="/api/v1/cases/{case_id}/reveal", state="registered"),
    # Indicators: the bureau's roles and planners, not officers or intake connectors.
    Operation("GET", "/api/v1/stats", (200, 200, 200, 403, 403, 200, 403, 401, 401), url=_STATS),
    Operation("GET", "/api/v1/hotspots/pois", (200, 200, 200, 403, 403, 200, 403, 401, 401)),
    # Evaluation (考核): read like the indicators; only admins change the weights.
    Operation("GET", "/api/v1/evaluation", (200, 200, 200, 403, 403, 200, 403, 401, 401),
              url="/api/v1/evaluation?from=2020-01-01&to=2030-12-31"),
    Operation("GET", "/api/v1/evaluation/weights", (200, 200, 200, 403, 403, 200, 403, 401, 401)),
    Operation("PUT", "/api/v1/evaluation/weights", (200, 403, 403, 403, 403, 403, 403, 401, 401),
              body={"min_cases": 10}),
    Operation("GET", "/maps/evaluation", (200, 200, 200, 403, 403, 200, 403, 303, 401),
              url="/maps/evaluation?from=2020-01-01&to=2020-01-31"),
    # Activities: any token reads; the posts' officers record their own communities'
    # (the body names officer_own's community), the bureau's staff any.
    Operation("GET", "/api/v1/activities", _ANY_TOKEN),
    Operation("GET", "/api/v1/activities/stats", _ANY_TOKEN,
              url="/api/v1/activities/stats?from=2020-01-01&to=2030-12-31"),
    Operation("POST", "/api/v1/activities", (201, 201, 201, 201, 403, 403, 403, 401, 401),
              body={"started_at": "2026-05-20T09:00:00+08:00", "kind": "volunteer",
                    "title": "matrix clean-up"}),
    # Activity photos: added by whoever may record for the activity (officer_own's
    # community's); seen by whoever sees the activity (another community's officer: 404).
    Operation("POST", "/api/v1/activities/{activity_id}/attachments",
              (201, 201, 201, 201, 404, 403, 403, 401, 401),
              url="/api/v1/activities/{activity_id}/attachments", state="activity", upload=True),
    Operation("GET", "/api/v1/attachments/{attachment_id}", (200, 200, 200, 200, 404, 200, 200, 401, 401),
              label="activity photo", url="/api/v1/attachments/{attachment_id}", state="activity"),
    # An activity's texts as written: whoever may read texts as written and sees it.
    Operation("POST", "/api/v1/activities/{activity_id}/reveal",
              (200, 200, 200, 200, 404, 403, 403, 401, 401),
              url="/api/v1/activities/{activity_id}/reveal", state="activity"),
    # Prometheus' scrape: from this machine only by default; the test client is not loopback.
    Operation("GET", "/metrics", (404,) * 9),
    # Notifications: the 督办 queue for the supervision and command sides and the posts (their
    # own cases); the delivery summary for admins.
    Operation("GET", "/api/v1/escalations", (200, 200, 200, 200, 200, 403, 403, 401, 401)),
    Operation("GET", "/api/v1/outbox/summary", (200, 403, 403, 403, 403, 403, 403, 401, 401)),
    # A post's webhook URL may carry its receiver's secret: admins only.
    Operation("GET", "/api/v1/posts", (200, 403, 403, 403, 403, 403, 403, 401, 401)),
    Operation("PUT", "/api/v1/posts/{community_code}/webhook", (200, 403, 403, 403, 403, 403, 403, 401, 401),
              url="/api/v1/posts/370481001001/webhook", body={"url": "https://hooks.example.org/p1"}),
    # Maps: dispatchers, supervisors, officers (their own scope) and planners.
    # A page opened with no credentials at all sends the person to /login (303).
    Operation("GET", "/maps/dispatch", (200, 200, 200, 200, 200, 200, 403, 303, 401)),
    Operation("GET", "/maps/api/cases", (200, 200, 200, 200, 200, 200, 403, 401, 401), url=_BBOX),
    Operation("GET", "/maps/api/cases/{case_id}", (200, 200, 200, 200, 404, 200, 403, 401, 401),
              url="/maps/api/cases/{case_id}", state="registered"),
    Operation("GET", "/maps/cases/{case_id}", (200, 200, 200, 200, 404, 200, 403, 303, 401),
              url="/maps/cases/{case_id}", state="registered"),
    Operation("GET", "/maps/hotspots", (200, 200, 200, 403, 403, 200, 403, 303, 401)),
    # Work lists as JSON: every token sees its own (intake: none); a role's queue only.
    Operation("GET", "/api/v1/queues", _ANY_TOKEN),
    Operation("GET", "/api/v1/search", _ANY_TOKEN, url="/api/v1/search?q=CG"),
    Operation("GET", "/api/v1/queues/{name}", (200, 200, 200, 200, 200, 404, 404, 401, 401),
              url="/api/v1/queues/handling"),
    # The workbench is for people with a session, never a token: without one every page
    # and form goes to /login (303); the sign-in form itself is public, and posting it
    # without the form token it hands out is a 403 (HTML, as the pages answer).
    Operation("GET", "/login", _PUBLIC),
    Operation("POST", "/login", (403,) * 9),
    Operation("POST", "/logout", (303,) * 9),
    Operation("GET", "/work", (303,) * 9),
    Operation("GET", "/work/overview", (303,) * 9),
    Operation("GET", "/work/activities", (303,) * 9),
    Operation("GET", "/work/deliveries", (303,) * 9),
    Operation("POST", "/work/deliveries/{delivery_id}/retry", (303,) * 9, url="/work/deliveries/1/retry"),
    Operation("POST", "/work/activities", (303,) * 9),
    Operation("GET", "/work/search", (303,) * 9, url="/work/search?q=CG"),
    Operation("GET", "/work/nav", (303,) * 9, url="/work/nav"),
    Operation("GET", "/work/outlines", (303,) * 9, url="/work/outlines?bbox=117,35,117.2,35.2"),
    Operation("GET", "/work/queue/{name}", (303,) * 9, url="/work/queue/review"),
    Operation("POST", "/work/queue/{name}/bulk", (303,) * 9, url="/work/queue/review/bulk"),
    Operation("GET", "/work/cases/{case_id}", (303,) * 9, url="/work/cases/{case_id}",
              state="registered"),
    Operation("POST", "/work/cases/{case_id}/actions/{action}", (303,) * 9,
              url="/work/cases/{case_id}/actions/accept", state="registered"),
    Operation("POST", "/work/cases/{case_id}/photos", (303,) * 9,
              url="/work/cases/{case_id}/photos", state="registered", upload=True),
    Operation("GET", "/work/cases/{case_id}/move-preview", (303,) * 9,
              url="/work/cases/{case_id}/move-preview?lon=117.16&lat=35.08", state="registered"),
    Operation("GET", "/static/vendor/{package}/{path:path}", _PUBLIC,
              url="/static/vendor/leaflet/leaflet.js"),
    # Open311: reading is public; submitting needs an api_key of a submitting role (403 in
    # the spec's error format otherwise).
    Operation("GET", "/open311/v2/discovery.{fmt}", _PUBLIC, url="/open311/v2/discovery.json"),
    Operation("GET", "/open311/v2/services.{fmt}", _PUBLIC, url="/open311/v2/services.json"),
    Operation("GET", "/open311/v2/services/{service_code}.{fmt}", _PUBLIC,
              url="/open311/v2/services/0101.json"),
    Operation("GET", "/open311/v2/requests.{fmt}", _PUBLIC, url="/open311/v2/requests.json"),
    Operation("GET", "/open311/v2/requests/{service_request_id}.{fmt}", _PUBLIC,
              url="/open311/v2/requests/{case_no}.json", state="registered"),
    Operation("GET", "/open311/v2/tokens/{token}.{fmt}", _PUBLIC, url="/open311/v2/tokens/{token}.json",
              state="open311"),
    Operation("POST", "/open311/v2/requests.{fmt}", (201, 201, 201, 201, 403, 403, 201, 403, 403),
              url="/open311/v2/requests.json", auth="api_key",
              body={"service_code": "0504", "description": "matrix via open311"}),
    # Evidence: a file is seen by whoever sees its case; planners only read. {attachment_id}
    # is a photo an admin added to a fresh case (citizens' photos: tests/test_evidence.py).
    Operation("GET", "/api/v1/cases/{case_id}/attachments", (200, 200, 200, 200, 404, 200, 200, 401, 401),
              url="/api/v1/cases/{case_id}/attachments", state="registered"),
    Operation("POST", "/api/v1/cases/{case_id}/attachments", (201, 201, 201, 201, 404, 403, 201, 401, 401),
              url="/api/v1/cases/{case_id}/attachments", state="registered", upload=True),
    Operation("GET", "/api/v1/attachments/{attachment_id}", (200, 200, 200, 200, 404, 200, 200, 401, 401),
              url="/api/v1/attachments/{attachment_id}", state="registered"),
    Operation("GET", "/api/v1/attachments/{attachment_id}/thumb", (200, 200, 200, 200, 404, 200, 200, 401, 401),
              url="/api/v1/attachments/{attachment_id}/thumb", state="registered"),
    # The ledger: the supervision side registers and verifies, the command side dispatches,
    # the handling unit handles and may not verify or close; another community's case is
    # not found (404) before any role check.
    _action("accept", "registered", (200, 403, 200, 403, 404, 403, 403, 401, 401)),
    _action("reject", "registered", (200, 403, 200, 403, 404, 403, 403, 401, 401), reason="invalid", note="not a city matter"),
    _action("dispatch", "reviewed", (200, 200, 403, 403, 404, 403, 403, 401, 401)),
    _action("return", "dispatched", (200, 403, 403, 200, 404, 403, 403, 401, 401), reason="not ours"),
    _action("handle", "dispatched", (200, 403, 403, 200, 404, 403, 403, 401, 401), note="done"),
    _action("acknowledge", "dispatched", (200, 403, 403, 200, 404, 403, 403, 401, 401)),
    _action("verify_pass", "handled", (200, 403, 200, 403, 404, 403, 403, 401, 401)),
    _action("reply", "verified", (200, 200, 200, 403, 404, 403, 403, 401, 401),
            channel="phone", text="handled, thank you"),
    _action("close", "replied", (200, 403, 200, 403, 404, 403, 403, 401, 401)),
    # A description for the public: the bureau's staff approve it, in any state.
    _action("publish_description", "registered", (200, 200, 200, 403, 404, 403, 403, 401, 401)),
    # The citizen's side: the hotline/command side calls back (回访); the supervision side
    # sends a case back to be redone (发回重办).
    _action("follow_up", "replied", (200, 200, 200, 403, 404, 403, 403, 401, 401),
            result="satisfied", method="phone"),
    _action("reopen", "replied", (200, 403, 200, 403, 404, 403, 403, 401, 401),
            reason="centre_order", note="the centre orders it redone"),
    # Response templates: read by those who reply, kept by admins.
    Operation("GET", "/api/v1/response-templates", (200, 200, 200, 403, 403, 403, 403, 401, 401)),
    Operation("PUT", "/api/v1/response-templates", (200, 403, 403, 403, 403, 403, 403, 401, 401),
              body={"category_code": "0101", "title": "matrix", "body": "{case_no} done"}),
    Operation("DELETE", "/api/v1/response-templates/{template_id}",
              (404, 403, 403, 403, 403, 403, 403, 401, 401),
              url="/api/v1/response-templates/999999"),
    Operation("GET", "/api/v1/cases/{case_id}/reply-drafts",
              (200, 200, 200, 403, 403, 403, 403, 401, 401),
              url="/api/v1/cases/{case_id}/reply-drafts", state="verified"),
    # The ledger export: the bureau's roles, planners (without reporter data) and officers
    # (their own communities); not intake connectors.
    Operation("GET", "/api/v1/export/ledger.csv", (200, 200, 200, 200, 200, 200, 403, 401, 401),
              url="/api/v1/export/ledger.csv?from=2026-01-01&to=2026-12-31"),
    Operation("GET", "/api/v1/export/ledger.xlsx", (200, 200, 200, 200, 200, 200, 403, 401, 401),
              url="/api/v1/export/ledger.xlsx?from=2026-01-01&to=2026-12-31"),
    # The citizen's tracking page is public (a wrong number is an ordinary 200 answer).
    Operation("GET", "/track", _PUBLIC),
    Operation("POST", "/track", _PUBLIC, state="registered", auth="form",
              body={"number": "{case_no}", "digits": "0000"}),
)

# The ledger actions in state order, used to bring a fresh case to a row's ``state``.
PATH_TO_STATE: dict[str, list[dict]] = {
    "registered": [],
    "reviewed": [{"action": "accept"}],
    "dispatched": [{"action": "accept"}, {"action": "dispatch"}],
    "handled": [{"action": "accept"}, {"action": "dispatch"}, {"action": "handle", "note": "fixed"}],
    "verified": [{"action": "accept"}, {"action": "dispatch"}, {"action": "handle", "note": "fixed"},
                 {"action": "verify_pass"}],
    "replied": [{"action": "accept"}, {"action": "dispatch"}, {"action": "handle", "note": "fixed"},
                {"action": "verify_pass"}, {"action": "reply", "channel": "phone", "text": "done"}],
}
