#!/usr/bin/env bash
# The whole GPU verification in one call, for a GPU machine that has no package registry.
#
#   bash bench/gpu_check.sh pack [--build=DIR]   # on the CPU machine that built attnps with CUDA
#   bash bench/gpu_check.sh run                  # on the GPU machine, from the repository root
#
# pack: copies the GPU test and benchmark binaries of DIR (default build/, configured with nvcc,
# sm_90) into gpu-pack/bin and the shared libraries `ldd` lists into gpu-pack/libs.tar.xz, except
# glibc, libstdc++/libgcc (the GPU image's are newer) and CUDA's own (cudart, cuBLAS, NCCL: the GPU
# machine's toolkit or its PyTorch wheels provide them; cuBLASLt alone is 500 MB).
# run: unpacks the libraries, finds CUDA's, records nvidia-smi, runs every CUDA op test and
# bench/gpu_bench when it was built (DIN, then DIEN, BST and ComiRec-SA), and writes each step's
# log and summary.txt to $OUT (or ./gpu-logs). Exits 1 when a step fails. Fits in 8 minutes:
# each step has its own timeout (90 + 180 + 180 s).
# With the device tool: run(command="bash bench/gpu_check.sh run", carry=["gpu-pack"]).
set -uo pipefail
cd "$(dirname "$0")/.."

PACK=gpu-pack
BINARIES=(ops_test gpu_bench)

die() { echo "gpu_check: $*" >&2; exit 2; }

pack() {
  local build=build
  for arg in "$@"; do
    case "$arg" in
      --build=*) build="${arg#--build=}" ;;
      *) die "unknown flag $arg (pack [--build=DIR])" ;;
    esac
  done
  [[ -x "$build/ops_test" ]] || die "$build/ops_test not found: build first (bash launch/setup.sh build)"
  grep -q attnps_ops_cuda "$build/build.ninja" 2>/dev/null ||
    die "$build was configured without CUDA (nvcc not found?): reconfigure with -DATTNPS_CUDA=ON"
  rm -rf "$PACK" && mkdir -p "$PACK/bin" "$PACK/lib"
  grep -qx "/$PACK/" .git/info/exclude 2>/dev/null || echo "/$PACK/" >>.git/info/exclude
  local b lib
  for b in "${BINARIES[@]}"; do
    [[ -x "$build/$b" ]] || { echo "gpu_check: $build/$b not built, left out"; continue; }
    cp "$build/$b" "$PACK/bin/"
    ldd "$build/$b" | awk '/=> \//{print $3}' | while read -r lib; do
      case "$(basename "$lib")" in
        libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
        libcudart.so*|libcublas*|libnccl.so*|libcuda.so*) ;;
        *) cp -L -n "$lib" "$PACK/lib/" ;;
      esac
    done
  done
  tar -cJf "$PACK/libs.tar.xz" -C "$PACK/lib" . && rm -rf "$PACK/lib"
  du -sh "$PACK"
  local kib
  kib=$(du -sk "$PACK" | cut -f1)
  ((kib < 60 * 1024)) || die "$PACK is $((kib / 1024)) MiB: over the 64 MiB a device call carries"
  echo "gpu_check: packed $(ls "$PACK/bin" | tr '\n' ' ')into $PACK; next, on the GPU machine: bash bench/gpu_check.sh run"
}

# The folder holding libcublas.so.13 (and cudart) on this machine.
find_cuda_libs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib; do
    [[ -e "$d/libcublas.so.13" ]] && { echo "$d"; return; }
  done
  python3 - <<'EOF' 2>/dev/null
import glob, os, site, sys
for root in site.getsitepackages() + [os.path.dirname(os.__file__)]:
    hits = glob.glob(os.path.join(root, "nvidia", "**", "libcublas.so.13"), recursive=True)
    if hits:
        print(":".join(sorted({os.path.dirname(h) for h in
              hits + glob.glob(os.path.join(root, "nvidia", "**", "libcudart.so.13"), recursive=True)})))
        sys.exit(0)
EOF
}

step() {  # step NAME SECONDS COMMAND...: runs it with a timeout, logs to $OUT/NAME.log
  local name=$1 secs=$2
  shift 2
  local t0=$SECONDS
  timeout "$secs" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s $(tail -1 "$OUT/$name.log")" | tee -a "$OUT/summary.txt"
  ((rc == 0)) || FAILED=1
}

run() {
  OUT=${OUT:-./gpu-logs}
  mkdir -p "$OUT" && : >"$OUT/summary.txt"
  [[ -d "$PACK/bin" ]] || die "no $PACK/bin here: run 'bash bench/gpu_check.sh pack' on the build machine and carry $PACK"
  local libs=/tmp/attnps-gpu-libs cuda
  rm -rf "$libs" && mkdir -p "$libs" && tar -xJf "$PACK/libs.tar.xz" -C "$libs"
  cuda=$(find_cuda_libs) || true
  [[ -n "$cuda" ]] || die "libcublas.so.13 not found (looked in /usr/local/cuda and Python's nvidia packages)"
  export LD_LIBRARY_PATH="$libs:$cuda:${LD_LIBRARY_PATH:-}"
  FAILED=0
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >>"$OUT/summary.txt"
  step cuda_ops 90 "$PACK/bin/ops_test" --gtest_filter='*Twin*:*Cuda*:*TensorCuda*'
  if grep -q '^\[  SKIPPED \]' "$OUT/cuda_ops.log"; then
    echo "cuda_ops: tests were skipped (no GPU visible to them): nothing on the device was checked" |
      tee -a "$OUT/summary.txt"
    FAILED=1
  fi
  if [[ -x "$PACK/bin/gpu_bench" ]]; then
    # B = 2048, T = 50 and 100, beside the PyTorch twins (eager, torch.compile) it runs itself:
    # DIN first (its log ends with din_vs_torch_eager/compile), then DIEN, BST, ComiRec-SA, whose
    # compiled twins take longest (DIEN's AUGRU is a loop over T).
    step gpu_bench_din 180 "$PACK/bin/gpu_bench" --device=cuda --models=din
    step gpu_bench_others 180 "$PACK/bin/gpu_bench" --device=cuda --models=dien,bst,comirec_sa
  else
    echo "gpu_bench not packed (not built yet)" | tee -a "$OUT/summary.txt"
  fi
  echo "logs in $OUT"
  exit "$FAILED"
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash bench/gpu_check.sh pack [--build=DIR] | run" >&2; exit 2 ;;
esac
