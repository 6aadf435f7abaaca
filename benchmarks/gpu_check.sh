#!/usr/bin/env bash
# One prepared GPU check of openmm_nnbias (issue 18): install what is carried, run the GPU cases of
# the tests, then a short benchmark table, and print a summary last. At most 5 minutes on a GPU
# machine (each part under `timeout`, the whole under GPU_CHECK_BUDGET = 300 s); copes with every
# piece missing (no CUDA, no openmm, no openmm-torch, no OpenCL): such figures read "not run: <why>".
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine
#   bash benchmarks/gpu_check.sh --quick    # anywhere (CPU: ~1 min), tiny sizes; = GPU_CHECK_QUICK=1
#
# What to carry (the GPU machine has python 3.12 + torch 2.11/CUDA 13 and no registry): prepare once
# on a machine with PyPI, in the repository root (benchmarks/wheels/ is git-ignored, ~18 MB):
#
#   bash benchmarks/gpu_check.sh --prepare
#
# which runs
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_34_x86_64 -d benchmarks/wheels \
#       openmm==8.4.0 openmm-cuda-13==8.4.0 openmmtorch==1.5 openmm-torch-cuda-13==1.5
#   apt-get download ocl-icd-libopencl1        # the OpenCL ICD loader (libOpenCL.so.1), 43 kB
# and name `benchmarks/wheels` in the device call's carry. openmm-cuda-13 (not -12) matches the CUDA 13
# runtime libraries torch 2.11 brings (cuFFT, NVRTC under site-packages/nvidia/cu13/lib), so nothing
# large travels. openmmtorch 1.5 is built against torch 2.9: with torch 2.11 its CUDA plugin misses
# one symbol (c10_cuda_check_implementation's line argument became unsigned; patched here in the
# installed copy, GPU_CHECK_PATCH_TORCH_ABI=0 to skip), libOpenMMTorch.so asks for libnvrtc.so.12
# (no symbol used; a link to libnvrtc.so.13 satisfies it), and torch >= 2.10 may still refuse at run
# time ("set_stride is not allowed", openmm-torch issue 175): the torch-backend figures then read
# "not run: ..." and the table/cmap backends and all torch-side parts still run.
#
# Environment: GPU_CHECK_WHEELS (default benchmarks/wheels), GPU_CHECK_RESULTS (default
# /tmp/gpu_check_results; packed into $OUT/gpu_check.tgz when $OUT is set), GPU_CHECK_SITE
# (install target, /tmp/gpu_check_site), GPU_CHECK_BUDGET (seconds, default 300), GPU_CHECK_PYTHON,
# GPU_CHECK_TEST_LIMIT / GPU_CHECK_UPDATER_LIMIT (seconds for the two pytest runs, 60 / 35).
# A part stopped by its limit keeps the figures it had measured (the GPU ones come first).
set -u
cd "$(dirname "$0")/.." || exit 1
QUICK=${GPU_CHECK_QUICK:-0}
WHEELS=${GPU_CHECK_WHEELS:-benchmarks/wheels}
for arg in "$@"; do
    case $arg in
        --quick) QUICK=1 ;;
        --prepare)
            mkdir -p "$WHEELS" && python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
                --implementation cp --platform manylinux_2_34_x86_64 -d "$WHEELS" \
                openmm==8.4.0 openmm-cuda-13==8.4.0 openmmtorch==1.5 openmm-torch-cuda-13==1.5 || exit 1
            (cd "$WHEELS" && apt-get download ocl-icd-libopencl1) || echo "(no OpenCL loader .deb: OpenCL may not load)"
            ls -la "$WHEELS"; du -sh "$WHEELS"; exit 0 ;;
        *) echo "usage: $0 [--quick | --prepare]"; exit 2 ;;
    esac
done
PY=${GPU_CHECK_PYTHON:-python3}
RESULTS=${GPU_CHECK_RESULTS:-/tmp/gpu_check_results}
SITE=${GPU_CHECK_SITE:-/tmp/gpu_check_site}
SHIM=/tmp/gpu_check_shim
BUDGET=${GPU_CHECK_BUDGET:-300}
START=$(date +%s)
QFLAG=""
[ "$QUICK" = 1 ] && QFLAG=--quick
rm -rf "$RESULTS" && mkdir -p "$RESULTS" "$SHIM"
note() { echo "$*"; echo "$*" >> "$RESULTS/setup.txt"; }
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
note "gpu_check $(git rev-parse --short HEAD 2>/dev/null || echo '?') quick=$QUICK on $(hostname), $(nproc) CPUs"
command -v nvidia-smi >/dev/null && note "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"

# ---- install the carried wheels (only where openmm is not importable already)
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    if "$PY" -c "import openmm" 2>/dev/null; then
        note "openmm already importable: carried wheels left alone"
    elif timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$WHEELS"/*.whl; then
        export PYTHONPATH="$PWD:$SITE${PYTHONPATH#"$PWD"}"
        note "installed into $SITE: $(cd "$WHEELS" && ls -- *.whl | tr '\n' ' ')"
    else
        note "wheel install failed: OpenMM parts will read 'not run'"
    fi
else
    note "no wheels in $WHEELS: using the packages python has"
fi

# ---- libraries: torch's CUDA 13 runtime (cuFFT, NVRTC), shims for openmmtorch 1.5, OpenCL loader
SP=$("$PY" -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))" 2>/dev/null)
LIBS=""
for d in "$SP/torch/lib" "$SP/nvidia/cu13/lib" "$SP/nvidia/cufft/lib" "$SP/nvidia/cuda_nvrtc/lib"; do
    [ -d "$d" ] && LIBS="$LIBS:$d"
done
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1" || ls ${LIBS//:/ } 2>/dev/null | grep -qx "$1"; }
if [ -d "$SITE/OpenMM.libs" ] && ! have_lib libnvrtc.so.12; then
    NVRTC13=""
    for d in ${LIBS//:/ }; do [ -z "$NVRTC13" ] && NVRTC13=$(ls "$d"/libnvrtc.so.13* 2>/dev/null | head -1); done
    [ -n "$NVRTC13" ] && ln -sf "$NVRTC13" "$SHIM/libnvrtc.so.12" && note "shim: libnvrtc.so.12 -> $NVRTC13"
fi
if ! have_lib libOpenCL.so.1; then
    DEB=$(ls "$WHEELS"/ocl-icd-libopencl1*.deb 2>/dev/null | head -1)
    if [ -n "$DEB" ] && dpkg -x "$DEB" "$SHIM/ocl" 2>/dev/null; then
        LIBS="$LIBS:$SHIM/ocl/usr/lib/x86_64-linux-gnu"
        note "OpenCL loader from $(basename "$DEB")"
    else
        note "no libOpenCL.so.1 (and no carried ocl-icd .deb): OpenCL will not load"
    fi
fi
if ! ls /etc/OpenCL/vendors/*.icd >/dev/null 2>&1; then
    ICD=$( (ldconfig -p 2>/dev/null | grep -o '/[^ ]*libnvidia-opencl.so.1'; \
            find /usr/local/nvidia /usr/lib /usr/lib64 -name 'libnvidia-opencl.so.1' 2>/dev/null) | head -1)
    if [ -n "$ICD" ]; then
        mkdir -p "$SHIM/vendors" && echo "$ICD" > "$SHIM/vendors/nvidia.icd"
        export OCL_ICD_VENDORS="$SHIM/vendors" && note "OpenCL ICD: $ICD"
    fi
fi
export LD_LIBRARY_PATH="$SHIM$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
PLUGIN="$SITE/OpenMM.libs/lib/plugins/libOpenMMTorchCUDA.so"
if [ -f "$PLUGIN" ] && [ "${GPU_CHECK_PATCH_TORCH_ABI:-1}" = 1 ]; then
    note "$("$PY" benchmarks/gpu_bench.py abi --results "$RESULTS" --plugin "$PLUGIN" 2>&1 | tail -1)"
fi

# ---- the parts, each in its own process under a time limit
run_part() {  # name limit_s
    local name=$1 limit=$2 left rc
    left=$((BUDGET - ($(date +%s) - START) - 15))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 5 ]; then echo "time budget (${BUDGET} s) spent" > "$RESULTS/$name.status"; return; fi
    echo "=== part $name (limit ${limit} s)"
    timeout -k 5 "$limit" "$PY" benchmarks/gpu_bench.py "$name" --results "$RESULTS" $QFLAG > "$RESULTS/$name.log" 2>&1
    rc=$?
    tail -n 40 "$RESULTS/$name.log"
    case $rc in
        0) ;;
        124|137) echo "timed out after ${limit} s (log $name.log)" > "$RESULTS/$name.status" ;;
        *) echo "failed, rc $rc: $(grep -v '^\s*$' "$RESULTS/$name.log" | tail -1 | cut -c1-300)" > "$RESULTS/$name.status" ;;
    esac
}
export GPU_CHECK_TEST_LIMIT=${GPU_CHECK_TEST_LIMIT:-60} GPU_CHECK_UPDATER_LIMIT=${GPU_CHECK_UPDATER_LIMIT:-35}
run_part env 30
run_part tests 100
run_part optimizer 30
run_part diffsim 45
run_part deepves 45
run_part push 30

note "wall time $(($(date +%s) - START)) s"
"$PY" benchmarks/gpu_bench.py summary --results "$RESULTS" | tee "$RESULTS/summary.txt"
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    cp "$RESULTS/summary.txt" "$OUT/summary.txt"
    tar czf "$OUT/gpu_check.tgz" -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")"
fi
