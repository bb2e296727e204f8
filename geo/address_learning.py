"""Learning the address memory from the ledger's GPS/app cases, incrementally and guarded.

A case whose point was measured where the problem is (a phone's GPS, the app, a patrol
handset: ``address_memory.MEASURED_CHANNELS``) and that routed into a community says where
its address is. One such case is a *sighting*, not yet memory: a wrong GPS fix, a caller
who typed a neighbour's address, or someone feeding the memory on purpose would otherwise
become the place every later phone call from that address is sent to. The rule (also in
docs/addresses.md, "The memory"):

* each sighting is kept (``address_sighting``: normalised address, point, community);
* for each address, the sightings within ``address_learn_radius_m`` of the median of all
  its sightings *agree*; the memory learns the agreeing ones when at least
  ``address_learn_min_reporters`` different reporters (by phone number; a case without
  one counts as its own reporter) are among them and they are at least two thirds of the
  address's sightings. Scattered sightings (a long street named without a number, or
  reporters who disagree) never become memory; later sightings that agree are added as
  they come, each once (``learned``);
* a dispatcher's placement is not a sighting: it teaches the memory at once, in the
  re-route itself (``cases.workflow``).

Incremental: :func:`learn_new_cases` reads only cases after its watermark
(``address_learn_state``), in id order. Ids are handed out when a case is inserted, not when
its transaction commits, so a missing id may still arrive (a long bulk import): the
watermark stops before it and waits ``address_learn_settle_s`` for it before passing it (a
rolled-back insert leaves a gap for ever). Sightings are keyed by the case, so reading a
case twice changes nothing (``rescan``). The worker calls it (``casegrid.worker``), as does
``casegrid gazetteer learn-ledger``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from casegrid.settings import Settings, get_settings
from geo.address_memory import COLUMNS as MEMORY_COLUMNS
from geo.address_memory import MEASURED_CHANNELS, learn
from geo.address_normalize import city_prefixes, parse_address
from geo.routing import M_PER_DEG

LEARNER = "ledger"
BATCH = 5000
# Agreeing sightings must be at least this share of an address's sightings.
AGREE_SHARE = 2 / 3
# Rules of a point measured inside a community (not the nearest one, not an address rule,
# not a dispatcher's placement, which the re-route itself teaches).
MEASURED_RULES = ("inside", "on_boundary")


@dataclass
class LearnReport:
    """What one call read and taught."""

    cases_read: int = 0
    sightings: int = 0
    learned: int = 0  # sightings that became memory in this call
    last_case_id: int = 0
    waiting_for: int | None = None  # the missing case id the watermark waits for


_READ_SQL = """
SELECT c.id,
       CASE WHEN c.address IS NOT NULL AND c.geom IS NOT NULL AND c.community_code IS NOT NULL
                 AND c.channel = ANY(:channels) AND c.route_rule = ANY(:rules)
            THEN true ELSE false END AS measured,
       c.address, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.community_code
FROM "case" c
WHERE c.id > :after
ORDER BY c.id
LIMIT :limit
"""


def _state(conn: Connection, name: str, settle_s: float) -> tuple[int, object]:
    """The watermark row, locked: two workers never read the same cases at once."""
    conn.execute(text("INSERT INTO address_learn_state (name) VALUES (:n) ON CONFLICT DO NOTHING"),
                 {"n": name})
    row = conn.execute(text("SELECT last_case_id, gap_since, now() - gap_since >= "
                            "make_interval(secs => :settle) AS stale FROM address_learn_state"
                            " WHERE name = :n FOR UPDATE"),
                       {"n": name, "settle": settle_s}).one()
    return int(row.last_case_id), row


def learn_new_cases(conn: Connection, settings: Settings | None = None, *, name: str = LEARNER,
                    limit: int = BATCH, rescan: bool = False) -> LearnReport:
    """Read the cases after the watermark (at most ``limit``; module docstring), keep the
    sightings among them, teach the memory what enough reporters agree on, move the
    watermark. ``rescan``: from the first case (changes nothing already read). Runs in the
    caller's transaction."""
    settings = settings or get_settings()
    after, state = _state(conn, name, settings.address_learn_settle_s)
    if rescan:
        after = 0
    rows = conn.execute(text(_READ_SQL), {"after": after, "limit": limit,
                                          "channels": list(MEASURED_CHANNELS),
                                          "rules": list(MEASURED_RULES)}).all()
    report = LearnReport(last_case_id=after)
    # The contiguous run of ids after the watermark; a missing id stops it, unless it has
    # been missing longer than the settle time (then it is passed, as a rolled-back insert).
    expected, take = after + 1, []
    for r in rows:
        if r.id != expected and not rescan and (take or not state.stale):
            report.waiting_for = expected
            break
        take.append(r)
        expected = r.id + 1
    if take:
        report.cases_read = len(take)
        report.last_case_id = take[-1].id
        measured = [r for r in take if r.measured]
        report.sightings = _keep_sightings(conn, measured)
        report.learned = _promote(conn, {_key(r.address) for r in measured} - {""}, settings)
    # gap_since: since when the id after the watermark has been missing (a new gap when
    # the watermark moved, the same one when it did not).
    conn.execute(text(
        "UPDATE address_learn_state SET last_case_id = :last, updated_at = now(),"
        " gap_since = CASE WHEN NOT :waiting THEN NULL"
        "                  WHEN :moved OR gap_since IS NULL THEN now() ELSE gap_since END"
        " WHERE name = :n"),
        {"last": report.last_case_id, "waiting": report.waiting_for is not None,
         "moved": bool(take), "n": name})
    return report


def _key(address: str | None) -> str:
    return parse_address(address, city_prefixes()).key if address else ""


_SIGHTING_SQL = """
INSERT INTO address_sighting (case_id, key, community_label, lon, lat, street_key, house_no)
SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:keys AS text[]), CAST(:labels AS text[]),
                     CAST(:lons AS float8[]), CAST(:lats AS float8[]), CAST(:streets AS text[]),
                     CAST(:numbers AS int[]))
ON CONFLICT (case_id) DO NOTHING
"""


def _keep_sightings(conn: Connection, rows: list) -> int:
    prefixes = city_prefixes()
    parsed = {a: parse_address(a, prefixes) for a in {r.address for r in rows}}
    keep = [r for r in rows if parsed[r.address].key and math.isfinite(r.lon)]
    if not keep:
        return 0
    return conn.execute(text(_SIGHTING_SQL), {
        "ids": [r.id for r in keep], "keys": [parsed[r.address].key for r in keep],
        "labels": [r.community_code for r in keep], "lons": [r.lon for r in keep],
        "lats": [r.lat for r in keep], "streets": [parsed[r.address].street_key for r in keep],
        "numbers": [parsed[r.address].number for r in keep]}).rowcount


_CLUSTER_SQL = """
SELECT s.case_id, s.key, s.community_label, s.lon, s.lat, s.street_key, s.house_no, s.learned,
       COALESCE(NULLIF(regexp_replace(c.reporter_phone, '[^0-9]', '', 'g'), ''),
                'case:' || s.case_id) AS reporter
FROM address_sighting s JOIN "case" c ON c.id = s.case_id
WHERE s.key = ANY(:keys)
"""


def agreeing(lons: np.ndarray, lats: np.ndarray, reporters: list[str], radius_m: float,
             min_reporters: int) -> np.ndarray:
    """Which sightings of one address agree (module docstring): a boolean per sighting,
    all False when the address is not confidently placed."""
    lon0, lat0 = float(np.median(lons)), float(np.median(lats))
    dx = (lons - lon0) * M_PER_DEG * math.cos(math.radians(lat0))
    dy = (lats - lat0) * M_PER_DEG
    near = np.hypot(dx, dy) <= radius_m
    people = {reporters[i] for i in np.flatnonzero(near)}
    if len(people) < min_reporters or near.sum() < AGREE_SHARE * len(lons):
        return np.zeros(len(lons), dtype=bool)
    return near


def _promote(conn: Connection, keys: set[str], settings: Settings) -> int:
    """Teach the memory the agreeing, not yet learned sightings of ``keys``."""
    if not keys:
        return 0
    rows = conn.execute(text(_CLUSTER_SQL), {"keys": sorted(keys)}).all()
    by_key: dict[str, list] = defaultdict(list)
    for r in rows:
        by_key[r.key].append(r)
    new = []
    for group in by_key.values():
        ok = agreeing(np.array([r.lon for r in group]), np.array([r.lat for r in group]),
                      [r.reporter for r in group], settings.address_learn_radius_m,
                      settings.address_learn_min_reporters)
        new += [r for r, good in zip(group, ok, strict=True) if good and not r.learned]
    if not new:
        return 0
    frame = pd.DataFrame({"key": [r.key for r in new],
                          "community_label": [r.community_label for r in new],
                          "lon": [r.lon for r in new], "lat": [r.lat for r in new],
                          "street_key": [r.street_key for r in new],
                          "house_no": [r.house_no for r in new]})
    grouped = frame.groupby(["key", "community_label"], sort=False, dropna=False).agg(
        n=("lon", "size"), sum_lon=("lon", "sum"), sum_lat=("lat", "sum"),
        street_key=("street_key", "first"), house_no=("house_no", "first")).reset_index()
    grouped["house_no"] = grouped["house_no"].astype("Int64")
    learn(conn, grouped[list(MEMORY_COLUMNS)], "ledger")
    conn.execute(text("UPDATE address_sighting SET learned = true WHERE case_id = ANY(:ids)"),
                 {"ids": [r.case_id for r in new]})
    return len(new)


def learn_all(conn: Connection, settings: Settings | None = None, *, rescan: bool = False,
              name: str = LEARNER) -> LearnReport:
    """:func:`learn_new_cases` until it has read every case it can (the CLI; the worker
    reads one batch per pass)."""
    total = LearnReport()
    first = True
    while True:
        r = learn_new_cases(conn, settings, name=name, rescan=rescan and first)
        first = False
        total.cases_read += r.cases_read
        total.sightings += r.sightings
        total.learned += r.learned
        total.last_case_id = r.last_case_id
        total.waiting_for = r.waiting_for
        if r.cases_read == 0 or r.waiting_for is not None:
            return total
