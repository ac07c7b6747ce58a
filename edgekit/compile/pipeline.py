"""``compile_model``: compile, stamp metadata, check parity, write the report."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.compile.base import CompiledModel, CompileOptions, Compiler, get_compiler
from edgekit.compile.cache import CompileCache, cache_key, image_set_identity
from edgekit.compile.metadata import stamp_compiled_model
from edgekit.compile.parity import (
    DEFAULT_GOLDEN_COUNT,
    DEFAULT_MAX_AP50_DROP,
    ParityResult,
    check_parity,
)
from edgekit.compile.report import CompileReport
from edgekit.compile.yolo import edgekit_source
from edgekit.compile.yolo import source_format as detect_source_format
from edgekit.errors import CompileError, ParityError
from edgekit.files import sha256_file
from edgekit.model import default_model_path
from edgekit.model.evaluate import VALIDATION_SEED
from edgekit.version import __version__


class ParityWarning(UserWarning):
    """A compiled model failed its parity check but was kept because of ``force``."""


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _resolve_cache(cache: CompileCache | bool | None) -> CompileCache | None:
    if cache is None or cache is True:
        return CompileCache.from_env()
    return cache or None


def _cache_inputs(
    compiler: Compiler,
    source: Path,
    source_sha: str,
    opts: CompileOptions,
    golden: Path | None,
    golden_count: int,
    max_ap50_drop: float,
) -> dict[str, Any] | None:
    """Everything a cached result depends on; None when the target is not cacheable."""
    import onnx
    import onnxruntime

    if not type(compiler).cacheable:
        return None
    try:
        extra = json.loads(json.dumps(dict(opts.extra), sort_keys=True))
    except (TypeError, ValueError):  # e.g. an AWS client object: not a cache key
        return None
    options = {
        f.name: getattr(opts, f.name)
        for f in dataclasses.fields(opts)
        if f.name not in ("calibration", "extra")
    }
    return {
        "edgekit_version": __version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": onnxruntime.__version__,
        **type(compiler).library_versions(),
        "source_sha256": source_sha,
        "source_name": source.name,  # stamped into the compiled file's record
        "target": compiler.target,
        "compiler": f"{type(compiler).__module__}.{type(compiler).__qualname__}",
        "options": {
            **options,
            "extra": extra,
            "calibration": image_set_identity(
                opts.calibration, count=opts.calibration_count, seed=opts.calibration_seed
            ),
        },
        "parity": {
            "golden": image_set_identity(golden, count=golden_count, seed=VALIDATION_SEED),
            "golden_count": golden_count,
            "max_ap50_drop": max_ap50_drop,
        },
    }


def _parity_from_record(data: dict[str, Any] | None) -> ParityResult | None:
    if data is None:
        return None
    return ParityResult(**{**data, "worst_images": tuple(data.get("worst_images", ()))})


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
    cache: CompileCache | bool | None = None,
    source_format: str = "auto",
) -> CompileReport:
    """Compile ``model`` (None: the shipped model) for ``target`` into ``out_dir``.

    After compiling, every ONNX output carries the source's edgekit metadata and
    an ``edgekit.compile`` record, and the parity check runs on the golden set
    (``golden``: a Ground Truth data set or image folder; None: the synthetic
    validation set). If AP50 drops by more than ``max_ap50_drop``, ParityError
    is raised after ``compile_report.json`` is written, unless ``force``, which
    warns (ParityWarning) and returns the report.

    ``cache``: None or True uses the per-user compile cache
    (:mod:`edgekit.compile.cache`; ``EDGEKIT_COMPILE_CACHE=off`` turns it off),
    False does not, a :class:`~edgekit.compile.cache.CompileCache` uses that one.
    A hit copies the cached files and parity result (a cached failure still
    fails); the report's ``cache`` says which key served it.

    ``source_format``: ``auto`` (default) reads an edgekit model or detects an
    ultralytics YOLO detection export (:mod:`edgekit.compile.yolo`); ``edgekit``
    or ``yolo`` says which it is. A YOLO source is compiled with edgekit metadata
    added (letterbox, class names, ``yolo`` decoding), so every tool runs the output.
    """
    started = time.perf_counter()
    source = default_model_path() if model is None else Path(model).expanduser()
    if not source.is_file():
        raise CompileError(f"{source}: source model not found (give an .onnx file)")
    # Fail early, naming the file, if it is neither an edgekit model nor a YOLO export.
    fmt = detect_source_format(source, source_format)
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
    golden_path = Path(golden).expanduser() if golden is not None else None
    if type(compiler).uses_parity:
        parity_settings = {
            "golden": str(golden_path) if golden_path is not None else None,
            "golden_count": golden_count,
            "max_ap50_drop": max_ap50_drop,
        }
        opts = replace(opts, extra={**opts.extra, "parity": parity_settings})

    source_sha = sha256_file(source)
    store = _resolve_cache(cache)
    inputs = None
    if store is not None:
        inputs = _cache_inputs(
            compiler, source, source_sha, opts, golden_path, golden_count, max_ap50_drop
        )
    if inputs is not None and fmt != "edgekit":
        inputs["source_format"] = fmt
    key = cache_key(inputs) if inputs is not None else None
    lookup = store.lookup(key) if store is not None and key is not None else None
    hit = lookup.entry if lookup is not None else None
    restored = store.restore(hit, out) if store is not None and hit is not None else []
    if hit is not None and restored:
        record = hit.record
        runtime = record["runtime"]
        model_path = out / record["model"]
        files = restored
        compile_info = record["compile_info"]
        parity = _parity_from_record(record["parity"])
        compiled_at = finished = time.perf_counter()
        cache_info = {"key": key, "hit": True, "entry": str(hit.path)}
    else:
        with edgekit_source(source, fmt) as model_source:
            compiled = compiler.compile(model_source.resolve(), out, opts)
            compiled_at = time.perf_counter()
            runtime, model_path, files = compiled.runtime, compiled.model_path, list(compiled.files)
            compile_info, parity = _stamp_and_check(
                compiler,
                compiled,
                model_source,
                source_sha,
                golden_path,
                golden_count,
                max_ap50_drop,
            )
        if fmt != "edgekit":
            compile_info["source_format"] = fmt
        finished = time.perf_counter()
        cache_info = None
        if key is not None and store is not None:
            record = {
                "inputs": inputs,
                "target": compiler.target,
                "runtime": runtime,
                "model": model_path.relative_to(out).as_posix(),
                "compile_info": compile_info,
                "parity": dataclasses.asdict(parity) if parity is not None else None,
                "created_at": _utc_now(),
            }
            entry = store.store(key, out, files, record)
            cache_info = {"key": key, "hit": False, "entry": str(entry) if entry else None}
            if lookup is not None and lookup.note:
                cache_info["note"] = lookup.note

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
        runtime=runtime,
        status=status,
        out_dir=out,
        model_path=model_path,
        source_path=source,
        source_sha256=source_sha,
        compiled_sha256=sha256_file(model_path),
        source_size=source.stat().st_size,
        compiled_size=sum(p.stat().st_size for p in files),
        compile_info=compile_info,
        parity=parity,
        times_s={
            "compile": compiled_at - started,
            "parity": finished - compiled_at,
            "total": finished - started,
        },
        created_at=_utc_now(),
        files=sorted(p.relative_to(out).as_posix() for p in files),
        cache=cache_info,
    )
    report.write()
    if parity is not None and not parity.passed:
        message = parity.failure_message(source, model_path)
        if not force:
            raise ParityError(message)
        warnings.warn(f"{message} Kept because force=True.", ParityWarning, stacklevel=2)
    return report


def _stamp_and_check(
    compiler: Compiler,
    compiled: CompiledModel,
    source: Path,
    source_sha: str,
    golden: Path | None,
    golden_count: int,
    max_ap50_drop: float,
) -> tuple[dict[str, Any], ParityResult | None]:
    """Stamp every ONNX output with the compile record; run parity when it can run here."""
    import onnxruntime

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
    if not compiled.runs_locally:
        return compile_info, None
    parity = check_parity(
        source,
        compiled.model_path,
        golden=golden,
        golden_count=golden_count,
        max_ap50_drop=max_ap50_drop,
        runtime=compiled.runtime,
    )
    return compile_info, parity
