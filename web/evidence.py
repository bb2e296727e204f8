"""The case page's photos: what each panel shows, and refusals of files in words.

The files and who may see them come from :func:`cases.attachments.list_for_case` (another
community's files never reach a page); here they are only grouped for the panels:

* the citizen's photos (stage ``intake``), with where and when each was taken (staff);
* the handling's before/after pairs, one per ``handle`` event: *after* is that handling's
  own photos, *before* is what the officer went to fix (the citizen's photos for the first
  handling; for a rework, the photos of the verification that sent it back, else the
  previous handling's);
* the verification photos (``verify_pass`` / ``verify_fail``), the photos of a return, and
  the photos added later with a caption.

The images themselves are fetched by the browser from the attachment routes
(``/api/v1/attachments/{id}`` and ``/thumb``) with the person's session cookie.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection

from casegrid.errors import FileRefused, FileTooLarge, UnsupportedFile
from casegrid.settings import Settings
from cases import attachments
from cases.images import display_name
from cases.tokens import Principal
from web import i18n

VERIFY_ACTIONS = ("verify_pass", "verify_fail")
_INDEXED = re.compile(r"^\w+\[(\d+)\]$")


def page_context(conn: Connection, case: dict, events: Sequence[dict], who: Principal,
                 settings: Settings, root: str, params: Mapping[str, str]) -> dict:
    """What the photo panels and the forms' photo inputs need, for the case page's
    context: ``evidence`` (the groups of :func:`group`), ``photo_links`` (photo URLs sent
    at intake or with an action, before files were stored), ``can_add_photos``,
    ``photo_limits`` and ``photos_added`` (how many files the last upload added)."""
    # The case page has read the case and checked who may see it.
    files = attachments.list_for_case(conn, case["id"], who, settings, case_seen=True)
    links = list(case.get("photo_urls") or [])
    for e in events:
        links += [p for p in (e.get("data") or {}).get("photo_urls") or [] if p not in links]
    added = params.get("photos_added", "")
    return {
        "evidence": group(files, events, root),
        "photo_links": links,
        "can_add_photos": attachments.may_add(who),
        "photo_limits": {"mb": f"{settings.attachment_max_file_mb:g}",
                         "n": settings.attachment_max_per_case,
                         "bytes": int(settings.attachment_max_file_mb * 1_000_000)},
        "photos_added": int(added) if added.isdigit() else None,
    }


def group(files: Sequence[dict], events: Sequence[dict], root: str = "") -> dict:
    """The case's files (as :func:`cases.attachments.describe` gives them, oldest first)
    in the page's groups: ``citizen``, ``rounds`` (``n``, ``event``, ``before``,
    ``after``), ``verify`` and ``returns`` (``event``, ``files``), ``added``; ``count``."""
    items = [_item(f, root) for f in files]
    by_event: dict[int | None, list[dict]] = defaultdict(list)
    for it in items:
        by_event[it["event_id"]].append(it)
    citizen = [i for i in items if i["stage"] == "intake"]
    rounds, verify, returns = [], [], []
    before = citizen
    for e in events:
        own = by_event.get(e["id"], [])
        if e["action"] == "handle":
            rounds.append({"n": len(rounds) + 1, "event": e, "before": before, "after": own})
            before = own or before
        elif e["action"] in VERIFY_ACTIONS:
            if own:
                verify.append({"event": e, "files": own})
            if e["action"] == "verify_fail" and own:
                before = own  # the rework starts from what verification found
        elif e["action"] == "return" and own:
            returns.append({"event": e, "files": own})
    return {"citizen": citizen, "rounds": rounds, "verify": verify, "returns": returns,
            "added": [i for i in items if i["stage"] == "added"], "count": len(items)}


def _item(f: dict, root: str) -> dict:
    return {**f, "href": root + f["url"],
            "thumb": root + f["thumb_url"] if f.get("thumb_url") else None,
            "name": f.get("original_name") or f"{f['kind']} {f['id']}"}


def refusal_text(exc: FileRefused, names: Sequence[str | None], lang: str,
                 settings: Settings) -> str:
    """A refused file in the page's words: which file (``names``: the names the files were
    sent as, in order; the refusal's field says which, ``photo[2]``), what is wrong and
    what to do. Nothing of the form was saved, and a browser does not keep chosen files,
    so it also asks for the photos again."""
    t = i18n.strings(lang)
    m = _INDEXED.match(exc.field or "")
    index = int(m.group(1)) if m else None
    sent = names[index] if index is not None and index < len(names) else None
    name = display_name(sent) or (f"#{index + 1}" if index is not None else "")
    mb, most = f"{settings.attachment_max_file_mb:g}", settings.attachment_max_per_case
    if isinstance(exc, FileTooLarge):
        text = t["file_too_large"].format(f=name, mb=mb)
    elif isinstance(exc, UnsupportedFile):
        text = t["file_type"].format(f=name)
    elif exc.field == "caption":
        text = exc.message
    elif index is None:  # a count: of the request, or of the case with these files
        text = t["file_count"].format(n=most) + ("" if lang != "en" else f" ({exc.message})")
    else:
        text = t["file_unreadable"].format(f=name, m=exc.message)
    return f"{text} {t['files_again']}"
