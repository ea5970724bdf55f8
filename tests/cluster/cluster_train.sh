#!/usr/bin/env bash
# DIN across emulated hosts (launch/emulated_cluster.sh, 1 Gbit/s links), from one shared data
# directory:
#  1. 1 server on aps-host1 + 1 worker on aps-host2 (staleness 0) ends with the bit-identical
#     weights of the same job on one host and of local mode: the network changes nothing;
#  2. 2 hosts x (1 server + 1 worker) with checkpoints; kill -9 of the worker on aps-host2 in
#     the middle ends the whole job promptly (non-zero exit) and leaves LATEST loadable;
#  3. resumed on ONE host (1 server + 2 workers), it finishes; evaluating the final checkpoint
#     on 2 hosts (2 + 2) and on one host prints identical metrics.
# Exit 77 (ctest: skipped) without root or network namespaces.
#
#   cluster_train.sh <source dir> <attnps binary> <work dir> <mpirun command...>
set -euo pipefail
SRC="$1"; BIN="$2"; WORK="$3"; shift 3
MPIRUN=("$@")
source "$SRC/tests/cluster/cluster_lib.sh"
cluster_up 2 1gbit >/dev/null
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
"$BIN" prepare --format=synthetic --users=500 --items=2000 --clusters=40 --out=data >/dev/null
cat >job.pbtxt <<'CFG'
data { train_path: "data/train.tsv" test_path: "data/test.tsv" item_cates_path: "data/item_cates.tsv" max_history: 20 shuffle_buffer: 1000 }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAGRAD learning_rate: 0.05 } }
features { item_table: "item" cate_table: "cate" }
model { mlp { hidden: [32, 16] activation: DICE } din { attention_hidden: [16, 8] } }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 32 epochs: 1 seed: 4 threads: 1 staleness: 0 progress_seconds: 1000 }
ps { servers: 1 }
checkpoint { dir: "ckpt" every_steps: 50 keep_last: 0 }
CFG
weights() { cat "$1/$(cat "$1/LATEST")/dense.bin" | md5sum | cut -d' ' -f1; }

# 1. One server and one worker on different hosts = one host = local mode.
"${MPIRUN[@]}" "${NET[@]}" -np 2 --map-by node "$BIN" train --config=job.pbtxt \
  --set=checkpoint.dir=c2 --set=train.max_steps=150 >c2.log 2>&1 || { tail c2.log; echo "FAIL: 2-host run"; exit 1; }
"${MPIRUN[@]}" -np 2 "$BIN" train --config=job.pbtxt --set=checkpoint.dir=c1 \
  --set=train.max_steps=150 >c1.log 2>&1
"$BIN" train --config=job.pbtxt --set=checkpoint.dir=cl --set=train.max_steps=150 >cl.log 2>&1
[ "$(weights c2)" = "$(weights c1)" ] && [ "$(weights c1)" = "$(weights cl)" ] ||
  { echo "FAIL: weights differ: 2 hosts $(weights c2), 1 host $(weights c1), local $(weights cl)"; exit 1; }
echo "1 server on aps-host1 + 1 worker on aps-host2: weights identical to one host and local mode ($(cat c2/LATEST))"

# 2. 2 hosts x (1 server + 1 worker); kill -9 of the worker on aps-host2.
"${MPIRUN[@]}" "${NET[@]}" -np 4 --map-by node "$BIN" train --config=job.pbtxt --servers=2 \
  --set=checkpoint.dir=k --set=train.epochs=4 >k.log 2>&1 &
job=$!
for _ in $(seq 600); do [ -f k/LATEST ] && break; sleep 0.05; done
[ -f k/LATEST ] || { tail k.log; echo "FAIL: no checkpoint before the kill"; exit 1; }
victim=""
for pid in $(ip netns pids aps-host2); do
  # rank 3 (a worker: ranks 0, 1 serve) runs on aps-host2 with --map-by node
  if tr '\0' ' ' </proc/"$pid"/cmdline 2>/dev/null | grep -q "attnps train" &&
     grep -qz '^OMPI_COMM_WORLD_RANK=3$' /proc/"$pid"/environ 2>/dev/null; then victim=$pid; fi
done
[ -n "$victim" ] || { echo "FAIL: no worker process on aps-host2"; exit 1; }
killed_at=$(date +%s)
kill -9 "$victim"
rc=0; wait "$job" || rc=$?
took=$(( $(date +%s) - killed_at ))
[ "$rc" != 0 ] || { echo "FAIL: the job exited 0 after its worker was killed"; exit 1; }
[ "$took" -le 30 ] || { echo "FAIL: the job took $took s to end after the kill"; exit 1; }
echo "kill -9 of the worker on aps-host2 at $(cat k/LATEST): the job ended in $took s (exit $rc)"

# 3. Resume on one host (1 server + 2 workers), then evaluate on 2 hosts and on one.
"${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=checkpoint.dir=k \
  --set=train.epochs=4 --resume >r.log 2>&1 || { tail r.log; echo "FAIL: resume on one host"; exit 1; }
grep -q "resumed from" r.log || { echo "FAIL: did not resume"; exit 1; }
metrics() { grep -o 'test auc=.* samples=[0-9]*' "$1"; }
"${MPIRUN[@]}" "${NET[@]}" -np 4 --map-by node "$BIN" eval --config=job.pbtxt --servers=2 \
  --set=checkpoint.dir=k >e2.log 2>&1
"${MPIRUN[@]}" -np 4 "$BIN" eval --config=job.pbtxt --servers=2 --set=checkpoint.dir=k >e1.log 2>&1
[ -n "$(metrics e2.log)" ] && [ "$(metrics e2.log)" = "$(metrics e1.log)" ] ||
  { echo "FAIL: evaluation differs: 2 hosts '$(metrics e2.log)', 1 host '$(metrics e1.log)'"; exit 1; }
echo "resumed on one host to $(cat k/LATEST); evaluation on 2 hosts = 1 host: $(metrics e2.log)"
bash "$CLUSTER" down >/dev/null
trap - EXIT
