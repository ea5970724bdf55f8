#!/usr/bin/env bash
# DIN's test AUC on MovieLens-100K with and without the user profile (age bucket, gender,
# occupation: three feature slots, launch/din_ml100k_profile.pbtxt) on the very same samples,
# over seeds 1..N, printed as mean +- std.
#
#   bash bench/profile_slots.sh [build dir] [seeds]     (default build/, 3; needs ../shared/data)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(cd "${1:-$ROOT/build}" && pwd)/attnps"
SEEDS="${2:-3}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
[ -f "$ML100K/ml-100k.user" ] || { echo "profile_slots: no MovieLens-100K in $ML100K"; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
"$BIN" prepare --format=movielens --input="$ML100K/ml-100k.inter" --items="$ML100K/ml-100k.item" \
  --users="$ML100K/ml-100k.user" --out=data/ml-100k-users >/dev/null
run() {  # run <name> <config> <seed> [--set ...]: prints the epoch-end test AUC
  local name=$1 config=$2 seed=$3
  shift 3
  "$BIN" train --config="$ROOT/launch/$config" --set=train.seed="$seed" --set=metrics.out_path= \
    --set=checkpoint.dir= --set=train.progress_seconds=1000 "$@" >"$name-$seed.log" 2>&1 ||
    { cat "$name-$seed.log"; exit 1; }
  grep -o 'test auc=[0-9.]*' "$name-$seed.log" | tail -1 | cut -d= -f2
}
with=() without=()
for seed in $(seq 1 "$SEEDS"); do
  with+=("$(run with din_ml100k_profile.pbtxt "$seed")")
  without+=("$(run without din_ml100k.pbtxt "$seed" --set=data.train_path=data/ml-100k-users/train.tsv \
    --set=data.test_path=data/ml-100k-users/test.tsv --set=data.item_cates_path= \
    --set=data.extra_columns=3)")
  echo "seed $seed: with profile auc=${with[-1]}  without auc=${without[-1]}"
done
python3 - "${with[*]}" "${without[*]}" <<'PY'
import statistics, sys
for name, values in (("with profile", sys.argv[1]), ("without", sys.argv[2])):
    v = [float(x) for x in values.split()]
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    print(f"din_ml100k {name}: test auc {statistics.mean(v):.4f} +- {sd:.4f} over {len(v)} seeds")
PY
