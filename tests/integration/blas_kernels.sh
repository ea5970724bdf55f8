#!/usr/bin/env bash
# attnps runs the BLAS kernels of its CPU: when the library detected a lower core (simulated with
# ATTNPS_TEST_BLAS_CORE=Prescott) it re-executes itself with OPENBLAS_CORETYPE set, alone and under
# mpirun, and the job's log says which kernels run; a user's OPENBLAS_CORETYPE is kept. Likewise
# OpenMP's spin count (GOMP_SPINCOUNT, read when libgomp loads): set by the re-exec, a user's kept.
#
#   blas_kernels.sh <attnps binary> <work dir> <mpirun command...>
set -euo pipefail
BIN="$1"; WORK="$2"; shift 2
MPIRUN=("$@")
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
"$BIN" prepare --format=synthetic --users=100 --items=300 --clusters=10 --out=data >/dev/null
cat >job.pbtxt <<CFG
data { train_path: "data/train.tsv" max_history: 10 }
tables { name: "item" dim: 4 } tables { name: "cate" dim: 4 }
model { din {} }
train { batch_size: 32 max_steps: 3 }
CFG
env -u GOMP_SPINCOUNT "$BIN" train --config=job.pbtxt | tee plain.log
grep -q "^\[attnps\] BLAS kernels .* on a .* CPU" plain.log || { echo "FAIL: no BLAS line"; exit 1; }
grep -q "GOMP_SPINCOUNT=30000 set by attnps" plain.log ||
  { echo "FAIL: OpenMP's spin count was not set at load time"; exit 1; }
GOMP_SPINCOUNT=1000 "$BIN" train --config=job.pbtxt | tee spin.log
grep -q "GOMP_SPINCOUNT=.* set by attnps" spin.log &&
  { echo "FAIL: the user's GOMP_SPINCOUNT was overridden"; exit 1; }
env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive "$BIN" train --config=job.pbtxt | tee wait.log
grep -q "GOMP_SPINCOUNT=.* set by attnps" wait.log &&
  { echo "FAIL: the user's OMP_WAIT_POLICY was overridden by a spin count"; exit 1; }
ATTNPS_TEST_BLAS_CORE=Prescott "$BIN" train --config=job.pbtxt | tee fixed.log
grep -q "OPENBLAS_CORETYPE=.* set by attnps" fixed.log ||
  { echo "FAIL: a Prescott fallback was not re-executed with the CPU's core"; exit 1; }
grep -q "BLAS kernels Prescott" fixed.log && { echo "FAIL: still on Prescott kernels"; exit 1; }
ATTNPS_TEST_BLAS_CORE=Prescott "${MPIRUN[@]}" -x ATTNPS_TEST_BLAS_CORE -np 2 "$BIN" train \
  --config=job.pbtxt | tee mpi.log
grep -q "OPENBLAS_CORETYPE=.* set by attnps" mpi.log || { echo "FAIL: not under mpirun"; exit 1; }
grep -q "trained .* samples" mpi.log || { echo "FAIL: the mpirun job did not train"; exit 1; }
OPENBLAS_CORETYPE=Prescott "$BIN" train --config=job.pbtxt | tee user.log
grep -q "BLAS kernels Prescott .*OPENBLAS_CORETYPE=Prescott (yours)" user.log ||
  { echo "FAIL: the user's OPENBLAS_CORETYPE was not kept"; exit 1; }
echo "PASS: $(grep -o 'BLAS kernels.*' fixed.log)"
