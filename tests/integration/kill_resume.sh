#!/usr/bin/env bash
# Training state survives kill -9 (one worker, staleness 0, local mode):
#  1. two uninterrupted runs end with bit-identical weights (dense.bin and every prediction);
#  2. a run killed with SIGKILL at a random moment and resumed (--resume) ends with the same
#     weights as the uninterrupted run;
#  3. a SIGKILL in the middle of writing a checkpoint (fault injection: after the servers wrote
#     their shards, before the manifest) leaves LATEST on the previous checkpoint, which loads.
#
#   kill_resume.sh <attnps binary> <source dir> <work dir>
# ATTNPS_TEST_MODEL: the model kind block (default: a small DIN).
set -euo pipefail
BIN="$1"; SRC="$2"; WORK="$3"
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"

"$BIN" prepare --format=synthetic --users=400 --items=2000 --clusters=40 --out=data >/dev/null
DEFAULT_MODEL='din { attention_hidden: [16, 8] }'
MODEL="${ATTNPS_TEST_MODEL:-$DEFAULT_MODEL}"
cat >job.pbtxt <<CFG
data { train_path: "data/train.tsv" test_path: "data/test.tsv" item_cates_path: "data/item_cates.tsv" max_history: 20 shuffle_buffer: 500 }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAGRAD learning_rate: 0.05 } }
features { item_table: "item" cate_table: "cate" }
model { mlp { hidden: [32, 16] activation: DICE } ${MODEL} }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 32 epochs: 2 seed: 9 threads: 1 progress_seconds: 1000 }
ps { servers: 2 }
checkpoint { dir: "ckpt" every_steps: 40 keep_last: 0 }
CFG

run() {  # run <ckpt dir> [flags...]
  local dir="$1"; shift
  "$BIN" train --config=job.pbtxt --set=checkpoint.dir="$dir" "$@" >"$dir.log" 2>&1
}
final_state() {  # the final checkpoint's dense weights and the test predictions it gives
  local dir="$1"
  "$BIN" predict --config=job.pbtxt --set=checkpoint.dir="$dir" --input=data/test.tsv \
    --output="$dir.pred" >/dev/null 2>&1
  cat "$dir/$(cat "$dir/LATEST")/dense.bin" "$dir.pred" | md5sum | cut -d' ' -f1
}

run a; run b
[ "$(final_state a)" = "$(final_state b)" ] || { echo "FAIL: two runs differ"; exit 1; }
steps=$(cat a/LATEST)
echo "two uninterrupted runs: bit-identical ($steps)"

# Killed at a random moment, then resumed (as often as needed).
mkdir -p c
"$BIN" train --config=job.pbtxt --set=checkpoint.dir=c >c.log 2>&1 &
pid=$!
sleep "$(awk -v s=$RANDOM 'BEGIN{srand(s); printf "%.2f", 0.5 + 2.5*rand()}')"
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
killed_at=$(cat c/LATEST 2>/dev/null || echo none)
# No LATEST yet: start over (--overwrite: a step may be complete without LATEST, in the instant
# between its manifest and the switch).
if [ "$killed_at" = none ]; then run c --overwrite; else run c --resume; fi
[ "$(cat c/LATEST)" = "$steps" ] || { echo "FAIL: resumed run ended at $(cat c/LATEST)"; exit 1; }
[ "$(final_state c)" = "$(final_state a)" ] || { echo "FAIL: resumed weights differ"; exit 1; }
echo "killed (last checkpoint then: $killed_at), resumed: same final weights as uninterrupted"

# SIGKILL while the checkpoint at step 80 is being written.
set +e
ATTNPS_CRASH_IN_CHECKPOINT=80 "$BIN" train --config=job.pbtxt --set=checkpoint.dir=d >d.log 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { echo "FAIL: the fault injection did not kill the run"; exit 1; }
[ "$(cat d/LATEST)" = "step-40" ] || { echo "FAIL: LATEST is $(cat d/LATEST)"; exit 1; }
[ ! -f d/step-80/MANIFEST ] || { echo "FAIL: the half-written step has a manifest"; exit 1; }
"$BIN" eval --config=job.pbtxt --set=checkpoint.dir=d >d.eval 2>&1 ||
  { cat d.eval; echo "FAIL: the previous checkpoint does not load"; exit 1; }
grep -q "step=40" d.eval || { cat d.eval; echo "FAIL: eval did not use step 40"; exit 1; }
echo "killed inside a checkpoint write: LATEST stayed on step-40, which loads ($(grep -o 'test auc=[0-9.]*' d.eval))"
