"""Evidence on a case: photos and documents, their rows, who may see them.

Files are checked and prepared by :mod:`cases.images` (no database), written to the file
store (:mod:`casegrid.filestore`) *first*, and only then named by rows inserted in the same
transaction as the case change they belong to (the intake, a workflow action, or adding a
photo to the case). A crash between the two leaves at most a file no row names, which
:func:`sweep` removes after a grace period; never a row without its file.

Stages (what the file is evidence of): ``intake`` (the citizen's photo), ``handle`` (after
the handling), ``verify_pass`` / ``verify_fail`` (on-site verification), ``return`` (why a
case was sent back), ``added`` (added to the case later, with a caption).

Who sees what: a file is visible to whoever may see its case (a community officer only in
its communities; another community's file is a 404, as its case is). Citizens' photos
(``intake``) are never shown to planners nor served without a token, unless
``attachment_intake_public`` is set (Open311 ``media_url``). The EXIF time and position of
the original, and the name it was sent as, are staff facts: never for planners or the
public. A caption is free text like a note and is stored masked (:mod:`cases.privacy`;
like an activity's note, the text as written is not kept: a caption describes a file,
the reporter's own phone has its field).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, bindparam, text

from casegrid.errors import FileRefused, Forbidden, NotFound, Unauthorized
from casegrid.filestore import FileStore, SweepResult
from casegrid.settings import Settings
from cases import activities, publication
from cases.images import Limits, Prepared, Upload, prepare
from cases.intake import IntakeResult, NewCase, create_case
from cases.privacy import mask_contacts
from cases.tokens import Principal
from cases.workflow import apply_action, load_case
from geo.coords import METRIC_SRID

STAGES = ("intake", "handle", "verify_pass", "verify_fail", "return", "added", "activity")
# Photos of an activity (cases.activity_photos), not of a case.
ACTIVITY_STAGE = "activity"
# Workflow actions that carry evidence, and the stage their files are filed under.
ACTION_STAGES = {"handle": "handle", "verify_pass": "verify_pass",
                 "verify_fail": "verify_fail", "return": "return"}
# Roles that may add a photo to a case they can see (planners only read).
ADDERS = ("dispatcher", "supervisor", "community_officer", "intake")
MAX_CAPTION = 500


def limits(settings: Settings) -> Limits:
    """The per-file limits from settings."""
    return Limits(max_bytes=int(settings.attachment_max_file_mb * 1_000_000),
                  max_pixels=settings.attachment_max_pixels,
                  thumb_px=settings.attachment_thumb_px)


def store_for(settings: Settings) -> FileStore:
    """The file store the settings name."""
    return FileStore(settings.attachment_root)


def prepare_all(uploads: Sequence[Upload], settings: Settings) -> list[Prepared]:
    """Check and prepare every file of a request (CPU work: call it off the event loop).
    The first refusal is raised; nothing has been stored yet."""
    if len(uploads) > settings.attachment_max_per_case:
        raise FileRefused(
            f"{len(uploads)} files were sent; a case holds at most "
            f"{settings.attachment_max_per_case} files: send fewer", field=uploads[0].field)
    lim = limits(settings)
    return [prepare(u, lim) for u in uploads]


def write_files(store: FileStore, prepared: Iterable[Prepared]) -> None:
    """Write the files of ``prepared`` to the store, before their rows are committed."""
    for p in prepared:
        store.put(p.stored)
        if p.thumb is not None:
            store.put(p.thumb)


def ensure_files(store: FileStore, prepared: Iterable[Prepared]) -> None:
    """After the commit: put back any file a sweep removed between its write and the
    commit (it was older than the grace period and named by no row at that moment)."""
    for p in prepared:
        for data, name in ((p.stored, p.sha256), (p.thumb, p.thumb_sha256)):
            if data is not None and not store.exists(name):
                store.put(data)


def attach(conn: Connection, case_id: int, prepared: Sequence[Prepared], *, stage: str,
           actor: Principal, max_per_case: int, caption: str | None = None,
           event_id: int | None = None) -> list[int]:
    """Insert the rows of ``prepared`` (files already written) on ``case_id`` in the caller's
    transaction and return their ids. Locks the case row, so two uploads cannot together
    pass the per-case limit; :class:`FileRefused` when they would."""
    if stage not in STAGES or stage == ACTIVITY_STAGE:
        raise ValueError(f"unknown stage {stage!r}")
    return _insert(conn, "case", case_id, prepared, stage=stage, actor=actor,
                   max_files=max_per_case, caption=caption, event_id=event_id)


def attach_to_activity(conn: Connection, activity_id: int, prepared: Sequence[Prepared], *,
                       actor: Principal, max_files: int, caption: str | None = None) -> list[int]:
    """Insert the rows of ``prepared`` (files already written) as photos of the activity
    ``activity_id`` (stage ``activity``), under the same per-record limit as a case's; the
    caller has checked that ``actor`` may record for it (``cases.activity_photos``)."""
    return _insert(conn, "activity", activity_id, prepared, stage=ACTIVITY_STAGE, actor=actor,
                   max_files=max_files, caption=caption, event_id=None)


# What a file can belong to: (table, the attachment column naming it). Fixed identifiers.
_OWNERS = {"case": ('"case"', "case_id"), "activity": ("activity", "activity_id")}


def _insert(conn: Connection, owner: str, owner_id: int, prepared: Sequence[Prepared], *,
            stage: str, actor: Principal, max_files: int, caption: str | None,
            event_id: int | None) -> list[int]:
    if not prepared:
        return []
    caption = _caption(caption)
    table, column = _OWNERS[owner]
    # The owner's row is locked: two uploads cannot together pass the limit.
    held = conn.execute(text(
        f"SELECT (SELECT count(*) FROM attachment WHERE {column} = o.id) FROM {table} o "
        "WHERE o.id = :id FOR UPDATE"), {"id": owner_id}).scalar_one()
    if held + len(prepared) > max_files:
        names = ", ".join(repr(p.original_name or "unnamed") for p in prepared[:3])
        raise FileRefused(
            f"{owner} {owner_id} holds {held} files; with {len(prepared)} more ({names}) it "
            f"would pass the limit of {max_files} files per {owner}", field="photo")
    rows = [{
        "case_id": owner_id if owner == "case" else None,
        "activity_id": owner_id if owner == "activity" else None,
        "event_id": event_id, "stage": stage, "kind": p.kind,
        "media_type": p.media_type, "sha256": p.sha256, "thumb_sha256": p.thumb_sha256,
        "original_sha256": p.original_sha256, "original_name": p.original_name,
        "size_bytes": len(p.stored), "width": p.width, "height": p.height, "pages": p.pages,
        "caption": caption, "taken_at": p.taken_at, "lon": p.taken_lon, "lat": p.taken_lat,
        "by": actor.name, "role": actor.role,
    } for p in prepared]
    ids = []
    for row in rows:  # a handful per request at most (the per-record limit)
        ids.append(conn.execute(text(
            "INSERT INTO attachment (case_id, activity_id, event_id, stage, kind, media_type, "
            "sha256, thumb_sha256, original_sha256, original_name, size_bytes, width, height, "
            "pages, caption, taken_at, taken_geom, uploaded_by, uploaded_role) VALUES "
            "(:case_id, :activity_id, :event_id, :stage, :kind, :media_type, :sha256, "
            ":thumb_sha256, :original_sha256, :original_name, :size_bytes, :width, :height, "
            ":pages, :caption, :taken_at, "
            "CASE WHEN CAST(:lon AS float8) IS NULL THEN NULL ELSE "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) END, :by, :role) RETURNING id"),
            row).scalar_one())
    return ids


def _caption(caption: str | None) -> str | None:
    if caption is None or not caption.strip():
        return None
    caption = caption.strip()
    if "\x00" in caption:
        raise FileRefused("caption contains a NUL character; remove it", field="caption")
    if len(caption) > MAX_CAPTION:
        raise FileRefused(f"caption has {len(caption)} characters; the limit is {MAX_CAPTION}",
                          field="caption")
    return mask_contacts(caption)


# -- the places that attach --------------------------------------------------------------


def register_with_photos(conn: Connection, data: NewCase, actor: Principal,
                         prepared: Sequence[Prepared], settings: Settings) -> IntakeResult:
    """Intake's hook: register ``data`` and attach its photos (stage ``intake``) in the
    caller's transaction. A resent ticket (``created`` false) returns the first case and
    attaches nothing again."""
    result = create_case(conn, data, actor, settings)
    if result.created:
        attach(conn, result.case["id"], prepared, stage="intake", actor=actor,
               max_per_case=settings.attachment_max_per_case)
    return result


def attach_to_action(conn: Connection, case_id: int, action: str, prepared: Sequence[Prepared],
                     actor: Principal, settings: Settings) -> list[int]:
    """The workflow's hook, called right after ``cases.workflow.apply_action`` took
    ``action`` on ``case_id`` in this transaction: the files become evidence of that event."""
    if not prepared:
        return []
    stage = ACTION_STAGES.get(action)
    if stage is None:
        raise FileRefused(f"the action {action!r} takes no photos; photos go with "
                          f"{', '.join(ACTION_STAGES)}, or are added to the case with a "
                          "caption", field="photo")
    event_id = conn.execute(text(
        "SELECT max(id) FROM case_event WHERE case_id = :id AND action = :a"),
        {"id": case_id, "a": action}).scalar_one()
    return attach(conn, case_id, prepared, stage=stage, actor=actor, event_id=event_id,
                  max_per_case=settings.attachment_max_per_case)


def act_with_files(conn: Connection, case_id: int, action: str, payload: dict,
                   prepared: Sequence[Prepared], actor: Principal, version: int | None,
                   settings: Settings) -> dict:
    """Take ``action`` on ``case_id`` and attach its evidence files (already written), in a
    savepoint of the caller's transaction: the action and its files are stored together or
    not at all (a refused action, a stale version, or files past the per-case limit)."""
    with conn.begin_nested():
        case = apply_action(conn, case_id, action, payload, actor, version)
        attach_to_action(conn, case_id, action, prepared, actor, settings)
    return case


def may_add(actor: Principal) -> bool:
    """Whether ``actor``'s role may add files to a case it can see (planners only read)."""
    return actor.role in (*ADDERS, "admin")


def add_to_case(conn: Connection, case_id: int, prepared: Sequence[Prepared], actor: Principal,
                settings: Settings, caption: str | None) -> list[int]:
    """Add files with a caption to a case the actor may see (404 otherwise; 403 for a role
    that only reads)."""
    load_case(conn, case_id, actor)
    if not may_add(actor):
        raise Forbidden(f"role {actor.role!r} may not add files to a case; allowed: "
                        f"{', '.join(sorted((*ADDERS, 'admin')))}", field="Authorization")
    return attach(conn, case_id, prepared, stage="added", actor=actor, caption=caption,
                  max_per_case=settings.attachment_max_per_case)


# -- reading -------------------------------------------------------------------------------


def sees_staff_facts(actor: Principal | None) -> bool:
    """EXIF time and position, and sent file names: staff only."""
    return actor is not None and actor.role != "planner"


def _may_see_stage(stage: str, actor: Principal | None, settings: Settings) -> bool:
    if stage != "intake" or settings.attachment_intake_public:
        return True
    return actor is not None and actor.role != "planner"


_LIST_SQL = f"""
SELECT a.id, a.case_id, a.event_id, a.stage, a.kind, a.media_type, a.size_bytes, a.width,
       a.height, a.pages, a.caption, a.uploaded_by, a.uploaded_role, a.created_at,
       a.thumb_sha256 IS NOT NULL AS has_thumb, a.original_name, a.taken_at,
       ST_X(a.taken_geom) AS taken_lon, ST_Y(a.taken_geom) AS taken_lat,
       ST_Distance(ST_Transform(a.taken_geom, {METRIC_SRID}), ST_Transform(c.geom, {METRIC_SRID}))
           AS taken_distance_m
FROM attachment a JOIN "case" c ON c.id = a.case_id
"""


def list_for_case(conn: Connection, case_id: int, actor: Principal, settings: Settings, *,
                  case_seen: bool = False) -> list[dict]:
    """The files of a case the actor may see, oldest first, each with its URLs; staff also
    get where and when the original was taken and how far that is from the case's point.
    ``case_seen``: the caller has read the case in this transaction and checked that the
    actor may see it (the case page), so it is not read again.

    The EXIF position is WGS-84 (GPS); the case's point is stored in WGS-84 too, converted
    from the GCJ-02 or BD-09 the reporter's app sent (``geo.coords`` at intake), so the two
    compare directly; the distance is measured in the project's metric CRS."""
    if not case_seen:
        load_case(conn, case_id, actor)
    rows = conn.execute(text(_LIST_SQL + " WHERE a.case_id = :id ORDER BY a.id"),
                        {"id": case_id}).mappings()
    return [describe(dict(r), actor) for r in rows if _may_see_stage(r["stage"], actor, settings)]


def file_urls(attachment_id: int, has_thumb: bool) -> dict[str, str | None]:
    """Where a file and its thumbnail (None for a PDF) are served."""
    return {"url": f"/api/v1/attachments/{attachment_id}",
            "thumb_url": f"/api/v1/attachments/{attachment_id}/thumb" if has_thumb else None}


def describe(row: dict, actor: Principal | None) -> dict:
    """An attachment row as the API shows it to ``actor``."""
    out = {k: row[k] for k in ("id", "case_id", "event_id", "stage", "kind", "media_type",
                               "size_bytes", "width", "height", "pages", "caption",
                               "uploaded_by", "uploaded_role", "created_at")}
    out.update(file_urls(row["id"], row["has_thumb"]))
    if sees_staff_facts(actor):
        distance = row["taken_distance_m"]
        out["original_name"] = row["original_name"]
        out["taken"] = None if row["taken_at"] is None and row["taken_lon"] is None else {
            "at": row["taken_at"], "lon": row["taken_lon"], "lat": row["taken_lat"],
            "distance_m": round(distance, 1) if distance is not None else None,
        }
    return out


@dataclass
class Servable:
    """What to send for a file: its store name, type and ETag."""

    name: str
    media_type: str

    @property
    def etag(self) -> str:
        return f'"{self.name}"'


def servable(conn: Connection, attachment_id: int, actor: Principal | None, settings: Settings,
             *, thumb: bool = False) -> Servable:
    """The stored copy (or thumbnail) of an attachment, if ``actor`` may see it: 404 when
    the attachment or its case (or activity) is out of the actor's sight, 401 without a
    token unless the file is a citizen's photo made public by ``attachment_intake_public``
    (an activity's photo never is)."""
    row = conn.execute(text(
        "SELECT a.case_id, a.activity_id, a.stage, a.kind, a.media_type, a.sha256, "
        "a.thumb_sha256, c.community_code, CASE WHEN a.activity_id IS NOT NULL THEN "
        "ARRAY(SELECT x.community_code FROM activity_community x "
        "WHERE x.activity_id = a.activity_id) END AS activity_communities "
        'FROM attachment a LEFT JOIN "case" c ON c.id = a.case_id WHERE a.id = :id'),
        {"id": attachment_id}).mappings().first()
    public = (row is not None and row["stage"] == "intake" and settings.attachment_intake_public
              # and only of a case the public may see at all (cases.publication)
              and publication.is_public_case(conn, row["case_id"]))
    if actor is None and not public:
        raise Unauthorized("a token is needed: send Authorization: Bearer <token>",
                           field="Authorization")
    missing = NotFound(f"no attachment {attachment_id}" + (" thumbnail" if thumb else ""),
                       field="id")
    if row is None:
        raise missing
    if actor is not None:
        if row["activity_id"] is not None:
            seen = activities.may_see(actor, row["activity_communities"] or [])
        else:
            seen = actor.may_see_community(row["community_code"])
        if not seen:
            raise missing
    if not _may_see_stage(row["stage"], actor, settings):
        raise missing
    if thumb:
        if row["thumb_sha256"] is None:
            raise NotFound(f"attachment {attachment_id} is a {row['kind']} and has no "
                           "thumbnail; fetch the file itself", field="id")
        return Servable(row["thumb_sha256"], "image/jpeg")
    return Servable(row["sha256"], row["media_type"])


def public_intake_photos(conn: Connection, case_ids: Sequence[int]) -> dict[int, int]:
    """The first image each case got at intake (attachment id), for the cases' public
    form where the server publishes citizens' photos (Open311 ``media_url``)."""
    if not case_ids:
        return {}
    rows = conn.execute(text(
        "SELECT DISTINCT ON (case_id) case_id, id FROM attachment WHERE case_id IN :ids "
        "AND stage = 'intake' AND kind = 'image' ORDER BY case_id, id").bindparams(
            bindparam("ids", expanding=True)), {"ids": list(case_ids)})
    return dict(rows.all())


def first_thumbs(conn: Connection, case_ids: Sequence[int], actor: Principal | None,
                 settings: Settings) -> dict[int, str]:
    """The thumbnail URL of each case's first image the actor may see (map popups)."""
    if not case_ids:
        return {}
    stages = [s for s in STAGES if _may_see_stage(s, actor, settings)]
    rows = conn.execute(text(
        "SELECT DISTINCT ON (case_id) case_id, id FROM attachment WHERE case_id IN :ids "
        "AND thumb_sha256 IS NOT NULL AND stage IN :stages ORDER BY case_id, id").bindparams(
            bindparam("ids", expanding=True), bindparam("stages", expanding=True)),
        {"ids": list(case_ids), "stages": stages})
    return {case_id: f"/api/v1/attachments/{aid}/thumb" for case_id, aid in rows}


# -- upkeep --------------------------------------------------------------------------------


def referenced_names(engine: Engine) -> set[str]:
    """Every file name a committed row names."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT sha256 FROM attachment UNION SELECT thumb_sha256 FROM attachment "
            "WHERE thumb_sha256 IS NOT NULL"))
        return {r[0] for r in rows}


def sweep(engine: Engine, store: FileStore, grace_s: float) -> SweepResult:
    """Remove stored files that no row names and that are older than ``grace_s`` seconds
    (left by a request that failed or crashed between its file write and its commit)."""
    return store.sweep(lambda: referenced_names(engine), grace_s)


def missing_files(engine: Engine, store: FileStore) -> list[str]:
    """Names that rows point at but the store does not hold (should always be empty)."""
    return sorted(n for n in referenced_names(engine) if not store.exists(n))
