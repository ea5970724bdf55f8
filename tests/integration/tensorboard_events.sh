#!/usr/bin/env bash
# A DIN job under mpirun (1 server + 2 workers) with --tensorboard_dir and --metrics_out: the event
# file, read back with the tensorboard package, holds every value of every JSON line (exit 77,
# skipped, where the package is not installed).
#
#   tensorboard_events.sh <attnps binary> <source dir> <work dir> <mpirun command...>
set -euo pipefail
BIN="$1"; SRC="$2"; WORK="$3"; shift 3
MPIRUN=("$@")
python3 -c "import tensorboard" 2>/dev/null ||
  { echo "SKIP: the tensorboard package is not installed (pip install tensorboard)"; exit 77; }
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
"$BIN" prepare --format=synthetic --users=300 --items=1000 --clusters=20 --out=data >/dev/null
cat >job.pbtxt <<CFG
data { train_path: "data/train.tsv" test_path: "data/test.tsv" max_history: 20 }
tables { name: "item" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
tables { name: "cate" dim: 8 optimizer { kind: ADAM learning_rate: 0.01 } }
features { item_table: "item" cate_table: "cate" }
model { mlp { hidden: [16] activation: PRELU } din { attention_hidden: [8, 4] } }
dense_optimizer { kind: ADAM learning_rate: 0.003 }
train { batch_size: 64 epochs: 1 seed: 3 eval_every_steps: 40 progress_seconds: 1000 }
CFG
"${MPIRUN[@]}" -np 3 "$BIN" train --config=job.pbtxt --servers=1 --set=train.max_steps=120 \
  --metrics_out=metrics.jsonl --tensorboard_dir=tb | tee train.log | grep -v "^\[attnps\] step"
ls tb/events.out.tfevents.* >/dev/null
[ "$(wc -l <metrics.jsonl)" -ge 3 ] || { echo "FAIL: $(wc -l <metrics.jsonl) metrics records"; exit 1; }
python3 "$SRC/tests/integration/tensorboard_events.py" tb metrics.jsonl
