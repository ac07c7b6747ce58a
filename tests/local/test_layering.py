"""The local backend's import rules (issue #10): no imports back up a layer, none at runtime
between subsystems that must stay independent. Read from the source, so a lazy import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgekit

PACKAGE = Path(edgekit.__file__).parent
LOCAL = PACKAGE / "local"

# Layers above the local backend: the local backend builds what it needs itself.
ABOVE_LOCAL = (
    "edgekit.clients",
    "edgekit.cli",
    "edgekit.components",
    "edgekit.deploy",
    "edgekit.notebook",
    "edgekit.pipeline",
    "edgekit.provision",
    "edgekit.stack",
    "edgekit.studio",
    "edgekit.workflow",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{path.relative_to(PACKAGE.parent)} imports {module}"
        for path in folder.rglob("*.py")
        for module in _imports(path)
        if _under(module, forbidden)
    )


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        # The whole local backend: nothing from the layers above it.
        ("local", ABOVE_LOCAL),
        # The device talks to the Greengrass emulator over HTTP only.
        ("local/device", ("edgekit.local.greengrass",)),
        # IPC is hosted by the device runtime, never the other way round.
        ("local/ipc", ("edgekit.local.device", "edgekit.local.greengrass")),
        # The broker is below IPC and the device runtime.
        (
            "local/mqtt",
            ("edgekit.local.device", "edgekit.local.ipc", "edgekit.local.greengrass"),
        ),
        # The moto handlers run inside moto's process and need nothing else of edgekit.
        (
            "local/moto_cloudformation",
            ("edgekit.local.device", "edgekit.local.ipc", "edgekit.local.mqtt", *ABOVE_LOCAL),
        ),
    ],
)
def test_no_imports_back_up_a_layer(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(PACKAGE / folder, forbidden) == []


def test_the_rule_sees_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from edgekit import clients\n    return clients\n")
    assert _imports(module) >= {"edgekit", "edgekit.clients"}
    assert _under("edgekit.clients", ABOVE_LOCAL) and not _under("edgekit.clientsx", ABOVE_LOCAL)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(path: Path, known: set[str]) -> set[str]:
    """The edgekit modules ``path`` imports when it is imported (not in functions)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known
            found.update(subs or ({node.module} & known))
    return found


def test_no_import_cycles_in_the_local_backend() -> None:
    files = {_module_name(p): p for p in LOCAL.rglob("*.py")}
    graph = {name: _top_level_imports(path, set(files)) for name, path in files.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(name: str, stack: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []
