"""Leaflet, its plugins and their CSS, served by casegrid itself.

City intranets have no internet, so no page may fetch anything from a CDN. The files come
from two places, both installed by the project's own set-up:

* npm packages pinned in ``maps/vendor/package.json`` (``scripts/fetch_assets.sh`` runs
  ``npm ci --prefix maps/vendor``): leaflet, leaflet.markercluster, leaflet-timedimension,
  iso8601-js-period, jquery (folium's popups use it);
* the heatmap scripts that the ``folium`` wheel itself ships in ``folium/templates/``.

Pages refer to them as ``{base}/{package}/{file}``; the server serves ``/static/vendor/...``
(:func:`resolve_asset`), the CLI copies them beside the HTML file (:func:`copy_assets`).
Folium elements are subclassed here with those local URLs instead of folium's CDN defaults.
"""

from __future__ import annotations

import re
import shutil
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from casegrid.errors import NotFound

if TYPE_CHECKING:
    import folium
    import folium.plugins

MAPS_DIR = Path(__file__).resolve().parent
NODE_MODULES = MAPS_DIR / "vendor" / "node_modules"
OWN_STATIC = MAPS_DIR / "static"
# Found without importing folium: serving a file must not load the mapping stack into a
# worker (every full garbage collection walks a worker's whole heap; README, "Serving").
FOLIUM_TEMPLATES = Path(find_spec("folium").origin).resolve().parent / "templates"

# package name in URLs -> directory it is served from (only files below it are served)
PACKAGES: dict[str, Path] = {
    "leaflet": NODE_MODULES / "leaflet" / "dist",
    "markercluster": NODE_MODULES / "leaflet.markercluster" / "dist",
    "timedimension": NODE_MODULES / "leaflet-timedimension" / "dist",
    "iso8601": NODE_MODULES / "iso8601-js-period",
    "jquery": NODE_MODULES / "jquery" / "dist",
    "folium": FOLIUM_TEMPLATES,
    "casegrid": OWN_STATIC,
    # the workbench pages (web/): htmx for partial updates, and their own styles and scripts
    "htmx": NODE_MODULES / "htmx.org" / "dist",
    "workbench": MAPS_DIR.parent / "web" / "static",
}
_SERVED_SUFFIXES = {".js", ".css", ".png", ".svg"}

# Every file a page may reference, by package; copy_assets copies exactly these.
REQUIRED: dict[str, tuple[str, ...]] = {
    "leaflet": ("leaflet.js", "leaflet.css", "images/layers.png", "images/layers-2x.png",
                "images/marker-icon.png", "images/marker-icon-2x.png", "images/marker-shadow.png"),
    "markercluster": ("leaflet.markercluster.js", "MarkerCluster.css", "MarkerCluster.Default.css"),
    "timedimension": ("leaflet.timedimension.min.js", "leaflet.timedimension.control.css"),
    "iso8601": ("iso8601.js",),
    "jquery": ("jquery.min.js",),
    "folium": ("leaflet_heat.min.js", "pa7_hm.min.js", "pa7_leaflet_hm.min.js"),
    "casegrid": ("maps.css", "dispatch.js"),
}

INSTALL_HINT = "run scripts/fetch_assets.sh (npm ci --prefix maps/vendor) to install the map assets"

# leaflet-timedimension's control CSS loads the Glyphicons font from a CDN; serve it without
# that @font-face and with plain Unicode glyphs instead, so the page stays offline.
_FONT_FACE = re.compile(r"@font-face\s*{[^}]*}", re.S)
_GLYPHS = {
    "\\e071": "\\25C0\\25C0", "\\e072": "\\25B6", "\\e073": "\\275A\\275A", "\\e074": "\\25A0",
    "\\e075": "\\25B6\\25B6", "\\e030": "\\21BB", "\\e031": "\\21BB", "\\e141": "\\25C0",
}


def missing_assets() -> list[str]:
    """The required asset files that are not installed (empty when all are present)."""
    return [
        f"{pkg}/{name}"
        for pkg, names in REQUIRED.items()
        for name in names
        if not (PACKAGES[pkg] / name).is_file()
    ]


def resolve_asset(package: str, path: str) -> Path:
    """The file behind ``/static/vendor/{package}/{path}``; ``NotFound`` for anything else
    (unknown package, a path escaping the package directory, a file type not served)."""
    root = PACKAGES.get(package)
    if root is None:
        raise NotFound(f"no static package {package!r}", field="package")
    target = (root / path).resolve()
    if root.resolve() not in target.parents or target.suffix not in _SERVED_SUFFIXES:
        raise NotFound(f"no static file {package}/{path}", field="path")
    if not target.is_file():
        raise NotFound(f"static file {package}/{path} is not installed; {INSTALL_HINT}", field="path")
    return target


def asset_bytes(package: str, path: str) -> bytes:
    """The content to serve for an asset (CSS that would reach out is rewritten)."""
    data = resolve_asset(package, path).read_bytes()
    if package == "timedimension" and path.endswith(".css"):
        css = _FONT_FACE.sub("", data.decode("utf-8"))
        css = css.replace("'Glyphicons Halflings'", "sans-serif").replace(
            '"Glyphicons Halflings"', "sans-serif"
        )
        for code, glyph in _GLYPHS.items():
            css = css.replace(f'"{code}"', f'"{glyph}"')
        data = css.encode("utf-8")
    return data


def copy_assets(dest: Path) -> None:
    """Copy every required asset under ``dest/{package}/...`` (for a standalone HTML file)."""
    missing = missing_assets()
    if missing:
        raise NotFound(f"map assets missing: {', '.join(missing[:4])}; {INSTALL_HINT}", field="assets")
    for pkg, names in REQUIRED.items():
        for name in names:
            out = dest / pkg / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(asset_bytes(pkg, name))


def _js(base: str) -> list[tuple[str, str]]:
    # folium's popups build their content with jQuery's $(...)
    return [("leaflet", f"{base}/leaflet/leaflet.js"), ("jquery", f"{base}/jquery/jquery.min.js")]


def local_map_class(base: str) -> type[folium.Map]:
    """A ``folium.Map`` whose scripts and styles come from ``base`` (no Bootstrap or Font
    Awesome: the pages do not use them)."""
    import folium  # on use, as FOLIUM_TEMPLATES: file serving stays without folium

    class LocalMap(folium.Map):
        default_js = _js(base)
        default_css = [
            ("leaflet_css", f"{base}/leaflet/leaflet.css"),
            ("casegrid_css", f"{base}/casegrid/maps.css"),
        ]

    return LocalMap


def local_heatmap(base: str, *args, **kwargs) -> folium.plugins.HeatMap:
    """folium's HeatMap with its script served locally."""
    import folium.plugins  # on use, as FOLIUM_TEMPLATES

    layer = folium.plugins.HeatMap(*args, **kwargs)
    layer.default_js = [("leaflet-heat.js", f"{base}/folium/leaflet_heat.min.js")]
    return layer


def local_heatmap_with_time(base: str, *args, **kwargs) -> folium.plugins.HeatMapWithTime:
    """folium's HeatMapWithTime with its scripts and CSS served locally."""
    import folium.plugins  # on use, as FOLIUM_TEMPLATES

    layer = folium.plugins.HeatMapWithTime(*args, **kwargs)
    layer.default_js = [
        ("iso8601", f"{base}/iso8601/iso8601.js"),
        ("leaflet.timedimension.min.js", f"{base}/timedimension/leaflet.timedimension.min.js"),
        ("heatmap.min.js", f"{base}/folium/pa7_hm.min.js"),
        ("leaflet-heatmap.js", f"{base}/folium/pa7_leaflet_hm.min.js"),
    ]
    layer.default_css = [
        ("leaflet.timedimension.control.min.css", f"{base}/timedimension/leaflet.timedimension.control.css")
    ]
    return layer


def markercluster_links(base: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(js, css) links for leaflet.markercluster, for pages that cluster in their own JS."""
    return (
        [("markerclusterjs", f"{base}/markercluster/leaflet.markercluster.js")],
        [
            ("markerclustercss", f"{base}/markercluster/MarkerCluster.css"),
            ("markerclusterdefaultcss", f"{base}/markercluster/MarkerCluster.Default.css"),
        ],
    )


def copy_tree_for_html(html_path: Path) -> str:
    """Copy the assets next to ``html_path`` and return the relative base URL to use."""
    folder = html_path.with_name(html_path.stem + "_files")
    if folder.exists():
        shutil.rmtree(folder)
    copy_assets(folder)
    return folder.name
