"""All configuration in one place, read once.

Every setting has the ``CASEGRID_`` environment prefix, except ``DATABASE_URL``, which is
honoured as-is because hosting platforms and operators set it by that name. No other module
reads ``os.environ``; they call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime settings; see README "Configuration" for each one."""

    model_config = SettingsConfigDict(env_prefix="CASEGRID_", extra="ignore")

    # Where the database is. Empty means: the embedded project-local cluster.
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "CASEGRID_DATABASE_URL"),
    )
    # The embedded cluster lives here (data, socket, log).
    data_dir: Path = PROJECT_ROOT / ".casegrid"
    db_name: str = "casegrid"
    db_port: int = 55432

    # Connection pool: bounded on purpose (2-core machines, many workers), and fixed: an
    # overflow connection is closed whenever it comes back to a pool that has pool_size
    # idle ones, so a load that hovers around pool_size opens and closes connections all
    # the time (a new backend each, forked and set up while the cores are busy), which
    # gave health checks under load latencies of seconds.
    pool_size: int = 15
    pool_max_overflow: int = 0
    pool_recycle_s: int = 1800
    # How long a request may wait for its turn at the pool (api.db_gate), and a thread for
    # a connection (the pool's timeout), before the client gets a 503 to retry.
    db_queue_wait_s: float = Field(10.0, gt=0, le=300)
    statement_timeout_ms: int = 30000

    # Routing defaults (metres).
    gap_tolerance_m: float = 200.0
    near_boundary_margin_m: float = 20.0
    # Vertices per subdivided boundary piece, chosen by the piece-size sweep of
    # bench/bench_routing.py (bench/RESULTS.md): since the piece index keeps small pages
    # (migration 0015), 64 had a lower minimum time than 32 in each full run, and than
    # 128 in all but one, by a few percent. Boundaries imported before keep their pieces
    # until `casegrid boundaries subdivide` cuts them again.
    subdivide_max_vertices: int = 64

    # Intake batching (cases/intake_batch.py): at most this many submissions per transaction,
    # and this many batches at the database at once per worker process. 1 gave the most
    # cases/s on the 2-core machine (fewer, larger batches share the fixed cost of a
    # transaction); compare with e.g. `CASEGRID_INTAKE_BATCHES_IN_FLIGHT=2 python -m bench
    # --only intake --out /tmp/x.md` (the benchmark's server inherits the environment).
    intake_batch_max: int = Field(64, ge=1, le=1000)
    intake_batches_in_flight: int = Field(1, ge=1, le=16)

    # Duplicate detection defaults.
    duplicate_radius_m: float = 50.0
    duplicate_window_days: int = 7

    # Upload / body limits.
    max_upload_mb: int = 200
    max_body_bytes: int = 1_000_000

    # --- Evidence: photos and attachments (cases/attachments.py, casegrid/filestore.py) ---
    # Where stored files live; empty: ``<data_dir>/attachments``. Point it at a mounted
    # volume to keep evidence apart from the database (the backup must include it).
    attachment_dir: Path | None = None
    # One file at most this many MB (a phone photo is 2-6 MB; a scanned notice a few MB).
    attachment_max_file_mb: float = Field(10.0, gt=0, le=200)
    # Files a case may hold in all (intake, handling, verification, added later).
    attachment_max_per_case: int = Field(20, ge=1, le=500)
    # Pixels an image may have, checked from its header before it is decoded (a
    # decompression bomb is refused without the memory it asks for). 64 MP holds a
    # 48-megapixel phone photo.
    attachment_max_pixels: int = Field(64_000_000, ge=1_000_000, le=500_000_000)
    # A multipart upload request (any of the upload endpoints) may be this large in all;
    # other bodies keep max_body_bytes.
    attachment_max_request_mb: float = Field(64.0, gt=0, le=2000)
    # Longest side of the thumbnail served for lists and map popups.
    attachment_thumb_px: int = Field(320, ge=32, le=2048)
    # A stored file that no row names is removed by `casegrid attachments sweep` once it
    # is older than this (a request between its file write and its commit is younger).
    attachment_sweep_grace_s: float = Field(3600.0, ge=0)
    # The citizens' intake photos may be fetched without a token (Open311 media_url);
    # off by default: planners and the public never see citizens' photos.
    attachment_intake_public: bool = False

    @property
    def attachment_root(self) -> Path:
        """The file store's directory (``attachment_dir``, else under ``data_dir``)."""
        return self.attachment_dir or self.data_dir / "attachments"
    # --- end evidence ---

    # Maps: base tiles. "osm", "none", or a URL template such as an intranet tile server.
    tiles: str = "osm"
    tiles_crs: str = "wgs84"  # wgs84 | gcj02: the datum of the tile source
    tiles_attribution: str = "© OpenStreetMap contributors"

    # --- Addresses (geo/address_*.py, issue 27) ---------------------------------------
    # The city's own province/city/county names, removed from the front of an address
    # before matching (callers say them or not). Default: the sample city, Tengzhou.
    address_prefixes: list[str] = ["山东省", "山东", "枣庄市", "枣庄", "滕州市", "滕州"]
    # Below this confidence an address-only case stays unlocated, with suggestions for a
    # dispatcher: never confidently wrong (geo/address_match.py).
    address_min_confidence: float = Field(0.7, ge=0.0, le=1.0)
    # Learning from GPS/app cases (geo/address_learning.py; docs/addresses.md, "The memory"):
    # the worker reads new cases at most this often (seconds; 0: it does not learn).
    address_learn_every_s: float = Field(60.0, ge=0.0)
    # Sightings of one address within this distance (metres) of their median agree ...
    address_learn_radius_m: float = Field(100.0, gt=0.0)
    # ... and the memory learns the address once this many different reporters agree.
    address_learn_min_reporters: int = Field(2, ge=1)
    # A case id the learner has not seen (a transaction still running, or rolled back) is
    # waited for this long (seconds) before the learner passes it.
    address_learn_settle_s: float = Field(600.0, ge=0.0)
    # --- end addresses ------------------------------------------------------------------
    # --- citizen tracking page (/track, issue 24) ---
    # Failed look-ups (unknown number or wrong phone digits) allowed per window, per client
    # address and per case number; past either limit /track answers 429 until the window
    # ends. Guessing 4 digits takes thousands of tries; a citizen mistyping needs a few.
    track_window_s: int = Field(900, ge=1, le=86400)
    track_failures_per_address: int = Field(20, ge=1)
    track_failures_per_number: int = Field(5, ge=1)
    # --- end citizen tracking page ---

    # -- Notifications (issue 23: cases.notices, notify/, casegrid.worker) -----------------
    # Webhook: every event is POSTed as JSON to this URL (empty: no default webhook), signed
    # with HMAC-SHA256 of the raw body under the secret (X-Casegrid-Signature: sha256=...).
    webhook_url: str = ""
    webhook_secret: str = ""
    # A role's own webhook, e.g. {"supervisor": "https://..."} (JSON); a post's own URL is
    # community_post.webhook_url. Events for that recipient go there instead of webhook_url.
    webhook_role_urls: dict[str, str] = {}
    webhook_timeout_s: float = Field(5.0, gt=0, le=120)
    # Failed deliveries are retried after base, 2 x base, 4 x base... seconds, until this
    # long after the event; then they are kept as failed (`casegrid outbox list --failed`).
    notify_retry_base_s: float = Field(30.0, gt=0)
    notify_give_up_s: float = Field(86400.0, gt=0)
    # SMS through the city's HTTP gateway: URL, method and body are templates in which
    # {phone} and {text} are replaced (URL-encoded in the URL and in a form body, JSON-escaped
    # in a JSON body). Empty URL: no SMS.
    sms_gateway_url: str = ""
    sms_gateway_method: str = "POST"
    sms_gateway_body: str = '{"phone": "{phone}", "text": "{text}"}'
    sms_gateway_content_type: str = "application/json"
    # No SMS in these hours (local time, HH:MM-HH:MM) except for the urgent categories.
    sms_quiet_hours: str = "22:00-07:00"
    sms_urgent_categories: list[str] = []
    # Email over SMTP (standard library) to the addresses of roles, e.g.
    # {"supervisor": ["duban@example.gov.cn"], "bureau": ["office@example.gov.cn"]}.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "casegrid@localhost"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    email_role_addresses: dict[str, list[str]] = {}
    # Reminders: "due soon" at this share of a step's working time; 督办 (escalated) after
    # the handling deadline has passed by this many working days.
    remind_due_soon_share: float = Field(0.75, gt=0, lt=1)
    escalate_after_working_days: int = Field(2, ge=0, le=60)
    # The worker: seconds between passes when idle, deliveries per claimed batch, parallel
    # sends within a batch.
    worker_poll_s: float = Field(2.0, gt=0)
    worker_batch: int = Field(200, ge=1, le=5000)
    worker_concurrency: int = Field(8, ge=1, le=64)

    @field_validator("webhook_url", "webhook_role_urls")
    @classmethod
    def _webhook_urls(cls, value: str | dict[str, str]):  # noqa: ANN206
        # The same rule as a post's own URL (notify.webhook.check_url): https, or http on
        # loopback; a bad one stops the worker at start instead of failing every delivery.
        from casegrid.errors import InvalidInput
        from notify.webhook import check_url

        try:
            if isinstance(value, dict):
                return {k: check_url(v, f"webhook_role_urls[{k}]") for k, v in value.items()}
            return check_url(value, "webhook_url") if value.strip() else ""
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
    # -- end of notifications ----------------------------------------------------------------

    # --- Workbench sign-in (issue 21: api/routes/web.py, cases/users.py) ---
    # A session ends after this many minutes without a request (a dispatcher's lunch
    # break), and in any case this many hours after sign-in (one working day and a bit).
    session_idle_minutes: int = Field(120, ge=1, le=24 * 60)
    session_max_hours: int = Field(14, ge=1, le=24 * 7)
    # Failed sign-ins: this many per username or address within the window are free; then
    # each further attempt must wait, twice as long each time (5 s, 10 s, 20 s ... 5 min).
    login_free_failures: int = Field(5, ge=1, le=100)
    login_failure_window_minutes: int = Field(15, ge=1, le=24 * 60)
    # Rows per page of a workbench queue.
    queue_page_size: int = Field(50, ge=5, le=500)
    # --- end workbench ---

    host: str = "127.0.0.1"
    port: int = 8000

    # --- deployment and the calendar's horizon (issue 29; README "Running it for real") ---
    # Addresses (or networks, e.g. 10.0.0.0/24) of the reverse proxies whose
    # X-Forwarded-For/-Proto headers are believed: the client address for sign-in throttling
    # and the access log is the forwarded one only for a request that came from one of these.
    # Empty (the default): no header is believed, the address is the TCP peer's.
    trusted_proxies: str = ""
    # The path prefix the proxy serves casegrid under (e.g. "/casegrid", proxy stripping it);
    # links and redirects are made under it. Empty: served at the root.
    root_path: str = Field("", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    # Warn (worker log, admins' workbench home, /health/ready) when the first day whose
    # deadlines would be provisional (no holiday notice for its year) is fewer days away.
    calendar_horizon_days: int = Field(60, ge=1, le=366)
    # /health/ready: a worker heartbeat older than this means the worker is not running.
    worker_stale_s: float = Field(300.0, gt=0)
    # --- end of issue 29's block ---

    # -- Operations: metrics, logs, a read replica (README "Operations") -----------------
    # /metrics in Prometheus' format: "off", "loopback" (only from 127.0.0.1/::1, the
    # default: a local Prometheus or node agent scrapes it), or "token" (a bearer token
    # equal to metrics_token, for a scraper on another host).
    metrics: str = Field("loopback", pattern="^(off|loopback|token)$")
    metrics_token: str = ""
    # "text" or "json" (one JSON object per line, for log collectors).
    log_format: str = Field("text", pattern="^(text|json)$")
    # A hot standby for the read-heavy work (hotspots, statistics, exports, map data).
    # Empty: everything reads the primary. A standby further behind than
    # replica_max_lag_s is passed over for the primary.
    read_database_url: str = ""
    replica_max_lag_s: float = Field(30.0, gt=0)
    # Port of the embedded cluster's standby (`casegrid db replica start`).
    replica_port: int = 55433

    # --- privacy (issue 28; cases/publication.py, cases/privacy.py, cases/retention.py) ---
    # Where the public sees a public case: "grid" (the centre of its cell of a square grid
    # in the metric CRS, privacy_grid_m wide) or "community" (the community's name only,
    # no coordinates).
    privacy_public_location: Literal["grid", "community"] = "grid"
    # Cell size of that grid, metres.
    privacy_grid_m: float = Field(100.0, ge=10, le=5000)
    # Mask phone, ID and bank card numbers and e-mail addresses in free text when it is
    # stored. Off only to measure what masking costs (bench --only privacy).
    privacy_mask_free_text: bool = True
    # Personal data of closed cases is purged this many days after closing (3 years).
    privacy_retention_days: int = Field(1095, ge=1)
    # The worker runs the purge nightly when true.
    privacy_purge_nightly: bool = False
    # Cases per purge transaction: short transactions, so intake never waits long.
    privacy_purge_batch: int = Field(2000, ge=1, le=100_000)

    # --- serving (issue 20 and 26): uvicorn's supervisor of `casegrid serve --workers N` ---
    # Seconds uvicorn's supervisor waits for a worker to answer its health check, and for a
    # worker started on SIGHUP to finish starting before it gives the restart up (its
    # --timeout-worker-healthcheck). uvicorn's 5 s is shorter than a worker's start (importing
    # the app and the geo stack, the lifespan) on a busy two-core machine, so SIGHUP restarts
    # were abandoned and a busy worker could be killed as hung (bench/RESULTS.md, issue 20).
    serve_worker_healthcheck_s: int = Field(60, ge=1, le=3600)
    # --- end of serving ---

    # --- the city (issue 20): its clock and its metric CRS, so another city is a setting ---
    # IANA time zone of the city's clocks: deadlines, local dates and hours, times typed
    # without an offset, the database session. It must keep one UTC offset all year (no
    # daylight saving): the vectorised deadlines (cases/deadlines_vec.py) count on it.
    time_zone: str = "Asia/Shanghai"
    # EPSG code of the projected CRS for metric work (buffers, distances, grids, hotspots):
    # Tengzhou's CGCS2000 / 3-degree Gauss-Kruger zone 39.
    metric_srid: int = Field(4527, gt=0)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time zone {value!r} is not an IANA zone, e.g. Asia/Shanghai") from None
        return value
    # --- end of the city's block ---


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment once."""
    return Settings()
