"""What a bulk import reports, and its progress hook (shared by its modules and the CLI)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

DEFAULT_CHUNK_ROWS = 100_000
# Which phase is running ("read", "validate+copy" (validating, COPY and routing, chunk by
# chunk), "dedup", "insert", "indexes"), how far it got, and its total (None when unknown).
ProgressFn = Callable[[str, float, float | None], None]


@dataclass
class BulkReport:
    """What an import read, rejected, stored and how it routed the new cases."""

    file: str
    mapping: str
    committed: bool
    read: int = 0
    valid: int = 0
    rejected: int = 0
    inserted: int = 0
    already_present: int = 0
    duplicates_in_file: int = 0
    routed: dict[str, int] = field(default_factory=dict)
    reject_reasons: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The report as plain data (for JSON)."""
        return asdict(self)
