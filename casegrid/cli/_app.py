"""The ``casegrid`` Typer app with every command registered.

Each module of this package contributes its commands through a ``register(app)`` function,
so that commands live beside the concern they belong to and the modules never collide.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

import casegrid.cli

app = typer.Typer(
    name="casegrid",
    help="Spatial case management for city management: boundaries, routing, cases, maps.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(casegrid.cli.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"casegrid.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()
