"""Known place names containing a short word: what the search box searches the ledger by
when an address word is too short for the trigram index (migration 0032).

The gazetteer's names (communities, subdistricts, compounds, roads, landmarks, posts; not
doorplates or crossings) are found through the GIN index on their two-character pieces,
each name without its generic suffix (善国苑小区 -> 善国苑, as addresses often say it), and
only names of at least :data:`MIN_NAME` characters: the ledger's address index needs three.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from geo.address_normalize import without_generic

# pg_trgm's trigram length: a name shorter than this could not use the ledger's address
# index either (cases.search.MIN_ADDRESS_WORD is this).
MIN_NAME = 3
# The predicate of the partial index gazetteer_entry_name_bigrams, spelled as there.
_KINDS_SQL = "kind NOT IN ('doorplate', 'crossing')"


@dataclass(frozen=True)
class PlaceNames:
    """The names holding a word (shortest and those starting with it first), and whether
    more hold it than were returned."""

    names: list[str]
    more: bool


def names_containing(conn: Connection, word: str, limit: int = 8) -> PlaceNames:
    """Up to ``limit`` distinct known place names of at least :data:`MIN_NAME` characters
    containing ``word`` (two characters: one piece of the index; longer words need every
    piece, the exact containment checked after)."""
    word = word.strip().lower()
    if len(word) < 2:
        return PlaceNames([], False)
    pieces = sorted({word[i:i + 2] for i in range(len(word) - 1)})
    rows = conn.execute(text(f"""
        SELECT DISTINCT name FROM gazetteer_entry
        WHERE casegrid_bigrams(name) @> CAST(:pieces AS text[]) AND {_KINDS_SQL}
          AND strpos(lower(name), :word) > 0
        LIMIT :cap"""), {"pieces": pieces, "word": word, "cap": limit * 20}).scalars().all()
    names: set[str] = set()
    for name in rows:
        short = without_generic(name)
        for n in (short, name) if short and word in short.lower() else (name,):
            if len(n) >= MIN_NAME:
                names.add(n)
                break
    # A name that holds another found name adds nothing to an ILIKE of that other one.
    kept = [n for n in names if not any(o != n and o in n for o in names)]
    kept.sort(key=lambda n: (not n.lower().startswith(word), len(n), n))
    return PlaceNames(kept[:limit], len(kept) > limit or len(rows) >= limit * 20)
