"""SQLAlchemy Core descriptions of the schema (the migrations in ``migrations/`` are the
source of truth; ``tests/test_schema.py`` checks that the two agree).

Geometry columns use GeoAlchemy2 types with SRID 4326 and ``spatial_index=False``: spatial
indexes are declared explicitly in the migrations.
"""

from __future__ import annotations

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

STORAGE_SRID = 4326

metadata = MetaData()


def _geom(kind: str) -> Geometry:
    return Geometry(kind, srid=STORAGE_SRID, spatial_index=False)


boundary_generation = Table(
    "boundary_generation",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("level", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("source_crs", Text, nullable=False),
    Column("note", Text),
    Column("feature_count", Integer, nullable=False),
    Column("report", JSONB, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("activated_at", DateTime(timezone=True)),
)

subdistrict = Table(
    "subdistrict",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation_id", Integer, ForeignKey("boundary_generation.id"), nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("geom", _geom("MULTIPOLYGON"), nullable=False),
)

community = Table(
    "community",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("generation_id", Integer, ForeignKey("boundary_generation.id"), nullable=False),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("subdistrict_code", Text),
    Column("area_m2", Float),
    Column("properties", JSONB, nullable=False),
    Column("geom", _geom("MULTIPOLYGON"), nullable=False),
    Column("population", Integer),
)

community_piece = Table(
    "community_piece",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("community_id", Integer, ForeignKey("community.id"), nullable=False),
    Column("generation_id", Integer, ForeignKey("boundary_generation.id"), nullable=False),
    Column("geom", _geom("POLYGON"), nullable=False),
)

community_post = Table(
    "community_post",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("community_code", Text, nullable=False, unique=True),
    Column("name", Text, nullable=False),
    Column("contact_name", Text),
    Column("phone", Text),
    Column("address", Text),
    Column("hours", Text),
    Column("geom", _geom("POINT")),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("webhook_url", Text),  # migration 0018
)

poi = Table(
    "poi",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("source_id", Text),
    Column("source", Text),
    Column("properties", JSONB, nullable=False),
    Column("geom", _geom("GEOMETRY"), nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

category = Table(
    "category",
    metadata,
    Column("code", Text, primary_key=True),
    Column("name_zh", Text, nullable=False),
    Column("name_en", Text, nullable=False),
    Column("major_zh", Text),
    Column("major_en", Text),
    Column("description", Text),
    Column("active", Boolean, nullable=False),
    Column("duplicate_radius_m", Float),
    Column("duplicate_window_days", Integer),
    # privacy (migration 0017)
    Column("public", Boolean, nullable=False),
)

case = Table(
    "case",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("case_no", Text, nullable=False, unique=True),
    Column("channel", Text, nullable=False),
    Column("external_id", Text),
    Column("category_code", Text, ForeignKey("category.code"), nullable=False),
    Column("description", Text, nullable=False),
    Column("address", Text),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("reporter_name", Text),
    Column("reporter_phone", Text),
    Column("photo_urls", ARRAY(Text), nullable=False),
    Column("input_lon", Float),
    Column("input_lat", Float),
    Column("input_crs", Text),
    Column("geom", _geom("POINT")),
    Column("community_code", Text),
    Column("subdistrict_code", Text),
    Column("post_id", Integer, ForeignKey("community_post.id")),
    Column("generation_id", Integer, ForeignKey("boundary_generation.id")),
    Column("route_rule", Text),
    Column("route_distance_m", Float),
    Column("near_boundary", Boolean, nullable=False),
    Column("route_alternates", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("merged_into", BigInteger, ForeignKey("case.id")),
    Column("current_due_at", DateTime(timezone=True)),
    Column("due_provisional", Boolean, nullable=False),
    Column("reviewed_at", DateTime(timezone=True)),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("handled_at", DateTime(timezone=True)),
    Column("verified_at", DateTime(timezone=True)),
    Column("replied_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("rework_count", Integer, nullable=False),
    Column("extension_count", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # ledger (migration 0003)
    Column("review_due_at", DateTime(timezone=True)),
    Column("dispatch_due_at", DateTime(timezone=True)),
    Column("handle_due_at", DateTime(timezone=True)),
    Column("reply_due_at", DateTime(timezone=True)),
    Column("handle_hours", Float),
    Column("reject_reason", Text),
    Column("pending_extension", JSONB),
    # privacy (migration 0017)
    Column("public_description", Text),
    Column("purged_at", DateTime(timezone=True)),
    # notifications: 签收, reminders, 督办 (migration 0018)
    Column("acknowledge_due_at", DateTime(timezone=True)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_on_time", Boolean),
    Column("handle_soon_at", DateTime(timezone=True)),
    Column("escalated_at", DateTime(timezone=True)),
    # follow-up and reopening (migration 0022)
    Column("follow_up_result", Text),
    Column("follow_up_at", DateTime(timezone=True)),
    Column("reopen_count", Integer, nullable=False),
)

# Free text as written where its stored form was masked (migration 0017, cases.personal_text),
# of a case or (migration 0030) of an activity.
personal_text = Table(
    "personal_text",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("case_id", BigInteger, ForeignKey("case.id")),
    Column("event_id", BigInteger, ForeignKey("case_event.id")),
    Column("activity_id", BigInteger, ForeignKey("activity.id", ondelete="CASCADE")),
    Column("field", Text, nullable=False),
    Column("original", Text, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False),
)

case_event = Table(
    "case_event",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("case_id", BigInteger, ForeignKey("case.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("from_state", Text),
    Column("to_state", Text),
    Column("note", Text),
    Column("data", JSONB, nullable=False),
    Column("user_id", BigInteger, ForeignKey("app_user.id")),  # the person who acted (0023)
)

api_token = Table(
    "api_token",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("communities", ARRAY(Text), nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
)

time_limit = Table(
    "time_limit",
    metadata,
    Column("category_code", Text, primary_key=True),
    Column("channel", Text, primary_key=True),
    Column("step", Text, primary_key=True),
    Column("amount", Numeric, nullable=False),
    Column("unit", Text, nullable=False),
    Column("note", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

case_stat = Table(
    "case_stat",
    metadata,
    Column("dim", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("accepted", Integer, nullable=False),
    Column("registered", Integer, nullable=False),
    Column("dispatched", Integer, nullable=False),
    Column("closed", Integer, nullable=False),
    Column("closed_on_time", Integer, nullable=False),
    Column("closed_reworked", Integer, nullable=False),
    Column("closed_extended", Integer, nullable=False),
    Column("handled", Integer, nullable=False),
    Column("handled_on_time", Integer, nullable=False),
    Column("replied", Integer, nullable=False),
    Column("replied_on_time", Integer, nullable=False),
    Column("hours_sum", Float, nullable=False),
    Column("hours_n", Integer, nullable=False),
    # handling-time histogram buckets h01..h32 (edges: cases.stats.HIST_EDGES)
    *[Column(f"h{i:02d}", Integer, nullable=False) for i in range(1, 33)],
    Column("acknowledged_on_time", Integer, nullable=False),  # migration 0018
)

calendar_year = Table(
    "calendar_year",
    metadata,
    Column("year", Integer, primary_key=True),
    Column("source", Text, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

calendar_day = Table(
    "calendar_day",
    metadata,
    Column("day", Date, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("name", Text),
)

# --- gazetteer and address memory (migration 0016) ---------------------------------------

gazetteer_entry = Table(
    "gazetteer_entry",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("aliases", ARRAY(Text), nullable=False),
    Column("geom", _geom("GEOMETRY"), nullable=False),
    Column("community_code", Text),
    Column("generation_id", Integer, ForeignKey("boundary_generation.id")),
    Column("house_from", Integer),
    Column("house_to", Integer),
    Column("source", Text, nullable=False),
    Column("synthetic", Boolean, nullable=False),
    Column("properties", JSONB, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False),
)

gazetteer_name = Table(
    "gazetteer_name",
    metadata,
    Column("entry_id", BigInteger, ForeignKey("gazetteer_entry.id"), nullable=False),
    Column("name_key", Text, nullable=False),
    Column("exact", Boolean, nullable=False),
)

address_memory = Table(
    "address_memory",
    metadata,
    Column("key", Text, primary_key=True),
    Column("community_label", Text, primary_key=True),
    Column("n", Integer, nullable=False),
    Column("sum_lon", Float, nullable=False),
    Column("sum_lat", Float, nullable=False),
    Column("street_key", Text),
    Column("house_no", Integer),
    Column("source", Text, nullable=False),
    Column("first_at", DateTime(timezone=True), nullable=False),
    Column("last_at", DateTime(timezone=True), nullable=False),
)

case_locate = Table(
    "case_locate",
    metadata,
    Column("case_id", BigInteger, ForeignKey("case.id"), primary_key=True),
    Column("rule", Text),
    Column("confidence", Float, nullable=False),
    Column("normalized", Text, nullable=False),
    Column("why", Text),
    Column("suggestions", JSONB, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reasons", JSONB),  # the explanation as codes (geo.address_why); why: its English
)

# learning the memory from GPS/app cases (migration 0026)
address_learn_state = Table(
    "address_learn_state",
    metadata,
    Column("name", Text, primary_key=True),
    Column("last_case_id", BigInteger, nullable=False),
    Column("gap_since", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

address_sighting = Table(
    "address_sighting",
    metadata,
    Column("case_id", BigInteger, ForeignKey("case.id"), primary_key=True),
    Column("key", Text, nullable=False),
    Column("community_label", Text, nullable=False),
    Column("lon", Float, nullable=False),
    Column("lat", Float, nullable=False),
    Column("street_key", Text),
    Column("house_no", Integer),
    Column("learned", Boolean, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# -- notifications (migration 0018) ---------------------------------------------------------

outbox_event = Table(
    "outbox_event",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("type", Text, nullable=False),
    Column("case_id", BigInteger, ForeignKey("case.id")),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("recipients", JSONB, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("routed_at", DateTime(timezone=True)),
)

outbox_delivery = Table(
    "outbox_delivery",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("event_id", BigInteger, ForeignKey("outbox_event.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("target", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True)),
    Column("last_error", Text),
)

outbox_attempt = Table(
    "outbox_attempt",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("delivery_id", BigInteger, ForeignKey("outbox_delivery.id"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Float),
    Column("worker", Text),
)

case_reminder = Table(
    "case_reminder",
    metadata,
    Column("case_id", BigInteger, ForeignKey("case.id"), primary_key=True),
    Column("kind", Text, primary_key=True),
    Column("round", DateTime(timezone=True), primary_key=True),
    Column("sent_at", DateTime(timezone=True), nullable=False),
)

worker_heartbeat = Table(
    "worker_heartbeat",
    metadata,
    Column("name", Text, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("pid", Integer),
    Column("host", Text),
    Column("info", JSONB, nullable=False),
)

# Staff accounts, their sessions and failed sign-ins (migration 0023, cases/users.py).
app_user = Table(
    "app_user",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("communities", ARRAY(Text), nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("password_changed_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),
)

user_session = Table(
    "user_session",
    metadata,
    Column("id_hash", Text, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("app_user.id"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("address", Text),
)

login_failure = Table(
    "login_failure",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text, nullable=False),
    Column("address", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# evidence (migration 0020)
attachment = Table(
    "attachment",
    metadata,
    Column("id", BigInteger, primary_key=True),
    # A case's file or an activity's photo (migration 0024): exactly one of the two.
    Column("case_id", BigInteger, ForeignKey("case.id")),
    Column("activity_id", BigInteger, ForeignKey("activity.id")),
    Column("event_id", BigInteger, ForeignKey("case_event.id")),
    Column("stage", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("media_type", Text, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("thumb_sha256", Text),
    Column("original_sha256", Text, nullable=False),
    Column("original_name", Text),
    Column("size_bytes", Integer, nullable=False),
    Column("width", Integer),
    Column("height", Integer),
    Column("pages", Integer),
    Column("caption", Text),
    Column("taken_at", DateTime(timezone=True)),
    Column("taken_geom", _geom("POINT")),
    Column("uploaded_by", Text, nullable=False),
    Column("uploaded_role", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

evaluation_indicator = Table(
    "evaluation_indicator",
    metadata,
    Column("indicator", Text, primary_key=True),
    Column("weight", Numeric, nullable=False),
    Column("direction", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

evaluation_config = Table(
    "evaluation_config",
    metadata,
    Column("id", Boolean, primary_key=True),
    Column("scale", Numeric, nullable=False),
    Column("min_cases", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

activity = Table(
    "activity",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("kind", Text, nullable=False),
    Column("kind_name", Text),
    Column("title", Text, nullable=False),
    Column("place", Text),
    Column("poi_id", Integer, ForeignKey("poi.id")),
    Column("geom", _geom("POINT")),
    Column("staff", Integer, nullable=False),
    Column("volunteers", Integer, nullable=False),
    Column("reached", Integer, nullable=False),
    Column("note", Text),
    Column("source", Text, nullable=False),
    Column("import_key", Text, unique=True),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# An activity's history: the reveals of its texts as written (migration 0030).
activity_event = Table(
    "activity_event",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("activity_id", BigInteger, ForeignKey("activity.id", ondelete="CASCADE"),
           nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("user_id", BigInteger, ForeignKey("app_user.id")),
    Column("action", Text, nullable=False),
    Column("data", JSONB),
)

activity_community = Table(
    "activity_community",
    metadata,
    Column("activity_id", BigInteger, ForeignKey("activity.id", ondelete="CASCADE"),
           primary_key=True),
    Column("community_code", Text, primary_key=True),
)

# The citizen's side of the loop (migration 0022).
case_follow_stat = Table(
    "case_follow_stat",
    metadata,
    Column("dim", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("followed_up", Integer, nullable=False),
    Column("satisfied", Integer, nullable=False),
    Column("reopened", Integer, nullable=False),
    Column("reopened_unreplied", Integer, nullable=False),
)

response_template = Table(
    "response_template",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("category_code", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)

track_throttle = Table(
    "track_throttle",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("failures", Integer, nullable=False),
)
