#!/usr/bin/env bash
# mpirun jobs that must end (issue "Trust"): an error on any rank ends the whole job non-zero
# within LIMIT seconds naming the rank and the error; every mix of workers, final step and
# checkpoint policy exits; two trainings cannot share a checkpoint directory; disk full during a
# checkpoint keeps the previous one loadable; bad command lines are refused.
#
#   trust_mpi.sh <case> <attnps binary> <work dir> <mpirun command...>
#   case: failing_rank | exit_matrix | lock | disk_full | cli
set -uo pipefail
CASE="$1"; BIN="$2"; WORK="$3"; shift 3
MPIRUN=("$@")
LIMIT=30
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

"$BIN" prepare --format=synthetic --users=300 --items=2000 --clusters=40 --out=data >/dev/null 2>&1 ||
  fail "prepare"
cat >job.pbtxt <<CFG
data { train_path: "data/train.tsv" test_path: "data/test.tsv" max_history: 20 }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAGRAD learning_rate: 0.05 } }
features { item_table: "item" cate_table: "cate" }
model { mlp { hidden: [32, 16] activation: DICE } din { attention_hidden: [16, 8] } }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 64 epochs: 1 seed: 3 progress_seconds: 1000 }
checkpoint { keep_last: 0 }
CFG

# expect_failure <what> <pattern the output must hold> command...: non-zero within LIMIT s.
expect_failure() {
  local what="$1" pattern="$2"; shift 2
  local start=$(date +%s.%N)
  timeout --kill-after=5 "$((LIMIT + 30))" "$@" >out.log 2>&1
  local rc=$?
  LAST_RC=$rc
  local took=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$start" "$(date +%s.%N)")
  echo "$what: exit $rc after $took s"
  [ "$rc" -ne 0 ] || { cat out.log; fail "$what: the job succeeded"; }
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= $LIMIT else 1)" "$took" ||
    { tail -20 out.log; fail "$what: took $took s (limit $LIMIT s)"; }
  grep -Eq "$pattern" out.log || { tail -20 out.log; fail "$what: output lacks /$pattern/"; }
  grep -E "^attnps \(rank" out.log | head -3
}

# expect_exit_0 <what> command...: exits 0 within 60 s.
expect_exit_0() {
  local what="$1"; shift
  timeout --kill-after=5 60 "$@" >out.log 2>&1
  local rc=$?
  [ "$rc" -eq 0 ] || { tail -20 out.log; fail "$what: exit $rc (124: hung)"; }
  echo "$what: exit 0"
}

case "$CASE" in
failing_rank)
  # A worker whose half of the data is malformed (the even lines).
  awk 'NR % 2 == 0 { print "garbage\tline"; next } { print }' data/train.tsv >data/half_bad.tsv
  expect_failure "worker with malformed data" "rank 2, worker 1.*malformed" \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 \
    --set=data.train_path=data/half_bad.tsv --set=data.shuffle_buffer=0
  # A corrupt shard on resume and on eval (2 workers; worker 0 verifies, all stop).
  expect_exit_0 "train 2 workers" "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt \
    --servers=1 --set=checkpoint.dir=ck --set=train.max_steps=20
  sst=$(cd ck/step-20 && ls server-0/shard-0/*.sst | head -1)
  printf 'x' | dd of="ck/step-20/$sst" bs=1 seek=100 conv=notrunc 2>/dev/null
  expect_failure "resume from a corrupt shard" "$sst" \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck \
    --set=train.max_steps=40 --resume
  expect_failure "eval of a corrupt shard" "$sst" \
    "${MPIRUN[@]}" -np 4 "$BIN" eval --config=job.pbtxt --servers=2 --set=checkpoint.dir=ck
  # A config mismatch and a missing test file, refused by every worker at start.
  expect_failure "eval with another attention" "attention_normalization" \
    "${MPIRUN[@]}" -np 3 "$BIN" eval --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck \
    --checkpoint=ck/step-20 --set=model.din.attention_normalization=SOFTMAX
  expect_failure "missing test file" "data.test_path.*nope.tsv" \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 \
    --set=data.test_path=data/nope.tsv
  # Training that diverges on both workers.
  expect_failure "nan loss" "diverged at step" \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 \
    --set=dense_optimizer.kind=SGD --set=dense_optimizer.learning_rate=10 \
    --set=dense_optimizer.momentum=0.99 --set=tables[item].optimizer.learning_rate=10 \
    --set=tables[cate].optimizer.kind=SGD --set=tables[cate].optimizer.learning_rate=10
  ;;
exit_matrix)
  # Every mix of workers, final step and checkpoint policy exits (the final step is a periodic
  # checkpoint step, or not; save_at_end on or off; a time-based policy).
  for np in 2 3; do
    for steps in 40 45; do
      for at_end in true false; do
        rm -rf ck
        expect_exit_0 "np=$np max_steps=$steps every_steps=20 save_at_end=$at_end" \
          "${MPIRUN[@]}" -np "$np" "$BIN" train --config=job.pbtxt --servers=1 \
          --set=checkpoint.dir=ck --set=checkpoint.every_steps=20 \
          --set=checkpoint.save_at_end=$at_end --set=train.max_steps=$steps
      done
    done
    rm -rf ck
    expect_exit_0 "np=$np every_minutes=0.0001 (every step)" \
      "${MPIRUN[@]}" -np "$np" "$BIN" train --config=job.pbtxt --servers=1 \
      --set=checkpoint.dir=ck --set=checkpoint.every_minutes=0.0001 --set=train.max_steps=10
  done
  ;;
lock)
  "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck \
    --set=checkpoint.every_steps=10 --set=train.epochs=20 >first.log 2>&1 &
  first=$!
  for _ in $(seq 100); do [ -s ck/LOCK ] && break; sleep 0.1; done
  expect_failure "second training of ck" "ck is in use by another training job \(pid [0-9]+ host " \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck \
    --set=checkpoint.every_steps=10 --overwrite
  kill -0 "$first" 2>/dev/null || { cat first.log; fail "the first training did not survive"; }
  kill "$first"; wait "$first" 2>/dev/null
  # A new run without --resume into a directory holding checkpoints.
  expect_failure "new run into ck" "already holds checkpoints.*--resume" \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck
  ls ck/step-* >/dev/null 2>&1 || fail "the refused run deleted the checkpoints"
  ;;
disk_full)
  mkdir -p small
  if ! mount -t tmpfs -o size=1536k tmpfs small 2>/dev/null; then
    echo "SKIPPED: cannot mount a tmpfs here (needs root and mount permission)"; exit 0
  fi
  trap 'umount small' EXIT
  expect_failure "disk full during a checkpoint" "small/ck.*No space left on device" \
    "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=small/ck \
    --set=checkpoint.every_steps=10 --set=train.epochs=10
  grep -q "Aborted\|core dumped\|Check failed\|signal 6" out.log && { cat out.log; fail "aborted"; }
  latest=$(cat small/ck/LATEST) || fail "no checkpoint was completed before the disk filled"
  expect_exit_0 "eval of $latest" "${MPIRUN[@]}" -np 3 "$BIN" eval --config=job.pbtxt --servers=1 \
    --set=checkpoint.dir=small/ck
  grep -q "step=${latest#step-}" out.log || fail "eval did not use $latest"
  ;;
cli)
  expect_failure "--servers=2x" "servers must be a whole number" "$BIN" train --config=job.pbtxt --servers=2x
  expect_failure "--config=<dir>" "is a directory" "$BIN" train --config=data
  expect_failure "huge dim" "tables\[0\]\.dim" "${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt \
    --servers=1 --set=tables[item].dim=100000000
  grep -q "Check failed\|MPI_ABORT" out.log && fail "huge dim: not a config error"
  expect_failure "infinite learning rate" "dense_optimizer.learning_rate" "$BIN" train \
    --config=job.pbtxt --set=dense_optimizer.learning_rate=inf
  expect_failure "train.device=CUDA" "train.device: CUDA" "$BIN" train --config=job.pbtxt \
    --set=train.device=CUDA
  [ "$(grep -c "train.device" out.log)" -eq 1 ] || { cat out.log; fail "train.device: not one line"; }
  [ "$LAST_RC" -eq 1 ] || fail "train.device=CUDA: exit $LAST_RC, expected 1"
  "$BIN" train --help | grep -q -- "--resume" || fail "train --help"
  "$BIN" eval --help >/dev/null || fail "eval --help"
  echo "train --help: exit 0"
  ;;
*) fail "unknown case $CASE" ;;
esac
echo "PASS: $CASE"
