#!/usr/bin/env bash
# attnps setup: installs the Debian packages it needs (idempotent), configures and builds, and runs
# the main job or the test suite.
#
#   bash launch/setup.sh main    install, build, run the main job
#   bash launch/setup.sh test    install, build, run every test (unit, mpirun, ASan build, 60 s fuzzing)
#   bash launch/setup.sh install | build | asan | fuzz
#
# Environment: ATTNPS_BUILD_DIR (default build/), ATTNPS_CUDA=AUTO|ON|OFF (default AUTO),
# JOBS (default: number of cores), ATTNPS_THREADS for the main job (default: number of cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTNPS_BUILD_DIR:-$ROOT/build}"
BUILD_ASAN="${BUILD}-asan"
BUILD_FUZZ="${BUILD}-fuzz"
JOBS="${JOBS:-$(nproc)}"

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  openmpi-bin libopenmpi-dev iproute2
  libprotobuf-dev protobuf-compiler
  librocksdb-dev
  libgoogle-glog-dev libgflags-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libopenblas-openmp-dev libdnnl-dev libfaiss-dev
  libabsl-dev zlib1g-dev libxxhash-dev
  clang libclang-rt-14-dev
)

log() { printf '\n== attnps setup: %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "attnps setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "all ${#PACKAGES[@]} Debian packages present"
    return
  fi
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

configure_and_build() {  # dir, extra cmake args..., then -- targets...
  local dir="$1"; shift
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  targets=("$@")
  log "configure $dir ${args[*]}"
  mkdir -p "$dir"
  cmake -S "$ROOT" -B "$dir" -G Ninja -DATTNPS_CUDA="${ATTNPS_CUDA:-AUTO}" "${args[@]}" >"$dir/configure.log" 2>&1 ||
    { cat "$dir/configure.log"; exit 1; }
  grep -E '^-- attnps:' "$dir/configure.log" || true
  log "build $dir (${JOBS} jobs)"
  local target_args=() known
  known=$(ninja -C "$dir" -t targets all 2>/dev/null | cut -d: -f1)
  for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$known" || { echo "attnps setup: no build target $t in $dir" >&2; exit 1; }
    target_args+=(--target "$t")
  done
  cmake --build "$dir" -j "$JOBS" "${target_args[@]}"
}

build_release() { configure_and_build "$BUILD" -DCMAKE_BUILD_TYPE=Release; }

build_asan() {
  # CPU-only, sanitized: the unit-tested libraries and their tests.
  ATTNPS_CUDA=OFF configure_and_build "$BUILD_ASAN" -DCMAKE_BUILD_TYPE=Debug -DATTNPS_ASAN=ON -- ops_test ps_test \
    data_test config_test models_test worker_test
}

build_fuzz() {
  # clang + libFuzzer: the wire decoder's fuzz target.
  CC=clang CXX=clang++ ATTNPS_CUDA=OFF configure_and_build "$BUILD_FUZZ" -DCMAKE_BUILD_TYPE=Release \
    -DATTNPS_FUZZ=ON -DATTNPS_FUZZ_SECONDS="${ATTNPS_FUZZ_SECONDS:-60}" -- wire_fuzz
}

run_tests() {
  local dir="$1" label="$2"
  log "ctest -L $label in $dir"
  (cd "$dir" && ctest -L "$label" --output-on-failure -j "$JOBS" --timeout 600)
}

run_main() {
  # A synthetic data set, then DIN under mpirun (2 servers + 2 workers) with checkpoints, then the
  # test AUC evaluated from the last checkpoint.
  local bin="$BUILD/attnps"
  local mpirun=(mpirun --oversubscribe --allow-run-as-root --bind-to none)
  cd "$ROOT"
  log "main job 1/3: synthetic data set (data/synthetic)"
  "$bin" prepare --format=synthetic --users="${ATTNPS_SYNTHETIC_USERS:-4000}" --out=data/synthetic
  log "main job 2/3: DIN training, mpirun -np 4 (2 servers + 2 workers)"
  rm -rf ckpt/main
  "${mpirun[@]}" -np 4 "$bin" train --config=launch/din_synthetic.pbtxt --servers=2 \
    --set=checkpoint.dir=ckpt/main --set=checkpoint.every_steps=200 --set=train.epochs=1 \
    --set=train.eval_every_steps=0 --metrics_out=runs/main.jsonl
  log "main job 3/3: test AUC from the last checkpoint ($(cat ckpt/main/LATEST))"
  "${mpirun[@]}" -np 3 "$bin" eval --config=launch/din_synthetic.pbtxt --servers=1 \
    --set=checkpoint.dir=ckpt/main
}

cmd="${1:-main}"
case "$cmd" in
  install) install_packages ;;
  build) install_packages; build_release ;;
  main) install_packages; build_release; run_main ;;
  asan) install_packages; build_asan; ASAN_OPTIONS=detect_leaks=1 run_tests "$BUILD_ASAN" unit ;;
  fuzz) install_packages; build_fuzz; run_tests "$BUILD_FUZZ" fuzz ;;
  test)
    start=$(date +%s)
    install_packages
    build_release
    run_tests "$BUILD" unit
    run_tests "$BUILD" mpi
    run_tests "$BUILD" integration
    run_tests "$BUILD" cluster  # emulated hosts: skipped without root or network namespaces
    build_asan
    ASAN_OPTIONS=detect_leaks=1 run_tests "$BUILD_ASAN" unit
    build_fuzz
    run_tests "$BUILD_FUZZ" fuzz
    log "all tests passed in $(( $(date +%s) - start )) s"
    ;;
  *) echo "usage: bash launch/setup.sh [main|test|install|build|asan|fuzz]" >&2; exit 2 ;;
esac
