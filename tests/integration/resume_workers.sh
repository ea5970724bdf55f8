#!/usr/bin/env bash
# Resume with another number of workers (1 -> 2 and 2 -> 1): the rest of the epoch is read exactly
# once in total (the samples trained before and after the resume add up to the train file's
# lines), and eval loads the result.
#
#   resume_workers.sh <attnps binary> <work dir> <mpirun command...>
set -euo pipefail
BIN="$1"; WORK="$2"; shift 2
MPIRUN=("$@")
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
"$BIN" prepare --format=synthetic --users=300 --items=2000 --clusters=40 --out=data >/dev/null
lines=$(grep -c . data/train.tsv)
cat >job.pbtxt <<CFG
data { train_path: "data/train.tsv" test_path: "data/test.tsv" max_history: 20 shuffle_buffer: 1000 }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAGRAD learning_rate: 0.05 } }
features { item_table: "item" cate_table: "cate" }
model { mlp { hidden: [32, 16] activation: DICE } din { attention_hidden: [16, 8] } }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 64 epochs: 1 seed: 3 progress_seconds: 1000 }
ps { servers: 2 }
CFG
trained() { grep -o 'trained [0-9]* samples' "$1" | awk '{print $2}'; }
check() {  # check <what> <log before> <log after>
  local before after
  before=$(trained "$2"); after=$(trained "$3")
  [ $((before + after)) -eq "$lines" ] ||
    { echo "FAIL: $1: $before + $after samples trained, the file has $lines lines"; exit 1; }
  echo "$1: $before + $after = $lines samples: every line once"
}

# 1 -> 2: one worker (local mode, 2 in-process servers), then 2 workers under mpirun.
"$BIN" train --config=job.pbtxt --set=checkpoint.dir=ck12 --set=train.max_steps=70 >a1.log 2>&1
"${MPIRUN[@]}" -np 4 "$BIN" train --config=job.pbtxt --servers=2 --set=checkpoint.dir=ck12 \
  --resume >a2.log 2>&1 || { cat a2.log; exit 1; }
grep -q "written by 1 worker(s); 2 now" a2.log || { cat a2.log; echo "FAIL: no remap message"; exit 1; }
check "1 -> 2 workers" a1.log a2.log

# 2 -> 1: two workers under mpirun, then one in local mode.
"${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck21 \
  --set=train.max_steps=45 >b1.log 2>&1 || { cat b1.log; exit 1; }
"$BIN" train --config=job.pbtxt --set=checkpoint.dir=ck21 --resume >b2.log 2>&1 ||
  { cat b2.log; exit 1; }
check "2 -> 1 workers" b1.log b2.log
"$BIN" eval --config=job.pbtxt --set=checkpoint.dir=ck21 | grep "test auc" ||
  { echo "FAIL: eval after 2 -> 1"; exit 1; }
"${MPIRUN[@]}" -np 3 "$BIN" eval --config=job.pbtxt --servers=1 --set=checkpoint.dir=ck12 |
  grep "test auc" || { echo "FAIL: eval after 1 -> 2"; exit 1; }
