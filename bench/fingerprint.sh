#!/usr/bin/env bash
# Behaviour fingerprint: trains launch/din_ml100k.pbtxt and launch/base_ml100k.pbtxt on
# MovieLens-100K (one process, one worker, staleness 0, 1 thread, the configs' seeds) and prints
# the md5 of the final dense state and of every test prediction. A refactor that must not change
# what attnps computes compares these lines with those of the commit before it.
#
#   bash bench/fingerprint.sh [build dir]      (default build/; needs ../shared/data/ml-100k)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(cd "${1:-$ROOT/build}" && pwd)/attnps"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
[ -f "$ML100K/ml-100k.inter" ] || { echo "fingerprint: no MovieLens-100K in $ML100K"; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$BIN" prepare --format=movielens --input="$ML100K/ml-100k.inter" --items="$ML100K/ml-100k.item" \
  --out=data/ml-100k >/dev/null
for model in din base; do
  "$BIN" train --config="$ROOT/launch/${model}_ml100k.pbtxt" --set=train.threads=1 \
    --set=train.staleness=0 --set=checkpoint.dir=ck_$model --set=checkpoint.every_steps=0 \
    --set=checkpoint.save_at_end=true --set=metrics.out_path= --set=train.progress_seconds=1000 \
    >train_$model.log 2>&1 || { cat train_$model.log; exit 1; }
  "$BIN" predict --config="$ROOT/launch/${model}_ml100k.pbtxt" --set=train.threads=1 \
    --set=checkpoint.dir=ck_$model --input=data/ml-100k/test.tsv --output=pred_$model.txt \
    >/dev/null 2>&1
  dense=$(md5sum "ck_$model/$(cat ck_$model/LATEST)/dense.bin" | cut -d' ' -f1)
  pred=$(md5sum pred_$model.txt | cut -d' ' -f1)
  echo "fingerprint ${model}_ml100k: dense=$dense predictions=$pred ($(wc -l <pred_$model.txt) lines)"
done
