"""The statistics package stays pure: stdlib, numpy and scipy only, no I/O, no globals."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway.analysis.stats as stats

PACKAGE = Path(stats.__file__).parent
ALLOWED = {"__future__", "math", "dataclasses", "typing", "collections", "numpy", "scipy"}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval"}
FORBIDDEN_MODULES = {"logging", "os", "sys", "random", "time", "datetime", "pathlib", "socket"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [(p.name, ast.parse(p.read_text())) for p in sorted(PACKAGE.glob("*.py"))]


def test_imports_only_stdlib_numpy_scipy_and_itself() -> None:
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = node.module or ""
                if module.startswith("gateway."):
                    assert module.startswith("gateway.analysis.stats"), (name, module)
                    continue
                roots = {module.split(".")[0]}
            else:
                continue
            assert roots <= ALLOWED and not roots & FORBIDDEN_MODULES, (name, roots)


def test_no_io_calls_and_no_module_level_randomness() -> None:
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, (name, node.func.id)
            if isinstance(node, ast.Attribute) and node.attr in {"default_rng", "seed"}:
                raise AssertionError(f"{name}: randomness must be injected, found .{node.attr}")


def test_files_stay_small() -> None:
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 250, path.name


def test_public_api_is_exported() -> None:
    for name in stats.__all__:
        assert hasattr(stats, name), name
    assert stats.__all__ == sorted(
        stats.__all__, key=lambda s: (not s.isupper(), s[0].islower(), s)
    )
