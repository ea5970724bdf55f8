#!/usr/bin/env bash
# The results table of docs/models.md: every CTR model (Base, DIN, DIEN, BST) and DIN with each
# block of model.blocks, on MovieLens-100K (launch/*_ml100k.pbtxt's budget) and on the synthetic
# set (launch/*_synthetic.pbtxt's), SEEDS seeds (train.seed 1..SEEDS), one process with THREADS
# threads, one run at a time. Prints a line per run, then the markdown table: test AUC mean +- std
# over the seeds and the median train_samples_per_s.
#
#   bash bench/ctr_models_table.sh [build dir]
#
# Environment: SEEDS (3), THREADS (2), SETS ("ml100k synthetic"), ONLY (a regex of row names to
# run; default all), ML100K (../shared/data/ml-100k), LOGS (bench-logs/ctr_models_table).
# POSO reads the activity bucket (`attnps prepare --activity_buckets=8`), also given to the MLP
# as a feature: its row compares with "DIN + activity feature" (the same data without the gate).
# About 25 minutes for ml100k and 50 for synthetic at SEEDS=3 on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(cd "${1:-$ROOT/build}" && pwd)/attnps"
SEEDS="${SEEDS:-3}"
THREADS="${THREADS:-2}"
SETS="${SETS:-ml100k synthetic}"
ONLY="${ONLY:-.}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
LOGS="${LOGS:-$ROOT/bench-logs/ctr_models_table}"
cd "$ROOT"
mkdir -p "$LOGS"

prepare() {  # set -> the data directories (plain and with the activity column)
  case "$1" in
    ml100k)
      [ -f "$ML100K/ml-100k.inter" ] || { echo "no MovieLens-100K in $ML100K" >&2; exit 1; }
      local raw=(--format=movielens --input="$ML100K/ml-100k.inter" --items="$ML100K/ml-100k.item")
      "$BIN" prepare "${raw[@]}" --out=data/ml-100k >/dev/null
      "$BIN" prepare "${raw[@]}" --activity_buckets=8 --out=data/ml-100k-act >/dev/null ;;
    synthetic)
      "$BIN" prepare --format=synthetic --users=6000 --out=data/synthetic >/dev/null
      "$BIN" prepare --format=synthetic --users=6000 --activity_buckets=8 \
        --out=data/synthetic-act >/dev/null ;;
  esac
}

# name | config stem | --set overrides, separated by ';' 
ROWS=(
  "Base|base|"
  "DIN|din|"
  "DIEN|dien|"
  "BST|bst|"
  "DIN + additive scorer|din|model.blocks=scorer { kind: ADDITIVE }"
  "DIN + scaled dot-product scorer|din|model.blocks=scorer { kind: SCALED_DOT_PRODUCT }"
  "DIN + multi-head scorer (2 heads)|din|model.blocks=scorer { kind: MULTI_HEAD heads: 2 }"
  "DIN + SENet (r = 3)|din|model.blocks=senet { reduction_ratio: 3 }"
  "DIN + AFM (A = 16)|din|model.blocks=afm { attention_size: 16 }"
  "DIN + LHUC|din|model.blocks=lhuc { }"
  "DIN + activity feature|din_poso|model.blocks="
  "DIN + activity feature + POSO|din_poso|"
)

for set in $SETS; do
  prepare "$set"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r name stem sets <<<"$row"
    [[ "$name" =~ $ONLY ]] || continue
    cfg="launch/${stem}_${set}.pbtxt"
    [ -f "$cfg" ] || { echo "== $set: no $cfg, skipping $name" >&2; continue; }
    extra=()
    IFS=';' read -r -a overrides <<<"$sets"
    for s in "${overrides[@]}"; do [ -z "$s" ] || extra+=(--set="$s"); done
    for seed in $(seq "$SEEDS"); do
      log="$LOGS/${set}__${name//[^A-Za-z0-9]/_}__s$seed.log"
      echo "$name" >"${log%.log}.name"
      "$BIN" train --config="$cfg" --set=train.threads="$THREADS" --set=checkpoint.dir= \
        --set=checkpoint.every_steps=0 \
        --set=train.progress_seconds=1000 --set=train.eval_every_steps=0 --set=train.seed="$seed" \
        "${extra[@]}" >"$log" 2>&1 || { tail -5 "$log" >&2; exit 1; }
      echo "$set | $name | seed $seed | $(grep -o ' auc=[0-9.]*' "$log" | tail -1)" \
        "$(grep -o 'train_samples_per_s=[0-9.]*' "$log" | tail -1)"
    done
  done
done

python3 - "$LOGS" "$SETS" <<'PY'
import glob, os, re, statistics, sys
logs, sets = sys.argv[1], sys.argv[2].split()
def last(text, key):
    found = re.findall(r"(?:^|[ \t])" + key + r"=([0-9.]+)", text, re.M)
    return float(found[-1]) if found else None
rows = {}
for path in sorted(glob.glob(f"{logs}/*__*__s*.log")):
    set_ = os.path.basename(path).split("__")[0]
    name = open(path[:-len(".log")] + ".name").read().strip()
    text = open(path).read()
    auc, sps = last(text, "auc"), last(text, "train_samples_per_s")
    if auc is not None:
        rows.setdefault((set_, name), []).append((auc, sps))
print("| set | model | test AUC (mean +- std) | per seed | samples/s (median) |")
print("| --- | --- | --- | --- | --- |")
for (set_, name), runs in rows.items():
    if set_ not in sets: continue
    aucs = [a for a, _ in runs]
    sd = statistics.stdev(aucs) if len(aucs) > 1 else 0.0
    print(f"| {set_} | {name} | {statistics.mean(aucs):.4f} +- {sd:.4f} | "
          f"{' '.join(f'{a:.4f}' for a in aucs)} | {statistics.median(s for _, s in runs):,.0f} |")
PY
