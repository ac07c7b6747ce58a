"""The house rules of edgekit's source tree, checked from the source itself.

- Layers: a module imports only from its own layer or a lower one (lazy imports inside
  functions count: they hide the dependency, they do not remove it).
- No import cycles, between subsystems or between the modules of one subsystem.
- No hand-written module over 600 lines.
- Every package's ``__init__`` docstring says what it owns and what it must not import.

docs/architecture.md explains the layers; change both together.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "edgekit"
MAX_LINES = 600

# Lowest first. A subsystem is a top-level module or package of edgekit, or a
# package of edgekit.local; it may import its own layer and the layers below.
LAYERS: list[set[str]] = [
    # 0: foundations, no edgekit imports but errors (and each other)
    {
        "errors",
        "version",
        "files",
        "settings",
        "awsapi",
        "progress",
        "spelling",
        "lazy",
        "unix_socket",
        "schemas",
        "recipes",
        "runtimes",
        "resources",
        "handover",
    },
    # 1: data
    {"data"},
    # 2: the detector
    {"model", "benchmarking"},
    # 3: compilers
    {"compile"},
    # 4: signed packages
    {"package"},
    # 5: on the device: the model agent and the inference app
    {"agent", "edge"},
    # 6: the local backend (emulated endpoints, broker, device runtime)
    {
        "local",
        "local.home",
        "local.process",
        "local.boto",
        "local.endpoints",
        "local.moto_server",
        "local.moto_state",
        "local.moto_backends",
        "local.moto_keeper",
        "local.moto_cloudformation",
        "local.moto_stepfunctions",
        "local.moto_shadows",
        "local.mqtt",
        "local.ipc",
        "local.greengrass",
        "local.device",
        "local.streammanager",
    },
    # 7: boto3 clients for either backend
    {"clients"},
    # 8: AWS resources
    {"stack", "stack_events", "stack_parameters", "studio", "components", "registry", "results"},
    # 9: fleet operations and figures
    {"provision", "deploy", "neo", "viz"},
    # 10: the notebooks' steps and scheduled runs
    {"workflow", "rollout", "reports", "pipeline", "kernels", "schedule"},
    # 11: entry points
    {"cli", "demo", "lab", "__main__", ""},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _subsystem(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return ""
    if parts[0] == "local" and len(parts) > 1:
        return f"local.{parts[1]}"
    return parts[0]


def _sources() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        if "_resources" in path.parts or path.name.endswith(("_pb2.py", "_pb2_grpc.py")):
            continue
        yield path


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path) -> Iterator[tuple[str, int, bool]]:
    """(imported edgekit module, line, at module level) for each import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    top = {id(node) for node in tree.body}
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent / "x")
    if path.name != "__init__.py":
        package = package.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else False:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("edgekit"):
                continue
            # `from edgekit import clients` imports the module edgekit.clients
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                exists = (ROOT.parent / candidate.replace(".", "/")).with_suffix(
                    ".py"
                ).exists() or (ROOT.parent / candidate.replace(".", "/") / "__init__.py").exists()
                names.append(candidate if exists else base)
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("edgekit")]
        for name in names:
            yield name, node.lineno, id(node) in top


def _graph() -> dict[str, dict[str, list[str]]]:
    graph: dict[str, dict[str, list[str]]] = {}
    for path in _sources():
        edges: dict[str, list[str]] = defaultdict(list)
        for name, line, _ in _imports(path):
            edges[name].append(f"{path.relative_to(ROOT.parent)}:{line}")
        graph[_module_name(path)] = edges
    return graph


GRAPH = _graph()


def test_every_subsystem_has_a_layer() -> None:
    unknown = sorted({_subsystem(m) for m in GRAPH} - set(LAYER_OF))
    assert not unknown, f"add these subsystems to LAYERS (and docs/architecture.md): {unknown}"


def test_no_import_runs_up_a_layer() -> None:
    bad = []
    for module, edges in GRAPH.items():
        mine = LAYER_OF.get(_subsystem(module))
        for target, where in edges.items():
            theirs = LAYER_OF.get(_subsystem(target))
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(f"{where[0]}: {module} (layer {mine}) imports {target} (layer {theirs})")
    assert not bad, "imports that run back up a layer:\n" + "\n".join(bad)


def _cycles(nodes: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in nodes.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def test_no_cycles_between_subsystems() -> None:
    nodes: dict[str, set[str]] = defaultdict(set)
    for module, edges in GRAPH.items():
        for target in edges:
            a, b = _subsystem(module), _subsystem(target)
            if a != b and a and b:
                nodes[a].add(b)
    assert not _cycles(nodes)


def test_no_cycles_between_modules() -> None:
    nodes: dict[str, set[str]] = defaultdict(set)
    for module, edges in GRAPH.items():
        for target in edges:
            # a package's __init__ re-exporting its own modules is not a cycle of purpose
            if target != module and not module.startswith(target + "."):
                nodes[module].add(target)
    assert not _cycles(nodes)


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_module_stays_small(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path}: {lines} lines; split it by purpose (limit {MAX_LINES})"


PACKAGES = sorted(p.parent for p in ROOT.rglob("__init__.py") if "_resources" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_package_docstring_says_what_it_owns_and_must_not_import(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert doc, f"{package}/__init__.py: add a docstring saying what the package owns"
    assert "not import" in doc.lower().replace("\n", " "), (
        f"{package}/__init__.py: the docstring must say what the package must not import"
    )
