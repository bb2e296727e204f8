"""casegrid uses only the documented surface of its web stack: no private module or name
of uvicorn, Starlette or FastAPI, and nothing of uvicorn but its top-level API (its
protocol and logging modules are internals the next release may change)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("uvicorn", "starlette", "fastapi")


def _packages() -> list[Path]:
    return [p for p in sorted(ROOT.iterdir())
            if (p / "__init__.py").exists() and p.name not in {"tests"}]


def _imports(path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import of ``path``."""
    found: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def _refusal(module: str, name: str | None) -> str | None:
    parts = module.split(".")
    if parts[0] not in FRAMEWORKS:
        return None
    if any(p.startswith("_") for p in parts) or (name or "").startswith("_"):
        return "a private module or name"
    if parts[0] == "uvicorn" and len(parts) > 1:
        return "an internal module of uvicorn (use uvicorn.run, Config or Server)"
    return None


def test_no_module_imports_framework_internals():
    bad = []
    for package in _packages():
        for path in package.rglob("*.py"):
            for module, name in _imports(path):
                why = _refusal(module, name)
                if why:
                    bad.append(f"{path.relative_to(ROOT)}: {module} {name or ''} is {why}")
    assert bad == []


def test_the_check_refuses_what_it_should():
    assert _refusal("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol")
    assert _refusal("starlette._utils", "is_async_callable")
    assert _refusal("fastapi.dependencies.utils", "_solve")
    assert _refusal("starlette.types", "ASGIApp") is None
    assert _refusal("uvicorn", "Config") is None
