"""Photos of community activities (活动照片), through the evidence machinery of
:mod:`cases.attachments`: the same checks and preparation (:mod:`cases.images`: type from
content, size and pixel limits, metadata stripped, thumbnail), the same file store, the same
table (a row naming ``activity_id`` instead of ``case_id``, stage ``activity``), the same
URLs (``/api/v1/attachments/{id}`` and ``/thumb``) and the same sweep. An activity holds at
most as many files as a case (``attachment_max_per_case``).

Who sees them: whoever sees the activity (:func:`cases.activities.may_see`), never the
public. Who adds them: the roles that record activities, for an activity they see.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, text

from casegrid.settings import Settings
from cases import activities, attachments
from cases.images import Prepared
from cases.tokens import Principal


def record_with_photos(conn: Connection, data: dict, actor: Principal,
                       prepared: Sequence[Prepared], settings: Settings,
                       source: str = "api") -> dict:
    """Check and store an activity and its photos (files already written) in the caller's
    transaction; return the activity with its ``photos``."""
    new = activities.check_activity(conn, data, actor)
    activity_id = activities.store_activity(conn, new, actor.name, source)
    attachments.attach_to_activity(conn, activity_id, prepared, actor=actor,
                                   max_files=settings.attachment_max_per_case)
    item = activities.list_activities(conn, actor, activity_id=activity_id)[0]
    return with_photos(conn, [item])[0]


def add_photos(conn: Connection, activity_id: int, prepared: Sequence[Prepared],
               actor: Principal, settings: Settings, caption: str | None) -> dict:
    """Add photos (with a caption) to an activity the actor sees and may record for;
    return the activity with all its photos."""
    activities.check_recorder(conn, activity_id, actor)
    attachments.attach_to_activity(conn, activity_id, prepared, actor=actor,
                                   max_files=settings.attachment_max_per_case, caption=caption)
    item = activities.list_activities(conn, actor, activity_id=activity_id)[0]
    return with_photos(conn, [item])[0]


def photos_of(conn: Connection, activity_ids: Sequence[int]) -> dict[int, list[dict]]:
    """The photos of each activity, oldest first, with their URLs (activities without
    photos are absent)."""
    if not activity_ids:
        return {}
    rows = conn.execute(text(
        "SELECT id, activity_id, kind, media_type, width, height, caption, uploaded_by, "
        "created_at, thumb_sha256 IS NOT NULL AS has_thumb FROM attachment "
        "WHERE activity_id = ANY(:ids) ORDER BY activity_id, id"),
        {"ids": list(activity_ids)}).mappings()
    out: dict[int, list[dict]] = {}
    for r in rows:
        out.setdefault(r["activity_id"], []).append({
            "id": r["id"], "kind": r["kind"], "media_type": r["media_type"],
            "width": r["width"], "height": r["height"], "caption": r["caption"],
            "uploaded_by": r["uploaded_by"], "created_at": r["created_at"],
            **attachments.file_urls(r["id"], r["has_thumb"])})
    return out


def with_photos(conn: Connection, items: list[dict]) -> list[dict]:
    """``items`` (from :func:`cases.activities.list_activities`), each given its ``photos``."""
    photos = photos_of(conn, [i["id"] for i in items])
    for item in items:
        item["photos"] = photos.get(item["id"], [])
    return items
