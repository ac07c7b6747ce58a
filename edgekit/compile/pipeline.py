"""``compile_model``: compile, stamp metadata, check parity, write the report."""

from __future__ import annotations

import datetime as dt
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path

from edgekit.compile.base import CompileOptions, get_compiler
from edgekit.compile.metadata import stamp_compiled_model
from edgekit.compile.parity import DEFAULT_GOLDEN_COUNT, DEFAULT_MAX_AP50_DROP, check_parity
from edgekit.compile.report import CompileReport
from edgekit.errors import CompileError, ParityError
from edgekit.files import sha256_file
from edgekit.model import default_model_path
from edgekit.model.metadata import read_model_info
from edgekit.version import __version__


class ParityWarning(UserWarning):
    """A compiled model failed its parity check but was kept because of ``force``."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def compile_model(
    model: str | os.PathLike[str] | None,
    target: str,
    out_dir: str | os.PathLike[str],
    *,
    calibration: str | os.PathLike[str] | None = None,
    calibration_count: int | None = None,
    golden: str | os.PathLike[str] | None = None,
    golden_count: int = DEFAULT_GOLDEN_COUNT,
    force: bool = False,
    max_ap50_drop: float = DEFAULT_MAX_AP50_DROP,
    options: CompileOptions | None = None,
) -> CompileReport:
    """Compile ``model`` (None: the shipped model) for ``target`` into ``out_dir``.

    After compiling, every ONNX output carries the source's edgekit metadata and
    an ``edgekit.compile`` record, and the parity check runs on the golden set
    (``golden``: a Ground Truth data set or image folder; None: the synthetic
    validation set). If AP50 drops by more than ``max_ap50_drop``, ParityError
    is raised after ``compile_report.json`` is written, unless ``force``, which
    warns (ParityWarning) and returns the report.
    """
    import onnxruntime

    started = time.perf_counter()
    source = default_model_path() if model is None else Path(model).expanduser()
    if not source.is_file():
        raise CompileError(f"{source}: source model not found (give an .onnx file)")
    read_model_info(source)  # fail early, naming the file, if it is not an edgekit model
    compiler = get_compiler(target)
    out = Path(out_dir).expanduser()
    if out.resolve() == source.resolve().parent:
        raise CompileError(
            f"{out}: the output folder holds the source model {source.name}, which compiling "
            "could overwrite; choose another output folder (--out)"
        )
    out.mkdir(parents=True, exist_ok=True)

    opts = options or CompileOptions()
    if calibration is not None:
        opts = replace(opts, calibration=Path(calibration).expanduser())
    if calibration_count is not None:
        opts = replace(opts, calibration_count=int(calibration_count))

    source_sha = sha256_file(source)
    compiled = compiler.compile(source.resolve(), out, opts)
    compiled_at = time.perf_counter()

    compile_info = {
        "target": compiler.target,
        "runtime": compiled.runtime,
        "source_sha256": source_sha,
        "source_name": source.name,
        "onnxruntime_version": onnxruntime.__version__,
        "edgekit_version": __version__,
        "compiled_at": _utc_now(),
        **compiled.details,
    }
    compile_info.setdefault("calibration", None)
    for path in compiled.files:
        if path.suffix == ".onnx":
            stamp_compiled_model(path, source, compile_info, source_sha256=source_sha)

    parity = None
    if compiled.runs_locally:
        parity = check_parity(
            source,
            compiled.model_path,
            golden=Path(golden).expanduser() if golden is not None else None,
            golden_count=golden_count,
            max_ap50_drop=max_ap50_drop,
        )
    finished = time.perf_counter()

    if parity is None:
        status = "skipped"
    elif parity.passed:
        status = "passed"
    elif force:
        status = "forced"
        parity = replace(parity, forced=True)
    else:
        status = "failed"
    report = CompileReport(
        target=compiler.target,
        runtime=compiled.runtime,
        status=status,
        out_dir=out,
        model_path=compiled.model_path,
        source_path=source,
        source_sha256=source_sha,
        compiled_sha256=sha256_file(compiled.model_path),
        source_size=source.stat().st_size,
        compiled_size=sum(p.stat().st_size for p in compiled.files),
        compile_info=compile_info,
        parity=parity,
        times_s={
            "compile": compiled_at - started,
            "parity": finished - compiled_at,
            "total": finished - started,
        },
        created_at=_utc_now(),
        files=sorted(p.relative_to(out).as_posix() for p in compiled.files),
    )
    report.write()
    if parity is not None and not parity.passed:
        message = parity.failure_message(source, compiled.model_path)
        if not force:
            raise ParityError(message)
        warnings.warn(f"{message} Kept because force=True.", ParityWarning, stacklevel=2)
    return report
