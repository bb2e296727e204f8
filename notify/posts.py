"""The posts' own notification address: ``community_post.webhook_url``.

Events for a post (``"post"`` among an event's recipients, see :data:`cases.notices.EVENTS`)
go to its own webhook when it has one, else to ``CASEGRID_WEBHOOK_URL``
(:func:`notify.outbox.targets`); SMS goes to the post's ``phone`` from ``casegrid posts
import``. Both the CLI (``casegrid posts list|set-webhook``) and the API
(``GET /api/v1/posts``, ``PUT /api/v1/posts/{code}/webhook``) call these functions.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from casegrid.errors import NotFound
from geo.boundaries import boundary_name_join
from notify.webhook import check_url

_LIST_SQL = f"""
SELECT p.id, p.community_code, cm.name AS community_name, p.name, p.contact_name, p.phone,
       p.webhook_url, p.updated_at
FROM community_post p
{boundary_name_join("community", "p.community_code", "cm")}
ORDER BY p.community_code
"""


def list_posts(conn: Connection) -> list[dict]:
    """Every post with its contact, phone and webhook URL, by community code."""
    return [dict(r) for r in conn.execute(text(_LIST_SQL)).mappings()]


def set_webhook(conn: Connection, community_code: str, url: str | None) -> dict:
    """Set (or, with ``None`` or an empty ``url``, clear) the webhook of the post of
    ``community_code``; return the post's row. The URL is checked first
    (:func:`notify.webhook.check_url`): a bad one changes nothing."""
    url = check_url(url) if url and url.strip() else None
    row = conn.execute(text(
        "UPDATE community_post SET webhook_url = :url, updated_at = now() "
        "WHERE community_code = :code RETURNING id, community_code, name, webhook_url"),
        {"url": url, "code": community_code}).mappings().first()
    if row is None:
        raise NotFound(f"no post for community {community_code!r}; `casegrid posts list` shows "
                       "the posts, `casegrid posts import` adds them", field="community_code")
    return dict(row)
