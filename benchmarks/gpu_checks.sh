#!/usr/bin/env bash
# The torch backend's checks on a CUDA machine, as one run: the torch tests on the GPU
# (every test of tests/test_torch.py that takes a device, with "cuda"),
# benchmarks/bench_gpu_sums.py (the ways to add per-cluster sums), then
# benchmarks/bench_gpu.py (its full shapes; arguments go to it).  Logs go to $OUT (default
# ./gpu-checks): env.txt, tests.txt, sums.txt, bench.txt.  Each part has its own time
# limit in seconds (TEST_TIMEOUT, SUMS_TIMEOUT, BENCH_TIMEOUT), so that a slow part leaves
# the others their time.  The exit status is 1 if any part failed, 2 without CUDA.  It runs
# from the repository root wherever it is called from, and imports kmeansfw from there.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not
failed=0
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c 'import numba, numpy, sklearn, torch, kmeansfw
print("kmeansfw", kmeansfw.__version__, "torch", torch.__version__, "numpy",
      numpy.__version__, "numba", numba.__version__, "scikit-learn", sklearn.__version__)
print("cuda", torch.cuda.is_available())'
} 2>&1 | tee "$OUT/env.txt"
if ! "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then
    echo "no CUDA device: these checks need one" | tee -a "$OUT/env.txt"
    exit 2
fi
timeout "${TEST_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/test_torch.py \
    -k cuda 2>&1 | tee "$OUT/tests.txt"
status=${PIPESTATUS[0]}
echo "tests exit $status" | tee -a "$OUT/tests.txt"
[ "$status" -eq 0 ] || failed=1
timeout "${SUMS_TIMEOUT:-120}" "$PY" benchmarks/bench_gpu_sums.py 2>&1 | tee "$OUT/sums.txt"
status=${PIPESTATUS[0]}
echo "sums exit $status" | tee -a "$OUT/sums.txt"
[ "$status" -eq 0 ] || failed=1
timeout "${BENCH_TIMEOUT:-300}" "$PY" benchmarks/bench_gpu.py "$@" 2>&1 | tee "$OUT/bench.txt"
status=${PIPESTATUS[0]}
echo "bench exit $status" | tee -a "$OUT/bench.txt"
[ "$status" -eq 0 ] || failed=1
exit "$failed"
