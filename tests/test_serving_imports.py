"""What a serving worker imports: the app without the analysis, mapping and export stacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded on first use by the routes that need them (maps, hotspots, exports, imports), never
# by importing the app.
HEAVY = ("sklearn", "esda", "libpysal", "scipy", "folium", "branca", "geopandas", "pandas",
         "shapely", "pyproj", "pyarrow", "openpyxl", "matplotlib")


def test_the_app_imports_without_the_heavy_stacks():
    """A fresh ``import api.main`` (what each uvicorn worker does) must not load the libraries
    in ``HEAVY``. The deployment depends on this: every object a worker's imports leave is
    walked by each full garbage collection, during which the worker answers nothing and takes
    no new connection, so the intake's p99 at 32 clients grows with the imported heap
    (bench/RESULTS.md, issue 20). A module-level import of one of these in a module the app
    reaches brings the pause back; import it inside the function or route that uses it."""
    code = ("import json, sys; import api.main; "
            f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded == [], (f"importing api.main loaded {loaded}; find the module-level import with "
                          "`python -X importtime -c 'import api.main'`")
