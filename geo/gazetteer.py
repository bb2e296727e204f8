"""The gazetteer: the city's own names with their places, stored in PostGIS.

Entries come from three sources, each replaced as a whole when it is loaded again (matched
on ``source``):

* ``builtin``: what casegrid already has, the active subdistricts and communities, the
  posts and the points of interest (:func:`rebuild_builtin`);
* a city's files: compounds, roads with house-number ranges, landmarks ...
  (:func:`import_gazetteer_file`, a dry run with a report unless committed);
* the sample city's synthetic gazetteer (``casegrid.demo.gazetteer``).

Every name and alias is stored under its normalised key (``geo.address_normalize.name_key``),
once more without a generic suffix (善国苑小区 -> 善国苑), and, from three characters on,
under each one-character deletion of it, so that the matcher finds a name said with one
character wrong by an equality join (migration 0016 says why not trigrams). Each entry
knows the community it lies in, by routing against the active boundary generation (a
point or polygon by its point on surface; a road only when one community covers it
whole, else none: the matcher then names the communities it crosses).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, text

from casegrid.csv_text import copy_csv
from casegrid.errors import ImportFailed, InvalidInput
from geo.address_normalize import city_prefixes, name_key, without_generic
from geo.boundaries import active_generation
from geo.boundary_import import ImportReport, as_code, require_fields

KINDS = ("subdistrict", "community", "post", "compound", "building", "road", "doorplate",
         "crossing", "poi", "landmark")
# Names longer than this get no typo keys (long names are rarely mistyped into another
# name, and their deletions would swell the table).
_MAX_TYPO_LEN = 16
_BATCH = 20_000


@lru_cache(maxsize=65536)
def deletions(key: str) -> frozenset[str]:
    """Each one-character deletion of ``key`` (none for keys shorter than three)."""
    if len(key) < 3 or len(key) > _MAX_TYPO_LEN:
        return frozenset()
    return frozenset(key[:i] + key[i + 1:] for i in range(len(key)))


def entry_keys(names: list[str], prefixes: tuple[str, ...]) -> dict[str, bool]:
    """Lookup keys of an entry's names: key -> exact (True) or a typo key (False)."""
    keys: dict[str, bool] = {}
    for name in names:
        k = name_key(name, prefixes)
        if not k:
            continue
        for exact in (k, without_generic(k)):
            if exact:
                keys[exact] = True
    for k in [k for k, exact in keys.items() if exact]:
        for d in deletions(k):
            keys.setdefault(d, False)
    return keys


def store_entries(conn: Connection, entries: pd.DataFrame, source: str, *,
                  synthetic: bool = False) -> int:
    """Replace the entries of ``source`` with ``entries`` (columns kind, name, aliases
    (list), wkb (hex WKB in EPSG:4326), house_from, house_to, properties (dict)), store
    their lookup keys and their communities; returns how many were stored."""
    conn.execute(text("DELETE FROM gazetteer_entry WHERE source = :s"), {"s": source})
    if entries.empty:
        return 0
    prefixes = city_prefixes()
    stored = 0
    for start in range(0, len(entries), _BATCH):
        part = entries.iloc[start:start + _BATCH]
        rows = [{"ord": i, "kind": r.kind, "name": r.name, "aliases": list(r.aliases or []),
                 "wkb": r.wkb, "house_from": _int_or_none(r.house_from),
                 "house_to": _int_or_none(r.house_to),
                 "properties": r.properties or {}}
                for i, r in enumerate(part.itertuples(index=False))]
        ids = conn.execute(text("""
            INSERT INTO gazetteer_entry (kind, name, aliases, geom, house_from, house_to,
                                         source, synthetic, properties)
            SELECT r.kind, r.name, ARRAY(SELECT jsonb_array_elements_text(r.aliases)),
                   ST_SetSRID(ST_GeomFromWKB(decode(r.wkb, 'hex')), 4326), r.house_from,
                   r.house_to, :source, :synthetic, r.properties
            FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(ord int, kind text, name text,
                aliases jsonb, wkb text, house_from int, house_to int, properties jsonb)
            ORDER BY r.ord
            RETURNING id"""), {"rows": json.dumps(rows, ensure_ascii=False, default=str),
                               "source": source, "synthetic": synthetic}).scalars().all()
        names = [(eid, k, exact) for eid, r in zip(ids, rows, strict=True)
                 for k, exact in entry_keys([r["name"], *r["aliases"]], prefixes).items()]
        frame = pd.DataFrame(names, columns=["entry_id", "name_key", "exact"])
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(
                "COPY gazetteer_name (entry_id, name_key, exact) FROM STDIN (FORMAT csv)") as cp:
            cp.write(copy_csv(frame, ("entry_id", "name_key", "exact")))
        stored += len(ids)
    assign_communities(conn, source)
    conn.execute(text("ANALYZE gazetteer_entry; ANALYZE gazetteer_name"))
    return stored


def _int_or_none(value: object) -> int | None:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    return int(value)  # type: ignore[call-overload]


# One community per entry where exactly one holds it: a point or polygon by its point on
# surface, a line only when it lies in one community whole (pieces that touch it).
_ASSIGN_SQL = """
UPDATE gazetteer_entry e SET community_code = x.code, generation_id = :gen
FROM (
    SELECT e.id, min(c.code) AS code, count(DISTINCT c.code) AS n
    FROM gazetteer_entry e
    JOIN community_piece cp
      ON cp.generation_id = :gen
     AND ST_Intersects(cp.geom, CASE WHEN ST_Dimension(e.geom) = 1 THEN e.geom
                                     ELSE ST_PointOnSurface(e.geom) END)
    JOIN community c ON c.id = cp.community_id
    WHERE e.source = :source AND e.kind NOT IN ('community', 'subdistrict')
    GROUP BY e.id
) x
WHERE x.id = e.id AND x.n = 1
"""


def assign_communities(conn: Connection, source: str) -> None:
    """Set the community of each entry of ``source`` (module docstring), in the active
    community generation; without boundaries entries keep none."""
    gen = active_generation(conn, "community")
    if gen is not None:
        conn.execute(text(_ASSIGN_SQL), {"gen": gen, "source": source})


def rebuild_builtin(conn: Connection) -> dict:
    """Replace the ``builtin`` entries with the active subdistricts and communities, the
    posts and the points of interest; returns the counts by kind."""
    rows = conn.execute(text("""
        SELECT 'subdistrict' AS kind, s.name, s.code AS code, ST_AsEWKB(s.geom) AS g
        FROM subdistrict s JOIN boundary_generation g ON g.id = s.generation_id AND g.active
        UNION ALL
        SELECT 'community', c.name, c.code, ST_AsEWKB(c.geom)
        FROM community c JOIN boundary_generation g ON g.id = c.generation_id AND g.active
        UNION ALL
        SELECT 'post', p.name, p.community_code, ST_AsEWKB(p.geom)
        FROM community_post p WHERE p.geom IS NOT NULL
        UNION ALL
        SELECT 'poi', p.name, NULL, ST_AsEWKB(p.geom) FROM poi p""")).all()
    frame = pd.DataFrame({
        "kind": [r.kind for r in rows],
        "name": [r.name for r in rows],
        "aliases": [[] for _ in rows],
        "wkb": [shapely.to_wkb(shapely.from_wkb(bytes(r.g)), hex=True, include_srid=False)
                for r in rows],
        "house_from": None, "house_to": None,
        "properties": [{"code": r.code} if r.code else {} for r in rows],
    })
    store_entries(conn, frame, "builtin")
    # Communities are their own community (the code is known; no routing needed).
    conn.execute(text("""
        UPDATE gazetteer_entry SET community_code = properties->>'code'
        WHERE source = 'builtin' AND kind = 'community'"""))
    return frame["kind"].value_counts().to_dict()


@dataclass
class GazetteerReport:
    """What a gazetteer import read, rejected, and found doubtful."""

    source: str
    kind: str
    source_crs: str = "-"
    read: int = 0
    accepted: int = 0
    rejected: list[dict] = field(default_factory=list)
    duplicates: list[dict] = field(default_factory=list)
    in_several_communities: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    committed: bool = False
    written: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def render(self, console: Console) -> None:
        """Print the summary and the doubtful names."""
        console.print(f"[bold]gazetteer import[/] ({self.kind}) from {self.source} "
                      f"(CRS {self.source_crs}): {self.read} read, {self.accepted} accepted, "
                      f"{len(self.rejected)} rejected")
        for title, items in (("Rejected", self.rejected), ("Duplicates", self.duplicates),
                             ("Names in several communities", self.in_several_communities)):
            if items:
                t = Table(*items[0].keys(), title=title)
                for item in items[:20]:
                    t.add_row(*(str(v) for v in item.values()))
                console.print(t)
        for w in self.warnings:
            console.print(f"[yellow]warning:[/] {w}")
        console.print("[green]committed[/]" if self.committed else
                      "dry run: nothing written (add --commit)")


def read_gazetteer_file(path: str | Path, *, kind: str, name_field: str,
                        alias_field: str | None = None, crs: str | None = None,
                        lon_field: str | None = None, lat_field: str | None = None,
                        from_field: str | None = None, to_field: str | None = None
                        ) -> tuple[pd.DataFrame, GazetteerReport]:
    """Read a file of places into :func:`store_entries`' frame, with the report.
    Aliases are split on ``;``, ``|`` or ``、``."""
    from geo.poi_import import read_located_rows

    if kind not in KINDS:
        raise InvalidInput(f"--kind must be one of {', '.join(KINDS)}, not {kind!r}", field="kind")
    p = Path(path)
    inner = ImportReport(kind="gazetteer", source=str(p))
    frame, geoms = read_located_rows(p, crs, lon_field, lat_field, inner)
    require_fields(frame, p.name, name_field=name_field, alias_field=alias_field,
                   from_field=from_field, to_field=to_field)
    report = GazetteerReport(source=str(p), kind=kind, source_crs=inner.source_crs,
                             read=inner.read, warnings=list(inner.warnings))
    report.rejected = [{"row": r.feature, "reason": r.reason} for r in inner.rejected]
    rows = []
    for i in range(len(frame)):
        if geoms[i] is None:
            continue
        name = as_code(frame[name_field].iloc[i])
        if not name:
            report.rejected.append({"row": i + 1, "reason": f"{name_field} is empty"})
            continue
        aliases = []
        if alias_field:
            raw = as_code(frame[alias_field].iloc[i]) or ""
            aliases = [a.strip() for a in raw.replace("|", ";").replace("、", ";").split(";")
                       if a.strip()]
        numbers = [_number(frame, f, i, report) for f in (from_field, to_field)]
        rows.append({"kind": kind, "name": name, "aliases": aliases,
                     "wkb": shapely.to_wkb(geoms[i], hex=True, include_srid=False),
                     "house_from": numbers[0], "house_to": numbers[1], "properties": {}})
    report.accepted = len(rows)
    return pd.DataFrame(rows, columns=["kind", "name", "aliases", "wkb", "house_from",
                                       "house_to", "properties"]), report


def _number(frame: pd.DataFrame, column: str | None, i: int, report: GazetteerReport) -> int | None:
    if not column:
        return None
    raw = as_code(frame[column].iloc[i])
    try:
        return int(float(raw)) if raw else None
    except ValueError:
        report.warnings.append(f"row {i + 1}: {column} {raw!r} is not a house number; ignored")
        return None


# Names of the import that stand for more than one place: the same key twice in one
# community (a duplicate, or two buildings of one compound), or in several communities
# (the matcher will offer suggestions for them, never guess).
_DOUBTFUL_SQL = """
SELECT n.name_key, count(*) AS entries, count(DISTINCT e.community_code) AS communities,
       string_agg(DISTINCT e.community_code, ', ') AS codes
FROM gazetteer_entry e JOIN gazetteer_name n ON n.entry_id = e.id AND n.exact
WHERE e.source = :source
GROUP BY n.name_key HAVING count(*) > 1
ORDER BY count(*) DESC, n.name_key LIMIT 200
"""


def import_gazetteer_file(conn: Connection, path: str | Path, *, source: str | None = None,
                          **options) -> GazetteerReport:
    """Read a gazetteer file (see :func:`read_gazetteer_file` for ``options``), store it in
    the caller's transaction (replacing the entries of the same ``source``, default the file
    name) and report duplicates and names in several communities; the caller commits or
    rolls back (dry run)."""
    frame, report = read_gazetteer_file(path, **options)
    if frame.empty:
        raise ImportFailed(f"{Path(path).name}: no place could be read; nothing stored",
                           field="path")
    source = source or Path(path).name
    stored = store_entries(conn, frame, source)
    for r in conn.execute(text(_DOUBTFUL_SQL), {"source": source}).mappings():
        item = {"name": r["name_key"], "entries": r["entries"], "communities": r["codes"] or "-"}
        (report.in_several_communities if r["communities"] > 1 else report.duplicates).append(item)
    report.written = {"source": source, "entries": stored}
    return report
