"""What a LoadModel url holds when it is not (necessarily) an edgekit package.

Code written for SageMaker Edge Manager passes LoadModel the folder a model component
unpacked its model into (``{<model component>:work:path}`` or
``{...:artifacts:decompressedPath}``). On real Edge Manager that folder holds the output
of a SageMaker Edge packaging job: a Neo-compiled model (``compiled.so``,
``compiled.params``, ``compiled_model.json``, ``compiled.meta``...) that the agent runs
with the DLR runtime. edgekit's agent runs ONNX models, so for such a url it accepts:

- an edgekit model package (a folder with ``manifest.json``, or a ``.tar.gz``): verified
  as always (:mod:`edgekit.agent.models`);
- a plain ONNX model: a ``.onnx`` file, or a folder holding exactly one ``.onnx`` file
  (directly, or in its only subfolder, as a tarball that wraps a folder unpacks). It is
  loaded unverified, as Edge Manager loads what the packaging job produced without an
  edgekit signature; the agent says so in its log (only when the registry allows it,
  which only the Edge Manager stand-in does).

Neo/DLR artifacts cannot run here: they are refused with a message naming the folder and
what to put there instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.agent.status import AgentStatusError, failed_precondition, not_found
from edgekit.package.manifest import MANIFEST_NAME

PACKAGE = "package"
ONNX = "onnx"

#: File names a SageMaker Neo compilation (DLR) or an Edge packaging job leaves behind.
NEO_FILES = frozenset(
    {
        "compiled.so",
        "compiled.params",
        "compiled_model.json",
        "compiled.meta",
        "compiled.json",
        "libdlr.so",
        "dlr.h",
    }
)

WHAT_TO_PUT = (
    "put there either the model exported to ONNX (exactly one .onnx file) or an edgekit "
    "model package (`edgekit package build`)"
)


@dataclass(frozen=True)
class ModelSource:
    """What a LoadModel url points at: ``kind`` is PACKAGE or ONNX; ``path`` the package
    (folder or archive) or the .onnx file."""

    kind: str
    path: Path


def _is_package(path: Path) -> bool:
    if path.is_file():
        return path.name.lower().endswith((".tar.gz", ".tgz"))
    return (path / MANIFEST_NAME).is_file()


def _neo_files(files: list[Path]) -> list[str]:
    return sorted(p.name for p in files if p.name in NEO_FILES or p.name.lower().endswith(".dlr"))


def _refuse_folder(folder: Path, files: list[Path]) -> AgentStatusError:
    neo = _neo_files(files)
    if neo:
        return failed_precondition(
            f"{folder} holds a SageMaker Neo-compiled model ({', '.join(neo)}), which only "
            "the Edge Manager agent's DLR runtime runs; edgekit's agent runs ONNX models: "
            + WHAT_TO_PUT
        )
    onnx = sorted(p.name for p in files if p.suffix.lower() == ".onnx")
    if len(onnx) > 1:
        return failed_precondition(
            f"{folder} holds {len(onnx)} ONNX models ({', '.join(onnx)}); the agent cannot "
            "tell which one to load: leave exactly one, or pass the .onnx file as the url"
        )
    shown = ", ".join(sorted(p.name for p in files)[:10]) or "nothing"
    return failed_precondition(
        f"{folder} holds no model the agent can load ({shown}); " + WHAT_TO_PUT
    )


def _in_folder(folder: Path) -> ModelSource | None:
    if _is_package(folder):
        return ModelSource(PACKAGE, folder)
    onnx = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".onnx"]
    if len(onnx) == 1:
        return ModelSource(ONNX, onnx[0])
    return None


def locate(path: Path) -> ModelSource:
    """The model behind a LoadModel url's local ``path``, or the refusal naming what to fix."""
    if not path.exists():
        raise not_found(f"no model at {path}: the folder or file does not exist")
    if path.is_file():
        if _is_package(path):
            return ModelSource(PACKAGE, path)
        if path.suffix.lower() == ".onnx":
            return ModelSource(ONNX, path)
        raise failed_precondition(
            f"{path} is neither an ONNX model (.onnx) nor an edgekit model package (.tar.gz)"
        )
    try:
        files = sorted(path.iterdir())
        found = _in_folder(path)
        if found is None:
            subfolders = [p for p in files if p.is_dir()]
            if len(subfolders) == 1 and not [p for p in files if p.is_file()]:
                found = _in_folder(subfolders[0])
                if found is None:
                    raise _refuse_folder(subfolders[0], sorted(subfolders[0].iterdir()))
    except OSError as exc:
        raise failed_precondition(f"{path} cannot be read: {exc}") from None
    if found is None:
        raise _refuse_folder(path, files)
    return found
