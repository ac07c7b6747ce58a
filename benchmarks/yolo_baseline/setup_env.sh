#!/usr/bin/env bash
# The YOLOv8n baseline of benchmarks/model_quality.py, in an environment of its own.
#
# ultralytics is AGPL-3.0: it never enters edgekit's dependencies or .venv. This script
#   1. creates $BENCH_YOLO_VENV (default .bench-yolo/, gitignored) with ultralytics and
#      torch==2.13.0 (CPU) from the package index;
#   2. writes edgekit's train/validation split of the data set (the one `edgekit train` and
#      `edgekit evaluate --split val` use) in the ultralytics layout under $OUT/data
#      (symlinks to the photos, never inside the repository), with edgekit's own .venv;
#   3. trains YOLO("yolov8n.yaml") from scratch (imgsz 448, batch 8, CPU, offline: no
#      weight or font downloads, plots off) and exports $OUT/yolov8n.onnx.
#
# Usage (from the repository root, after `make test` made .venv):
#   bash benchmarks/yolo_baseline/setup_env.sh [--data DIR] [--out DIR] [--epochs N]
#        [--hours H] [--setup-only]
# --hours H stops training after H hours (ultralytics' `time`, which re-plans the schedule
# to that budget and overrides --epochs). Then:
#   .venv/bin/python benchmarks/model_quality.py --yolo-onnx $OUT/yolov8n.onnx
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"
VENV="${BENCH_YOLO_VENV:-.bench-yolo}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
DATA="../shared/datasets/tag-scratches"
OUT="${TMPDIR:-/tmp}/edgekit-yolo-baseline"
EPOCHS=100
HOURS=""
SETUP_ONLY=0
while [ $# -gt 0 ]; do
    case "$1" in
        --data) DATA="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --epochs) EPOCHS="$2"; shift 2 ;;
        --hours) HOURS="$2"; shift 2 ;;
        --setup-only) SETUP_ONLY=1; shift ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case "$(cd "$(dirname "$OUT")" 2>/dev/null && pwd)/" in
    "$REPO"/*) echo "--out $OUT is inside the repository; use a folder outside it" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
fi
if [ ! -f "$VENV/.installed" ]; then
    # torch first and pinned, so ultralytics does not pull another build.
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
    "$VENV/bin/pip" install --quiet "torch==2.13.0" torchvision ultralytics onnx onnxruntime
    touch "$VENV/.installed"
fi
[ "$SETUP_ONLY" = 1 ] && { echo "environment ready: $VENV"; exit 0; }

test -x .venv/bin/python || { echo "edgekit's .venv is missing: run 'make test' first" >&2; exit 1; }
mkdir -p "$OUT"
.venv/bin/python benchmarks/yolo_baseline/prepare_data.py --data "$DATA" --out "$OUT/data"
"$VENV/bin/python" benchmarks/yolo_baseline/train_yolo.py --data "$OUT/data/data.yaml" \
    --out "$OUT" --epochs "$EPOCHS" ${HOURS:+--hours "$HOURS"}
