"""The holiday table in the database: import, seed, and load as a :class:`WorkCalendar`.

``calendar_year`` lists the years someone has entered (with the file they came from);
``calendar_day`` holds their holidays and make-up working days. The ``chinese-calendar``
package covers the past up to its last release; when the State Council publishes the next
year's notice, an admin writes it as a CSV (``date,kind,name``) and runs
``casegrid calendar import FILE --commit``.

:func:`load_calendar` merges both sources: every year in the database replaces that whole
year from the package, and the package fills the years the database does not have, so a
fresh install never computes provisional deadlines for years the package knows.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import URL, Connection, text

from casegrid.db import RawQuery
from casegrid.errors import ImportFailed
from cases.calendar import KINDS, WorkCalendar, builtin_rows, builtin_source, builtin_years

HEADER = ("date", "kind", "name")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Fixed-date statutory holidays (全国年节及纪念日放假办法): a year's file without them is
# probably incomplete, so the report warns.
_STATUTORY = ((1, 1, "New Year's Day 1 January"), (5, 1, "Labour Day 1 May"),
              (10, 1, "National Day 1 October"))
# Serialises concurrent imports/seeds (transaction-scoped advisory lock).
_LOCK_KEY = 0x63616C  # "cal"


@dataclass(frozen=True)
class Issue:
    """One problem found in a calendar file; ``line`` is 1-based (0: the file as a whole)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass
class ImportReport:
    """What an import read, found wrong, and did (or would do, in a dry run)."""

    path: str
    years: list[int] = field(default_factory=list)
    rows: list[tuple[date, str, str]] = field(default_factory=list)
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    replaced_rows: dict[int, int] = field(default_factory=dict)
    committed: bool = False
    source: str = ""

    @property
    def ok(self) -> bool:
        """True when the file has no errors (warnings do not block an import)."""
        return not self.errors

    def summary_lines(self) -> list[str]:
        """Human-readable report, one line each."""
        holidays = sum(1 for _, k, _ in self.rows if k == "holiday")
        workdays = len(self.rows) - holidays
        years = ", ".join(map(str, self.years)) or "-"
        out = [
            f"file: {self.path}",
            f"years: {years}; rows: {len(self.rows)} ({holidays} holidays, "
            f"{workdays} make-up working days)",
        ]
        for year, n in sorted(self.replaced_rows.items()):
            verb = "replaced" if self.committed else "would replace"
            out.append(f"{year}: {verb} {n} existing rows")
        out += [f"ERROR {i}" for i in self.errors]
        out += [f"warning {i}" for i in self.warnings]
        if self.committed:
            out.append("committed")
        elif self.errors:
            out.append("rejected: nothing written")
        else:
            out.append("dry run: nothing written (add --commit to import)")
        return out


# -- reading and validating a file --------------------------------------------------------


def parse_calendar_csv(
    content: str, *, years: Iterable[int] | None = None, path: str = "<text>"
) -> ImportReport:
    """Validate calendar CSV text (no database). Errors and warnings carry line numbers.

    Errors: missing/wrong header, wrong column count, unparseable date (must be YYYY-MM-DD),
    unknown kind, duplicate date, a ``workday`` on Monday-Friday (a make-up day is always a
    weekend day), a date outside ``years`` (or, without ``years``, dates in several years),
    no data rows. Warnings: a ``holiday`` on a weekend that is not part of a run of holidays
    including a weekday (it changes nothing), a statutory fixed-date holiday missing, and
    differences from the ``chinese-calendar`` package for the years it covers.
    Blank lines and lines starting with ``#`` are ignored.
    """
    report = ImportReport(path=path)
    header_seen = False
    first_line: dict[date, int] = {}
    lines: dict[date, int] = {}
    for lineno, cells in _rows(content):
        if not header_seen:
            header_seen = True
            if tuple(c.strip().lower() for c in cells) != HEADER:
                report.errors.append(Issue(lineno, f"header must be {','.join(HEADER)}, "
                                                   f"got {','.join(cells)}"))
                return report
            continue
        if len(cells) != len(HEADER):
            report.errors.append(Issue(lineno, f"expected 3 columns (date,kind,name), "
                                               f"got {len(cells)}"))
            continue
        raw_date, raw_kind, name = (c.strip() for c in cells)
        day = _parse_date(raw_date)
        if day is None:
            report.errors.append(Issue(lineno, f"date {raw_date!r} is not a valid YYYY-MM-DD"))
            continue
        kind = raw_kind.lower()
        if kind not in KINDS:
            report.errors.append(Issue(lineno, f"kind {raw_kind!r} must be 'holiday' or "
                                               "'workday'"))
            continue
        if day in first_line:
            report.errors.append(Issue(lineno, f"date {day} is listed twice (first on line "
                                               f"{first_line[day]})"))
            continue
        first_line[day] = lineno
        if kind == "workday" and day.weekday() < 5:
            report.errors.append(Issue(lineno, f"{day} is a {day:%A}: a make-up working day "
                                               "must be a Saturday or Sunday"))
            continue
        lines[day] = lineno
        report.rows.append((day, kind, name))
    if not header_seen:
        report.errors.append(Issue(0, "the file is empty: expected a date,kind,name header"))
        return report
    if not first_line:
        report.errors.append(Issue(0, "no data rows: a year needs at least its holidays"))
        return report
    report.rows.sort()
    _check_years(report, lines, years)
    if report.ok:
        _warn(report, lines)
    return report


def read_calendar_file(path: Path | str, *, years: Iterable[int] | None = None) -> ImportReport:
    """Read and validate a calendar CSV file; raise :class:`ImportFailed` if unreadable."""
    p = Path(path)
    if p.suffix.lower() != ".csv":
        # Refuse before reading: any other file (e.g. a mistyped or malicious path such as
        # ../../etc/passwd) would otherwise have its first line echoed in the header error.
        raise ImportFailed(f"{p.name}: a calendar is a .csv file with columns "
                           f"{','.join(HEADER)}, not {p.suffix or 'a file without extension'}",
                           field="file")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ImportFailed(f"cannot read {p}: {exc.strerror}", field="file") from exc
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailed(f"{p} is not UTF-8 text (save it as UTF-8 CSV)",
                           field="file") from exc
    report = parse_calendar_csv(content, years=years, path=str(p))
    report.source = f"{p.name} (sha256 {hashlib.sha256(raw).hexdigest()[:12]})"
    return report


def _rows(content: str) -> Iterable[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(content))
    for cells in reader:
        lineno = reader.line_num
        if not cells or all(not c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        yield lineno, cells


def _parse_date(raw: str) -> date | None:
    # Python 3.11's fromisoformat also takes 20270101 and week dates; insist on one form.
    if not _ISO_DATE.match(raw):
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        return None


def _check_years(report: ImportReport, lines: dict[date, int], years: Iterable[int] | None):
    found = sorted({d.year for d in lines})
    if years is None:
        if len(found) > 1:
            report.errors.append(Issue(0, f"dates span years {', '.join(map(str, found))}: "
                                          "one file per year, or list the years (--year)"))
        report.years = found
        return
    wanted = sorted(set(years))
    report.years = wanted
    for day, lineno in sorted(lines.items(), key=lambda kv: kv[1]):
        if day.year not in wanted:
            report.errors.append(Issue(lineno, f"{day} is outside the years being imported "
                                               f"({', '.join(map(str, wanted))})"))


def _warn(report: ImportReport, lines: dict[date, int]) -> None:
    kinds = {d: k for d, k, _ in report.rows}
    for day, kind in sorted(kinds.items()):
        if kind == "holiday" and day.weekday() >= 5 and not _run_has_weekday(day, kinds):
            report.warnings.append(Issue(lines[day], f"holiday {day} is a {day:%A} outside any "
                                                     "weekday holiday: it changes nothing"))
    for year in report.years:
        for month, dom, label in _STATUTORY:
            if kinds.get(date(year, month, dom)) != "holiday":
                report.warnings.append(Issue(0, f"{year}: {label} is not listed as a holiday"))
    known = builtin_years()
    builtin = {d: k for d, k, _ in builtin_rows() if d.year in report.years}
    for year in report.years:
        if year not in known:
            continue
        ours = {d: k for d, k in kinds.items() if d.year == year}
        theirs = {d: k for d, k in builtin.items() if d.year == year}
        diff = sorted(set(ours.items()) ^ set(theirs.items()))
        if diff:
            shown = ", ".join(f"{d} {k}" for d, k in diff[:6])
            report.warnings.append(Issue(0, f"{year}: differs from {builtin_source()} on "
                                            f"{len({d for d, _ in diff})} days ({shown})"))


def _run_has_weekday(day: date, kinds: dict[date, str]) -> bool:
    """True if ``day`` is in a run of consecutive listed holidays that includes a weekday."""
    for step in (timedelta(days=-1), timedelta(days=1)):
        d = day
        while kinds.get(d) == "holiday":
            if d.weekday() < 5:
                return True
            d += step
    return False


# -- writing ------------------------------------------------------------------------------


def import_calendar_file(
    conn: Connection, path: Path | str, *, commit: bool, years: Iterable[int] | None = None
) -> ImportReport:
    """Validate ``path`` and, if ``commit`` and it has no errors, replace its years' rows.

    The replacement is one transaction (a savepoint when ``conn`` is already in one, which the
    caller then commits): the years' ``calendar_day`` rows are deleted and the file's rows
    inserted, and ``calendar_year`` records each year with the file name and checksum. Rows
    of other years are never touched. A dry run (``commit=False``) writes nothing and
    reports how many rows would be replaced. Raises :class:`ImportFailed` if the file
    cannot be read at all; content problems are in ``report.errors``.
    """
    report = read_calendar_file(path, years=years)
    if not report.ok:
        return report
    with _begin(conn):
        if commit:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        report.replaced_rows = _existing_counts(conn, report.years)
        if commit:
            _write_years(conn, report.years, report.rows, report.source)
            report.committed = True
    return report


def seed_builtin(conn: Connection) -> list[int]:
    """Load every ``chinese-calendar`` year into the tables if ``calendar_year`` is empty.

    Returns the years written (empty when the table already had rows: seeding never
    overwrites an admin's imports).
    """
    with _begin(conn):
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        if conn.execute(text("SELECT EXISTS (SELECT 1 FROM calendar_year)")).scalar_one():
            return []
        years = sorted(builtin_years())
        _write_years(conn, years, builtin_rows(), builtin_source())
    return years


def _write_years(conn: Connection, years: list[int], rows: list[tuple[date, str, str]],
                 source: str) -> None:
    rows = [r for r in rows if r[0].year in years]
    conn.execute(
        text(
            "DELETE FROM calendar_day d USING unnest(CAST(:years AS int[])) AS y(year) "
            "WHERE d.day >= make_date(y.year, 1, 1) AND d.day < make_date(y.year + 1, 1, 1)"
        ),
        {"years": years},
    )
    if rows:
        conn.execute(
            text(
                "INSERT INTO calendar_day (day, kind, name) "
                "SELECT * FROM unnest(CAST(:days AS date[]), CAST(:kinds AS text[]), "
                "CAST(:names AS text[]))"
            ),
            {
                "days": [d for d, _, _ in rows],
                "kinds": [k for _, k, _ in rows],
                "names": [n or None for _, _, n in rows],
            },
        )
    # clock_timestamp(), not now(): two imports in one transaction must still differ, since
    # load_calendar's cache is invalidated by max(imported_at).
    conn.execute(
        text(
            "INSERT INTO calendar_year (year, source, imported_at) "
            "SELECT y, :source, clock_timestamp() FROM unnest(CAST(:years AS int[])) AS y "
            "ON CONFLICT (year) DO UPDATE "
            "SET source = EXCLUDED.source, imported_at = EXCLUDED.imported_at"
        ),
        {"years": years, "source": source},
    )


def _existing_counts(conn: Connection, years: list[int]) -> dict[int, int]:
    rows = conn.execute(
        text(
            "SELECT y.year, count(d.day) AS n FROM unnest(CAST(:years AS int[])) AS y(year) "
            "LEFT JOIN calendar_day d ON d.day >= make_date(y.year, 1, 1) "
            "AND d.day < make_date(y.year + 1, 1, 1) GROUP BY y.year"
        ),
        {"years": years},
    ).all()
    return {r.year: r.n for r in rows}


def _begin(conn: Connection):
    """A transaction on ``conn``, or a savepoint if the caller already has one open."""
    return conn.begin_nested() if conn.in_transaction() else conn.begin()


# -- reading ------------------------------------------------------------------------------

_cache: dict[str, tuple[tuple, WorkCalendar]] = {}
_cache_lock = threading.Lock()


# What identifies the stored calendar: load_calendar's cache key (intake reads it with its
# other lookups, cases.intake_lookups).
STAMP_SQL = "SELECT count(*) AS years, max(imported_at) AS imported_at FROM calendar_year"
_STAMP = RawQuery(STAMP_SQL)


@functools.lru_cache(maxsize=32)
def _url_key(url: URL) -> str:
    """The database's URL without password: the cache key (URLs are immutable, so it is
    rendered once per URL rather than on every intake batch)."""
    return url.render_as_string(hide_password=True)


def load_calendar(conn: Connection, stamp: tuple | None = None) -> WorkCalendar:
    """The working calendar: database years over the ``chinese-calendar`` package's years.

    Cached per database in this process; the cache is dropped when ``calendar_year``
    changes (row count or latest ``imported_at``), which every import and seed updates.
    Rows edited in ``calendar_day`` by hand, without touching ``calendar_year``, are not
    noticed until the process restarts. ``stamp``: the ``(years, imported_at)`` of
    :data:`STAMP_SQL` when the caller has just read it in this transaction.
    """
    if stamp is None:
        stamp = tuple(_STAMP.rows(conn, {})[0].values())
    key = _url_key(conn.engine.url)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    db_years = set(conn.execute(text("SELECT year FROM calendar_year")).scalars())
    days = {d: k for d, k, _ in builtin_rows() if d.year not in db_years}
    db_rows = conn.execute(
        text("SELECT day, kind FROM calendar_day "
             "WHERE extract(year FROM day)::int = ANY(:years)"),
        {"years": sorted(db_years)},
    ).all()
    days.update({r.day: r.kind for r in db_rows})
    calendar = WorkCalendar(days, set(builtin_years()) | db_years)
    with _cache_lock:
        _cache[key] = (stamp, calendar)
    return calendar


def year_rows(conn: Connection, year: int) -> tuple[str | None, list[tuple[date, str, str]]]:
    """``(source, rows)`` of one year as stored; ``source`` is None if the year is absent."""
    source = conn.execute(
        text("SELECT source || ', imported ' || to_char(imported_at, 'YYYY-MM-DD HH24:MI') "
             "FROM calendar_year WHERE year = :y"),
        {"y": year},
    ).scalar_one_or_none()
    rows = conn.execute(
        text("SELECT day, kind, coalesce(name, '') AS name FROM calendar_day "
             "WHERE day >= make_date(:y, 1, 1) AND day < make_date(:y + 1, 1, 1) ORDER BY day"),
        {"y": year},
    ).all()
    return source, [(r.day, r.kind, r.name) for r in rows]


def format_calendar_csv(rows: Iterable[tuple[date, str, str]], *, comment: str = "") -> str:
    """Rows as calendar CSV text (the format :func:`import_calendar_file` reads)."""
    buf = io.StringIO()
    for line in comment.splitlines():
        buf.write(f"# {line}\n")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(HEADER)
    for d, k, n in rows:
        writer.writerow([d.isoformat(), k, n])
    return buf.getvalue()
