#!/usr/bin/env bash
# DIN against Base (sum pooling) on the synthetic data set, same data, same budget (one epoch,
# same tables, optimizers and MLP). Prints both test AUCs, then `din_minus_base=<AUC gap>` last.
#
#   bash bench/din_vs_base.sh        (after bash launch/setup.sh build; USERS=6000 by default)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ATTNPS_BUILD_DIR:-$ROOT/build}/attnps"
cd "$ROOT"
"$BIN" prepare --format=synthetic --users="${USERS:-6000}" --out=data/synthetic >/dev/null
declare -A auc
for model in din base; do
  out=$("$BIN" train --config=launch/${model}_synthetic.pbtxt --set=train.epochs=1 \
    --set=train.eval_every_steps=0 --set=checkpoint.dir=ckpt/din_vs_base/$model \
    --set=checkpoint.every_steps=0 --set=checkpoint.save_at_end=false)
  auc[$model]=$(grep -o 'test auc=[0-9.]*' <<<"$out" | tail -1 | cut -d= -f2)
  echo "$model: test_auc=${auc[$model]} $(grep -o 'train_samples_per_s=[0-9]*' <<<"$out")"
done
python3 -c "import sys; print(f'din_minus_base={float(sys.argv[1]) - float(sys.argv[2]):.4f}')" \
  "${auc[din]}" "${auc[base]}"
