#!/usr/bin/env bash
# The torch backend's checks on a CUDA machine, as one run from the repository root: the
# torch tests on the GPU (every test of tests/test_torch.py that takes a device, with
# "cuda"), benchmarks/bench_gpu_sums.py (the ways to add per-cluster sums), then
# benchmarks/bench_gpu.py (its full shapes; arguments go to it).  Logs go to $OUT (default
# ./gpu-checks): env.txt, tests.txt, sums.txt, bench.txt.  Each part has its own time
# limit in seconds (TEST_TIMEOUT, SUMS_TIMEOUT, BENCH_TIMEOUT), so that a slow part leaves
# the others their time.  kmeansfw is imported from this checkout.
set -u -o pipefail
OUT=${OUT:-gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout, installed or not
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" - <<'EOF'
import numba, numpy, sklearn, torch
import kmeansfw
print("kmeansfw", kmeansfw.__version__, "torch", torch.__version__, "numpy", numpy.__version__,
      "numba", numba.__version__, "scikit-learn", sklearn.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
} 2>&1 | tee "$OUT/env.txt"
timeout "${TEST_TIMEOUT:-240}" "$PY" -m pytest -q -p no:cacheprovider tests/test_torch.py \
    -k cuda 2>&1 | tee "$OUT/tests.txt"
echo "tests exit ${PIPESTATUS[0]}" | tee -a "$OUT/tests.txt"
timeout "${SUMS_TIMEOUT:-120}" "$PY" benchmarks/bench_gpu_sums.py 2>&1 | tee "$OUT/sums.txt"
echo "sums exit ${PIPESTATUS[0]}" | tee -a "$OUT/sums.txt"
timeout "${BENCH_TIMEOUT:-300}" "$PY" benchmarks/bench_gpu.py "$@" 2>&1 | tee "$OUT/bench.txt"
echo "bench exit ${PIPESTATUS[0]}" | tee -a "$OUT/bench.txt"
