#!/usr/bin/env bash
# The prepared GPU check of issue 17 (section 5) as one device call on an H200 (Python 3.12 there,
# with torch but without zarr, icechunk, numcodecs, donfig, google-crc32c and pydantic):
#   here:        make device-wheels      # those packages as py3.12 wheels in .whl/ (ignored, ~30 MB)
#   the device:  run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=480)
# Installs the wheels into /tmp/site, checks the imports, then runs benchmarks/bench_train_gpu.py
# (compute-bound and loader-fed train steps, eager vs compiled, bf16 vs fp32, bench_model's CUDA part;
# extra arguments are passed on) under a 420 s limit. $OUT gets gpu.txt, bench_train_gpu.log and
# bench_train_gpu.json (its last line). Exit 2: wheels missing; 3: an import failed.
set -u -o pipefail
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
ls .whl/*.whl >/dev/null 2>&1 || { echo "no .whl/: run 'make device-wheels' here and carry .whl"; exit 2; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 2
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
python3 -c "import torch, zarr, icechunk, pydantic, schemas.reader, pipelines.writer, uplift.train; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 3
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT/gpu.txt"
timeout 420 python3 -m benchmarks.bench_train_gpu "$@" 2>&1 | tee "$OUT/bench_train_gpu.log"
rc=$?
tail -n 1 "$OUT/bench_train_gpu.log" > "$OUT/bench_train_gpu.json"
exit $rc
