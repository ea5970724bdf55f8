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
"${MPIRUN[@]}" -np 4 "$BIN" train --config=job.pbtxt --servers=2 --set=train.max_steps=120 --set=train.eval_every_steps=60 | tee train.log
[ "$(cat ckpt/LATEST)" = "step-120" ] || { echo "FAIL: LATEST is $(cat ckpt/LATEST)"; exit 1; }
# Communication accounting: per server, the bytes and messages both workers counted sending equal
# what the server counted receiving, and the servers' shares sum to the workers' total.
for s in 0 1; do
  line=$(grep "traffic with server $s:" train.log) || { echo "FAIL: no traffic line for server $s"; exit 1; }
  read -r sent sent_msgs got got_msgs < <(sed -E 's/.*sent ([0-9]+) bytes in ([0-9]+) messages, the server received ([0-9]+) bytes in ([0-9]+) messages.*/\1 \2 \3 \4/' <<<"$line")
  [ "$sent" = "$got" ] && [ "$sent_msgs" = "$got_msgs" ] && [ "$sent" -gt 100000 ] ||
    { echo "FAIL: server $s: $line"; exit 1; }
  echo "server $s: workers sent $sent bytes in $sent_msgs messages = the server's count"
done
python3 - <<'PY' || { echo "FAIL: per-server bytes in metrics.jsonl do not sum to the total"; exit 1; }
import json
r = [json.loads(l) for l in open("metrics.jsonl")][-1]
total, parts = r["sent_bytes"], r["s0_sent_bytes"] + r["s1_sent_bytes"]
print("metrics: sent_bytes/step %.0f = s0 %.0f + s1 %.0f" % (total, r["s0_sent_bytes"], r["s1_sent_bytes"]))
assert abs(total - parts) <= 1e-4 * total + 1  # 6 digits in the JSON and r["s0_sent_bytes"] > 0 and r["s1_sent_bytes"] > 0
PY
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
