"""Import mappings: which column of a hotline export is which casegrid field.

A mapping is a small TOML file (see ``nyc311.toml`` and ``hotline12345_zh.toml`` beside this
module for complete, commented examples). Its tables:

``[source]``       ``encoding`` (default ``auto``: UTF-8, else GB18030, the usual encoding of
                   Chinese Excel exports), ``delimiter`` (CSV), ``sheet`` (XLSX, name or index).
``[columns]``      source column for each field: ``external_id``, ``category``, ``lon``,
                   ``lat``, ``reported_at``, ``description``, ``address``, ``channel``,
                   ``crs``, ``reporter_name``, ``reporter_phone``, ``photo_urls``. Only
                   ``category``, ``lon``, ``lat`` and ``reported_at`` are required. A list of
                   columns (description, address) is joined with ``"; "``, skipping blanks.
``[coordinates]``  ``crs``: the default coordinate system (wgs84, gcj02, bd09, EPSG:NNNN; the
                   CLI's ``--crs`` overrides it); ``[coordinates.map]`` maps values of the
                   ``crs`` column (e.g. "GCJ-02") to coordinate systems, row by row.
``[reported_at]``  ``format`` (strftime, or ``ISO8601``) and ``timezone`` (IANA name) of
                   naive timestamps; timestamps with an offset keep it.
``[channel]``      ``default`` channel and ``[channel.map]`` from source values.
``[category]``     ``[category.map]`` from source complaint types to catalogue codes; the
                   value ``"reject"`` marks a type that is known but not city management.
                   ``accept_codes`` (default true): a value that already is a catalogue code
                   is taken as is.
``[replies]``      the other direction (``casegrid export hotline-replies``, optional):
                   ``[replies.columns]`` names the hotline's column for each of
                   :data:`REPLY_FIELDS` (``external_id`` defaults to the import's); times are
                   written in ``[reported_at]``'s format and time zone;
                   ``[replies.result]`` and ``[replies.follow_up]`` give the hotline's words
                   for the outcome and the follow-up result (defaults in Chinese).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from casegrid.errors import InvalidInput
from casegrid.settings import get_settings
from cases.vocabulary import CHANNELS

MAPPINGS_DIR = Path(__file__).resolve().parent
FIELDS = (
    "external_id", "category", "lon", "lat", "reported_at", "description", "address",
    "channel", "crs", "reporter_name", "reporter_phone", "photo_urls",
)
REQUIRED = ("category", "lon", "lat", "reported_at")
# Fields of a reply returned to the hotline ([replies.columns]); see cases.hotline_replies.
REPLY_FIELDS = ("external_id", "case_no", "result", "text", "replied_at", "closed_at",
                "follow_up", "handled_by")
JOINABLE = ("description", "address")
REJECT = "reject"


@dataclass(frozen=True)
class Mapping:
    """A parsed, checked import mapping."""

    name: str
    columns: dict[str, tuple[str, ...]]
    crs: str = "wgs84"
    crs_map: dict[str, str] = field(default_factory=dict)
    date_format: str = "ISO8601"
    timezone: str = field(default_factory=lambda: get_settings().time_zone)  # naive times
    channel_default: str = "hotline_12345"
    channel_map: dict[str, str] = field(default_factory=dict)
    category_map: dict[str, str] = field(default_factory=dict)
    accept_codes: bool = True
    encoding: str = "auto"
    delimiter: str = ","
    sheet: str | int = 0
    source: str = ""
    reply_columns: dict[str, str] = field(default_factory=dict)
    reply_result: dict[str, str] = field(default_factory=dict)
    reply_follow_up: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> str | None:
        """The single source column of a field, or None when unmapped."""
        cols = self.columns.get(name)
        return cols[0] if cols else None

    def source_columns(self) -> set[str]:
        """Every source column the mapping reads."""
        return {c for cols in self.columns.values() for c in cols}


def _bad(path: str, message: str, fld: str = "mapping") -> InvalidInput:
    return InvalidInput(f"mapping {path}: {message}", field=fld)


def parse_mapping(data: dict, source: str = "<mapping>") -> Mapping:
    """Check a mapping given as a dict (parsed TOML) and return it."""
    raw_cols = data.get("columns")
    if not isinstance(raw_cols, dict):
        raise _bad(source, "needs a [columns] table naming the source column of each field")
    unknown = sorted(set(raw_cols) - set(FIELDS))
    if unknown:
        raise _bad(source, f"unknown field(s) in [columns]: {', '.join(unknown)}; "
                           f"known: {', '.join(FIELDS)}")
    columns: dict[str, tuple[str, ...]] = {}
    for name, value in raw_cols.items():
        cols = (value,) if isinstance(value, str) else tuple(value)
        if not cols or not all(isinstance(c, str) and c for c in cols):
            raise _bad(source, f"[columns] {name} must be a column name or a list of them")
        if len(cols) > 1 and name not in JOINABLE:
            raise _bad(source, f"[columns] {name} takes one column; only "
                               f"{', '.join(JOINABLE)} may join several")
        columns[name] = cols
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        raise _bad(source, f"[columns] must name {', '.join(missing)}")

    from geo.coords import normalise_crs

    coords = data.get("coordinates", {})
    crs = normalise_crs(coords.get("crs", "wgs84"))
    crs_map = {str(k): normalise_crs(v) for k, v in coords.get("map", {}).items()}

    channel = data.get("channel", {})
    channel_default = channel.get("default", "hotline_12345")
    channel_map = {str(k): str(v) for k, v in channel.get("map", {}).items()}
    for value in [channel_default, *channel_map.values()]:
        if value not in CHANNELS:
            raise _bad(source, f"channel {value!r} is not one of {', '.join(CHANNELS)}", "channel")

    category = data.get("category", {})
    category_map = {str(k): str(v) for k, v in category.get("map", {}).items()}
    odd = sorted({v for v in category_map.values() if v != REJECT and not (v.isdigit() and len(v) == 4)})
    if odd:
        raise _bad(source, f"[category.map] values must be 4-digit catalogue codes or "
                           f"'{REJECT}', not {', '.join(map(repr, odd))}", "category")

    replies = data.get("replies", {})
    reply_columns = {str(k): v for k, v in replies.get("columns", {}).items()}
    odd = sorted(set(reply_columns) - set(REPLY_FIELDS))
    if odd:
        raise _bad(source, f"unknown field(s) in [replies.columns]: {', '.join(odd)}; known: "
                           f"{', '.join(REPLY_FIELDS)}", "replies")
    if any(not isinstance(v, str) or not v for v in reply_columns.values()):
        raise _bad(source, "[replies.columns] values must be column names", "replies")
    if reply_columns and "external_id" not in reply_columns and "external_id" in columns:
        reply_columns = {"external_id": columns["external_id"][0], **reply_columns}

    when = data.get("reported_at", {})
    src = data.get("source", {})
    return Mapping(
        name=str(data.get("name", Path(source).stem)),
        columns=columns,
        crs=crs,
        crs_map=crs_map,
        date_format=str(when.get("format", "ISO8601")),
        timezone=str(when.get("timezone", get_settings().time_zone)),
        channel_default=channel_default,
        channel_map=channel_map,
        category_map=category_map,
        accept_codes=bool(category.get("accept_codes", True)),
        encoding=str(src.get("encoding", "auto")),
        delimiter=str(src.get("delimiter", ",")),
        sheet=src.get("sheet", 0),
        source=source,
        reply_columns=reply_columns,
        reply_result={str(k): str(v) for k, v in replies.get("result", {}).items()},
        reply_follow_up={str(k): str(v) for k, v in replies.get("follow_up", {}).items()},
    )


def load_mapping(path_or_name: str | Path) -> Mapping:
    """Read a mapping file, or a shipped mapping by name (``nyc311``, ``hotline12345_zh``)."""
    path = Path(path_or_name)
    if not path.exists():
        shipped = MAPPINGS_DIR / f"{path_or_name}.toml"
        if not shipped.exists():
            names = ", ".join(sorted(p.stem for p in MAPPINGS_DIR.glob("*.toml")))
            raise InvalidInput(
                f"mapping {path_or_name!r} is neither a file nor a shipped mapping ({names})",
                field="mapping",
            )
        path = shipped
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"mapping {path} is not valid TOML: {exc}", field="mapping") from None
    return parse_mapping(data, str(path))


