"""``python -m bench [--only NAME ...] [--quick] [--scale X] [--out PATH]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.harness import BENCHES, DEFAULT_OUT, run


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the benchmarks, write RESULTS.md; exit 130 on Ctrl-C."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run casegrid's benchmarks against a throwaway PostGIS and write RESULTS.md.")
    parser.add_argument("--only", action="append", choices=list(BENCHES), metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHES)}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and single repeats (a smoke run, not figures to quote)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every size by this factor (default 1.0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write the results (default {DEFAULT_OUT.name} in bench/)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    try:
        run(only=args.only, quick=args.quick, scale=args.scale, out=args.out, argv=argv)
    except KeyboardInterrupt:
        print("interrupted; the throwaway cluster was destroyed", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
