#!/usr/bin/env bash
# Feature slots under mpirun 2 servers + 2 workers: two user-profile slots (extra columns 7 and 8
# of the CTR lines, a table each) beside the target and history slots that share the item table;
# trained, then evaluated sharded, and refused with a clear error when the lines lack the columns.
#
#   profile_slots.sh <attnps binary> <work dir> <mpirun command...>
set -euo pipefail
BIN="$1"; WORK="$2"; shift 2
MPIRUN=("$@")
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
"$BIN" prepare --format=synthetic --users=600 --items=3000 --clusters=50 --out=data >/dev/null
# Profile columns derived from the user id: age bucket 1..7, gender 1..2.
for split in train test; do
  awk -F'\t' -v OFS='\t' '{print $0, 1 + $2 % 7, 1 + $2 % 2}' data/$split.tsv >data/$split.profile.tsv
done
cat >job.pbtxt <<CFG
data { train_path: "data/train.profile.tsv" test_path: "data/test.profile.tsv" max_history: 20
       shuffle_buffer: 1000 }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "age" dim: 4 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "gender" dim: 2 optimizer { kind: ADAM learning_rate: 0.01 } }
features {
  slots { name: "target_item" table: "item" column: 3 }
  slots { name: "target_cate" table: "cate" column: 4 }
  slots { name: "hist_items" table: "item" kind: SEQUENCE column: 5 }
  slots { name: "hist_cates" table: "cate" kind: SEQUENCE column: 6 }
  slots { name: "age" table: "age" column: 7 }
  slots { name: "gender" table: "gender" column: 8 }
}
model { mlp { hidden: [32, 16] activation: DICE } din { attention_hidden: [16, 8] } }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 64 epochs: 1 seed: 3 progress_seconds: 2 }
checkpoint { dir: "ckpt" }
CFG
"${MPIRUN[@]}" -np 4 "$BIN" train --config=job.pbtxt --servers=2 | tee train.log
grep -q "trained .* samples" train.log || { echo "FAIL: no training summary"; exit 1; }
"${MPIRUN[@]}" -np 4 "$BIN" eval --config=job.pbtxt --servers=2 | tee eval.log
auc=$(grep -o 'test auc=[0-9.]*' eval.log | cut -d= -f2)
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0.6 else 1)" "$auc" ||
  { echo "FAIL: test AUC $auc after training"; exit 1; }
# The epoch-end evaluation of the training job saw the weights of the checkpoint it wrote (every
# push applied, the workers' Dice statistics averaged): the eval job's AUC, to the 4 digits printed.
train_auc=$(grep -o 'step [0-9]*: test auc=[0-9.]*' train.log | tail -1 | cut -d= -f2)
python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 6e-5 else 1)" \
  "$train_auc" "$auc" || { echo "FAIL: epoch-end test auc $train_auc, eval of its checkpoint $auc"; exit 1; }
# The same config on the 6-field files: every line lacks the profile columns.
set +e
"${MPIRUN[@]}" -np 4 "$BIN" train --config=job.pbtxt --servers=2 --overwrite \
  --set=data.train_path=data/train.tsv >short.log 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || { echo "FAIL: 6-field lines accepted by a config reading column 8"; exit 1; }
grep -q "data/train.tsv:1: expected 8 tab-separated fields, got 6" short.log ||
  { echo "FAIL: the error does not name the file, line and field count:"; cat short.log; exit 1; }
echo "mpirun 2+2 with profile slots age, gender (and item shared by target and history): test auc=$auc"
