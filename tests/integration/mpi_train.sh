#!/usr/bin/env bash
# A DIN job under mpirun with 2 servers + 2 workers (checkpoints on), resumed with 1 server +
# 2 workers (the checkpoint re-shards onto the new server count), then evaluated.
#
#   mpi_train.sh <attnps binary> <work dir> <mpirun command...>
# ATTNPS_TEST_MODEL: the model kind block (default: a small DIN).
set -euo pipefail
BIN="$1"; WORK="$2"; shift 2
MPIRUN=("$@")
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
"$BIN" prepare --format=synthetic --users=600 --items=3000 --clusters=50 --out=data >/dev/null
DEFAULT_MODEL='din { attention_hidden: [16, 8] }'
MODEL="${ATTNPS_TEST_MODEL:-$DEFAULT_MODEL}"
cat >job.pbtxt <<CFG
data { train_path: "data/train.tsv" test_path: "data/test.tsv" item_cates_path: "data/item_cates.tsv" max_history: 20 shuffle_buffer: 1000 }
tables { name: "user" dim: 8 optimizer { kind: ADAGRAD learning_rate: 0.05 } }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
features { user_table: "user" item_table: "item" cate_table: "cate" }
model { mlp { hidden: [32, 16] activation: DICE } ${MODEL} }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 64 epochs: 1 seed: 3 staleness: 1 progress_seconds: 2 }
ps { shard_threads: 2 }
checkpoint { dir: "ckpt" every_steps: 50 keep_last: 2 }
metrics { out_path: "metrics.jsonl" }
CFG
"${MPIRUN[@]}" -np 4 "$BIN" train --config=job.pbtxt --servers=2 --set=train.max_steps=120
[ "$(cat ckpt/LATEST)" = "step-120" ] || { echo "FAIL: LATEST is $(cat ckpt/LATEST)"; exit 1; }
"${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --resume | tee resume.log
grep -q "resumed from .*step-120" resume.log || { echo "FAIL: did not resume"; exit 1; }
grep -q '"split":"test"' metrics.jsonl || { echo "FAIL: no test metrics written"; exit 1; }
"${MPIRUN[@]}" -np 4 "$BIN" eval --config=job.pbtxt --servers=2 | tee eval.log
auc=$(grep -o 'test auc=[0-9.]*' eval.log | cut -d= -f2)
python3 -c "import sys; a=float(sys.argv[1]); sys.exit(0 if a > 0.6 else 1)" "$auc" ||
  { echo "FAIL: test AUC $auc after training"; exit 1; }
# Sharded evaluation: 2 workers (each scores half the lines, the results merged) give the metrics
# of 1 worker and of local mode to the 6 digits printed.
metrics() { grep -o 'test auc=.* samples=[0-9]*' "$1"; }
"${MPIRUN[@]}" -np 3 "$BIN" eval --config=job.pbtxt --servers=1 >eval_1x2.log
"${MPIRUN[@]}" -np 2 "$BIN" eval --config=job.pbtxt --servers=1 >eval_1x1.log
"$BIN" eval --config=job.pbtxt >eval_local.log
for other in eval_1x2.log eval_1x1.log eval_local.log; do
  [ "$(metrics eval.log)" = "$(metrics $other)" ] ||
    { echo "FAIL: sharded evaluation differs: $(metrics eval.log) vs $(metrics $other) ($other)"; exit 1; }
done
echo "sharded evaluation (2+2, 1+2, 1+1, local): $(metrics eval.log) in all"
echo "mpirun 2+2 train, resume on 1 server + 2 workers, eval: test auc=$auc"
