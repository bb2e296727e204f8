"""What a serving worker imports: the app without the analysis, mapping and export stacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loaded on first use by the routes that need them (maps, hotspots, exports, imports, photos,
# pages), never by importing the app.
HEAVY = ("sklearn", "esda", "libpysal", "scipy", "folium", "branca", "geopandas", "pandas",
         "shapely", "pyproj", "pyarrow", "openpyxl", "matplotlib", "PIL", "pillow_heif", "jinja2")


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


# The command line's own stack: a serving worker never runs a command.
CLI = ("typer", "rich", "shellingham")


def test_a_worker_started_from_the_console_script_holds_no_cli():
    """uvicorn starts ``--workers`` with multiprocessing's spawn, and spawn first re-imports
    the parent's main script in each worker as ``__mp_main__`` (Python's documented "safe
    importing of main module"); for ``casegrid serve`` that script is the ``casegrid``
    console script. So a worker holds whatever importing ``casegrid.cli`` loads, on top of
    ``api.main`` and uvicorn. Loading the commands there (Typer, Rich, every command module)
    put about 8,000 more objects on each worker's heap (bench/RESULTS.md, issue 20)."""
    script = Path(sys.executable).with_name("casegrid")
    assert script.exists(), f"{script}: the console script is installed by scripts/setup.sh"
    code = ("import json, runpy, sys; "
            f"runpy.run_path({str(script)!r}, run_name='__mp_main__'); "
            "import api.main, uvicorn; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(CLI)!r} "
            "or m.startswith('casegrid.cli.'))))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert loaded == [], f"a serving worker would hold {loaded[:10]}: keep casegrid/cli/__init__.py light"
