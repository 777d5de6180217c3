"""The layers only point down: ads/ (the harness and its generators) -> apis/ -> models/.

Scanned from the source, imports inside functions included, so a lazy `from ads...` in a
backend fails here too.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def offenders(package: str, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for f in sorted((ROOT / package).rglob("*.py")):
        hits = sorted(m for m in imported_modules(f) if m.split(".")[0] in forbidden)
        if hits:
            bad[str(f.relative_to(ROOT))] = hits
    return bad


def test_models_import_nothing_from_apis_or_ads():
    assert offenders("models", ("ads", "apis")) == {}


def test_apis_import_nothing_from_ads():
    assert offenders("apis", ("ads",)) == {}


def test_the_scan_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from ads.store import JsonlStore\n    import ads.config\n")
    assert imported_modules(f) == {"ads.store", "ads.config"}


def test_one_user_error_base_one_fatal_model_error():
    from ads.guard import is_user_error
    from ads.runlock import RunExists, RunLocked
    from models.caching import CachePathError
    from models.errors import ConfigError, FatalModelError, ModelError, ModelLoadError, UserError
    from models.openai_compat import EndpointFailingError

    for cls in (ConfigError, RunExists, RunLocked, CachePathError, ModelLoadError):
        assert issubclass(cls, UserError) and is_user_error(cls("x"))
    # `except ModelError` (count one rejection) lets a fatal failure through without a re-raise
    assert issubclass(EndpointFailingError, FatalModelError) and not issubclass(FatalModelError, ModelError)


def test_no_two_modules_share_a_file_name():
    """`executor.py` in two places meaning two things made the code hard to navigate (issue 20)."""
    seen: dict[str, list[str]] = {}
    for package in ("ads", "models", "apis"):
        for f in (ROOT / package).rglob("*.py"):
            if f.name != "__init__.py":
                seen.setdefault(f.name, []).append(str(f.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
