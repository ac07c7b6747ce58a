"""Generate ``agent_pb2.py`` and ``agent_pb2_grpc.py`` from ``agent.proto``.

The generated modules sit next to the .proto in this folder and are committed,
so devices need protobuf and grpcio but not grpcio-tools (the dev extra).
Run ``python -m edgekit.agent.protos.generate`` after editing the .proto,
and ``--check`` (as the tests do) to prove the committed files match it.
protoc writes ``import agent_pb2`` into the gRPC module, which only works
with the folder on ``sys.path``; we rewrite it to a package import.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

from edgekit.errors import ConfigurationError

PROTO_DIR = Path(__file__).resolve().parent
PROTO = PROTO_DIR / "agent.proto"
PACKAGE_DIR = PROTO_DIR  # the generated modules live beside the .proto
OUTPUTS = ("agent_pb2.py", "agent_pb2_grpc.py")
_BARE_IMPORT = "import agent_pb2 as agent__pb2"
_PACKAGE_IMPORT = "from edgekit.agent.protos import agent_pb2 as agent__pb2"
# Lines that name the generator's version; they differ between grpcio-tools releases
# without changing the contract, so --check compares them only with --strict.
_VERSION_LINE = re.compile(
    r"(Protobuf Python Version|GRPC_GENERATED_VERSION|^\s*\d+,\s*$|_runtime_version)"
)
_HINT = "run python -m edgekit.agent.protos.generate"


def generate(out_dir: Path) -> list[Path]:
    """Run protoc on agent.proto into ``out_dir``; return the two files written."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise ConfigurationError(
            "grpcio-tools is not installed; install the dev extra (pip install -e '.[dev]')"
        ) from exc
    import importlib.resources

    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = str(importlib.resources.files("grpc_tools") / "_proto")
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(PROTO),
        ]
    )
    if code != 0:
        raise ConfigurationError(f"{PROTO}: protoc failed with exit code {code}")
    grpc_file = out_dir / "agent_pb2_grpc.py"
    text = grpc_file.read_text(encoding="utf-8")
    if _BARE_IMPORT not in text:
        raise ConfigurationError(
            f"{grpc_file}: expected the line {_BARE_IMPORT!r} from protoc; the generator changed"
        )
    grpc_file.write_text(text.replace(_BARE_IMPORT, _PACKAGE_IMPORT), encoding="utf-8")
    return [out_dir / name for name in OUTPUTS]


def _normalize(text: str, strict: bool) -> list[str]:
    lines = text.splitlines()
    return lines if strict else [line for line in lines if not _VERSION_LINE.search(line)]


def check(strict: bool = False) -> list[str]:
    """Differences between the committed modules and freshly generated ones (empty if none)."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for fresh in generate(Path(tmp)):
            committed = PACKAGE_DIR / fresh.name
            if not committed.is_file():
                problems.append(f"{committed}: missing; {_HINT}")
                continue
            old = _normalize(committed.read_text(encoding="utf-8"), strict)
            new = _normalize(fresh.read_text(encoding="utf-8"), strict)
            if old != new:
                diff = "\n".join(
                    difflib.unified_diff(old, new, str(committed), "generated", lineterm="", n=1)
                )
                problems.append(diff)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument(
        "--strict", action="store_true", help="with --check, also compare generator versions"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = check(strict=args.strict)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(f"generated code is stale: {_HINT}", file=sys.stderr)
        return 1 if problems else 0
    for path in generate(PACKAGE_DIR):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
