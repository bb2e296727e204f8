"""Evaluation (考核) of community posts and subdistricts: a weighted composite of indicators
the ledger already measures, with every score explained.

**Indicators** (values from :func:`cases.stats.compute_stats` for the cohort of cases
received in the period, so an evaluation and the indicator report always agree):
按时签收率 ``on_time_ack_rate``, 按期结案率 ``on_time_close_rate``, 返工率 ``rework_rate``
(counts against), 回复率 ``reply_rate``, 满意率 ``satisfaction_rate``, and the case load
per 1,000 residents ``cases_per_1000`` where the community's population is known. An
indicator the ledger does not measure (yet), or whose denominator is empty for a unit, is
left out of that unit's score and the remaining weights are used: the explanation says so.

**Normalisation** to 0..1: a rate is its own value ("higher" is better) or one minus it
("lower" is better); the case load, not a rate, is scaled between the lowest and highest
value among the units ranked in the period. **Score** = scale × Σ(weight × normalised) ÷
Σ(weight), over the indicators that have a value.

**Small numbers.** A unit with fewer than ``min_cases`` cases received in the period is not
ranked: it is listed apart with its figures, so three lucky cases never put a post first.

**Defaults** (migration 0019; change them with ``casegrid evaluation weights set`` or
``PUT /api/v1/evaluation/weights``): these are casegrid's own starting point, not a
standard's table. City evaluations of digital city management weigh a composite of these
same indicators (CJ/T 292, Shenzhen's DB4403/T 32; DOMAIN.md) and publish their own
weights; ours put on-time closing first (30: the programme's result), the citizen's side
next (reply 20, satisfaction 20), then acknowledgement (15) and rework (15, against), and
give the case load no weight (0) until a city decides whether many complaints per resident
is a post's fault or its area's. Scale 100, minimum 10 cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from casegrid.errors import InvalidInput
from cases.stats import compute_stats

LABELS_ZH: dict[str, str] = {
    "on_time_ack_rate": "按时签收率",
    "on_time_close_rate": "按期结案率",
    "rework_rate": "返工率",
    "reply_rate": "回复率",
    "satisfaction_rate": "满意率",
    "cases_per_1000": "每千人案件数",
}
LABELS_EN: dict[str, str] = {
    "on_time_ack_rate": "on-time acknowledgement",
    "on_time_close_rate": "closed on time",
    "rework_rate": "rework",
    "reply_rate": "reply rate",
    "satisfaction_rate": "satisfaction",
    "cases_per_1000": "cases per 1,000 residents",
}
# Evaluation level -> the cases.stats grouping it reads.
LEVELS: dict[str, str] = {"post": "community", "subdistrict": "subdistrict"}
DIRECTIONS = ("higher", "lower")
LOAD = "cases_per_1000"


@dataclass(frozen=True)
class Weights:
    """The composite's parameters as stored."""

    indicators: dict[str, tuple[float, str]]  # name -> (weight, direction)
    scale: float
    min_cases: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``GET /api/v1/evaluation/weights``, ``weights show``)."""
        return {"scale": self.scale, "min_cases": self.min_cases, "indicators": [
            {"indicator": k, "label_zh": LABELS_ZH[k], "weight": w, "direction": d}
            for k, (w, d) in self.indicators.items()]}


def load_weights(conn: Connection) -> Weights:
    """The stored weights, directions, scale and minimum case count."""
    rows = conn.execute(text(
        "SELECT indicator, weight, direction FROM evaluation_indicator ORDER BY indicator"))
    cfg = conn.execute(text("SELECT scale, min_cases FROM evaluation_config")).one()
    ordered = {k: None for k in LABELS_ZH}
    for r in rows:
        ordered[r.indicator] = (float(r.weight), r.direction)
    return Weights({k: v for k, v in ordered.items() if v is not None}, float(cfg.scale),
                   int(cfg.min_cases))


def set_weights(conn: Connection, changes: dict[str, dict], by: str, *,
                scale: float | None = None, min_cases: int | None = None) -> Weights:
    """Change indicators' ``weight``/``direction`` (and the scale or minimum), all or
    nothing; returns the new weights. Refuses unknown indicators, negative weights, an
    unknown direction, and a set of weights that sums to zero."""
    for name, change in changes.items():
        if name not in LABELS_ZH:
            raise InvalidInput(f"indicator must be one of {', '.join(LABELS_ZH)}, not {name!r}",
                               field="indicator")
        weight = change.get("weight")
        if weight is not None and (isinstance(weight, bool) or not 0 <= float(weight) <= 1000):
            raise InvalidInput(f"{name}: weight must be a number from 0 to 1000", field="weight")
        if change.get("direction") not in (None, *DIRECTIONS):
            raise InvalidInput(f"{name}: direction must be higher or lower", field="direction")
    if scale is not None and not scale > 0:
        raise InvalidInput("scale must be a positive number (e.g. 100)", field="scale")
    if min_cases is not None and min_cases < 0:
        raise InvalidInput("min_cases must be 0 or more", field="min_cases")
    for name, change in changes.items():
        conn.execute(text(
            "UPDATE evaluation_indicator SET weight = coalesce(:w, weight), "
            "direction = coalesce(:d, direction), updated_at = now(), updated_by = :by "
            "WHERE indicator = :i"),
            {"w": change.get("weight"), "d": change.get("direction"), "by": by, "i": name})
    if scale is not None or min_cases is not None:
        conn.execute(text(
            "UPDATE evaluation_config SET scale = coalesce(:s, scale), "
            "min_cases = coalesce(:m, min_cases), updated_at = now(), updated_by = :by"),
            {"s": scale, "m": min_cases, "by": by})
    weights = load_weights(conn)
    if not sum(w for w, _ in weights.indicators.values()) > 0:
        raise InvalidInput("the weights would all be 0: give at least one indicator a weight",
                           field="weight")
    return weights


def _populations(conn: Connection, level: str) -> dict[str, int]:
    """Residents per community, or per subdistrict when all its communities have a figure
    (a partial sum would overstate the load)."""
    rows = conn.execute(text(
        "SELECT c.code, c.subdistrict_code, c.population FROM community c "
        "JOIN boundary_generation g ON g.id = c.generation_id AND g.active")).all()
    if level == "post":
        return {r.code: r.population for r in rows if r.population}
    totals: dict[str, int | None] = {}
    for r in rows:
        if r.subdistrict_code is None:
            continue
        prev = totals.get(r.subdistrict_code, 0)
        totals[r.subdistrict_code] = (None if prev is None or not r.population
                                      else prev + r.population)
    return {k: v for k, v in totals.items() if v}


def _post_names(conn: Connection, codes: list[str]) -> dict[str, str]:
    return {r.community_code: r.name for r in conn.execute(text(
        "SELECT community_code, name FROM community_post WHERE community_code = ANY(:k)"),
        {"k": codes})}


def evaluate(conn: Connection, level: str, date_from: date, date_to: date,
             as_of: datetime | None = None, stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Scores of every post (``level="post"``) or subdistrict for the cases received from
    ``date_from`` to ``date_to``: ``ranked`` (with rank) and ``too_few`` (below the minimum
    case count), each unit with its indicators' value, normalised value and weight.
    ``stats``: the caller's own :func:`cases.stats.compute_stats` of the same grouping and
    period, when it has it already (the overview page), instead of computing it again."""
    if level not in LEVELS:
        raise InvalidInput(f"level must be post or subdistrict, not {level!r}", field="level")
    weights = load_weights(conn)
    if stats is None:
        stats = compute_stats(conn, LEVELS[level], date_from, date_to, as_of)
    elif stats["group_by"] != LEVELS[level]:
        raise ValueError(f"stats grouped by {stats['group_by']!r}, not {LEVELS[level]!r}")
    units = [g for g in stats["groups"] if g["key"] is not None]
    people = _populations(conn, level)
    for u in units:
        pop = people.get(u["key"])
        u[LOAD] = round(u["accepted"] * 1000 / pop, 3) if pop else None
    eligible = [u for u in units if u["accepted"] >= weights.min_cases]
    loads = [u[LOAD] for u in eligible if u[LOAD] is not None]
    lo, hi = (min(loads), max(loads)) if loads else (None, None)
    entries = [_score(u, weights, lo, hi) for u in units]
    posts = _post_names(conn, [u["key"] for u in units]) if level == "post" else {}
    for e in entries:
        e["post_name"] = posts.get(e["key"])
    ranked = sorted((e for e in entries if e["cases"] >= weights.min_cases),
                    key=lambda e: (e["score"] is None, -(e["score"] or 0), -e["cases"], e["key"]))
    for i, e in enumerate(ranked, start=1):
        e["rank"] = i
    too_few = sorted((e for e in entries if e["cases"] < weights.min_cases),
                     key=lambda e: (-e["cases"], e["key"]))
    return {"level": level, "from": stats["from"], "to": stats["to"], "as_of": stats["as_of"],
            "weights": weights.as_dict(), "ranked": ranked, "too_few": too_few}


def _normalise(name: str, value: float, direction: str, lo: float | None,
               hi: float | None) -> float | None:
    if name == LOAD:
        if lo is None or hi is None:
            return None
        if hi == lo:
            return 1.0
        share = min(1.0, max(0.0, (value - lo) / (hi - lo)))  # units below the minimum too
        return round(1 - share if direction == "lower" else share, 4)
    return round(1 - value if direction == "lower" else value, 4)


def _score(unit: dict, weights: Weights, lo: float | None, hi: float | None) -> dict:
    explained, num, den = [], 0.0, 0.0
    for name, (weight, direction) in weights.indicators.items():
        value = unit.get(name)
        norm = None if value is None else _normalise(name, value, direction, lo, hi)
        used = weight > 0 and norm is not None
        if used:
            num += weight * norm
            den += weight
        explained.append({
            "indicator": name, "label_zh": LABELS_ZH[name], "value": value,
            "normalised": norm, "weight": weight, "direction": direction, "used": used,
            "why_not": None if used else ("weight 0" if weight == 0 else
                                          "no value for this unit in the period")})
    return {"key": unit["key"], "name": unit.get("name"), "cases": unit["accepted"],
            "score": round(weights.scale * num / den, 2) if den else None,
            "indicators": explained}


def evaluation_rows(result: dict) -> list[list]:
    """The evaluation as a table (first row: Chinese headers), ranked units first, then the
    units below the minimum: the Excel report's 考核 sheet."""
    names = list(LABELS_ZH)
    header = ["排名", "编码", "名称", "城市管理岗", "受理数", "得分",
              *[LABELS_ZH[n] for n in names], "说明"]
    rows = [header]
    for e in [*result["ranked"], *result["too_few"]]:
        values = {i["indicator"]: i["value"] for i in e["indicators"]}
        note = "" if "rank" in e else f"案件少于{result['weights']['min_cases']}件, 不参与排名"
        rows.append([e.get("rank"), e["key"], e["name"], e.get("post_name"), e["cases"],
                     e["score"], *[values.get(n) for n in names], note])
    return rows
