#!/usr/bin/env bash
# DIN: attnps against the PyTorch reference (../shared/peers/din_torch.py), speed and quality, one
# process with 2 threads each, one epoch, in the same run, over seeds 1..$SEEDS, on three data sets,
# both sides training and testing on the very same prepared files (`din_torch.py --samples`):
#   - ml100k: MovieLens-100K (long histories, hundreds per user; test split 1,886 rows);
#   - short:  the synthetic generator's short histories (geometric user lengths: median history 5,
#             max 50, like Amazon's or Taobao's);
#   - wiki:   the Wikipedia edit log (../shared/data/wikipedia, short real histories).
# The peer runs twice per seed: as shipped (dense Adam over the whole tables, torch's default
# N(0, 1) embedding init) and with --tuned (sparse embeddings, lazy SparseAdam, N(0, 0.01) init:
# what a competent PyTorch user ships, and attnps's config).
# Both sides run the right BLAS kernels for this CPU: attnps sets OPENBLAS_CORETYPE itself when
# the library detected a lower core (ops/cpu_kernels.h), and the peer, which calls the system
# BLAS through PyTorch, gets the same setting, and the same OpenMP spin count (GOMP_SPINCOUNT).
# Each side's kernel core is printed.
#
#   bash bench/din_vs_torch.sh            (after bash launch/setup.sh build; about 12 minutes)
#   SEEDS=1 DATASETS="ml100k short" bash bench/din_vs_torch.sh
#
# Prints per data set each side's test AUC and GAUC as mean +- std over the seeds (and per seed)
# and median training samples/s, the difference of the means against the tuned peer, then
# `din_vs_torch<_set>=<attnps / shipped peer median samples per second>` (no suffix for ml100k)
# and `..._tuned=<attnps / tuned peer>`. Needs Debian's python3-torch and python3-sklearn
# (installed here when missing) and the data in $ML100K (default ../shared/data/ml-100k) and
# $WIKI (default ../shared/data/wikipedia).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTNPS_BUILD_DIR:-$ROOT/build}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
WIKI="${WIKI:-$ROOT/../shared/data/wikipedia}"
PEER="${PEER:-$ROOT/../shared/peers/din_torch.py}"
THREADS="${THREADS:-2}"
SEEDS="${SEEDS:-3}"
DATASETS="${DATASETS:-ml100k short wiki}"
LOGS=runs/din_vs_torch
cd "$ROOT"
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log

if ! /usr/bin/python3 -c "import torch, sklearn" 2>/dev/null; then
  echo "== installing python3-torch python3-sklearn (the reference's dependencies)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-torch python3-sklearn >/dev/null
fi

prepare() {  # prepare <set>: writes data/<dir of set>
  case $1 in
    ml100k)
      [ -f "$ML100K/ml-100k.inter" ] || { echo "no MovieLens-100K in $ML100K (set ML100K=...)" >&2; exit 1; }
      "$BUILD/attnps" prepare --format=movielens --input="$ML100K/ml-100k.inter" \
        --items="$ML100K/ml-100k.item" --out=data/ml-100k >/dev/null ;;
    short)
      "$BUILD/attnps" prepare --format=synthetic --users=20000 --items=20000 --clusters=200 \
        --events_per_user=9 --lengths=geometric --out=data/short >/dev/null ;;
    wiki)
      [ -f "$WIKI/wikipedia.txt" ] || { echo "no wikipedia.txt in $WIKI (set WIKI=...)" >&2; exit 1; }
      "$BUILD/attnps" prepare --format=sasrec --input="$WIKI/wikipedia.txt" --out=data/wiki >/dev/null ;;
    *) echo "unknown data set $1 (ml100k, short, wiki)" >&2; exit 1 ;;
  esac
}
dir_of() { case $1 in ml100k) echo data/ml-100k ;; *) echo "data/$1" ;; esac; }

train_ours() {  # train_ours <set> <seed>
  local dir cates=()
  dir=$(dir_of "$1")
  [ "$1" = ml100k ] || cates=(--set=data.item_cates_path=)  # categories from the files' columns
  "$BUILD/attnps" train --config=launch/din_ml100k.pbtxt --set=train.threads="$THREADS" \
    --set=train.progress_seconds=1000 --set=checkpoint.dir= --metrics_out="$LOGS/metrics.jsonl" \
    --set=data.train_path="$dir/train.tsv" --set=data.test_path="$dir/test.tsv" "${cates[@]}" \
    --set=train.seed="$2" > "$LOGS/$1_attnps_s$2.log" 2>&1 ||
    { cat "$LOGS/$1_attnps_s$2.log" >&2; exit 1; }
}
PEER_ENV=(env OMP_NUM_THREADS="$THREADS")
train_peer() {  # train_peer <set> <seed> <torch|torch_tuned>
  local tuned=()
  [ "$3" = torch ] || tuned=(--tuned)
  "${PEER_ENV[@]}" /usr/bin/python3 "$PEER" --samples "$(dir_of "$1")" --threads "$THREADS" \
    --epochs 1 --seed "$2" "${tuned[@]}" > "$LOGS/$1_$3_s$2.log" 2>&1 ||
    { cat "$LOGS/$1_$3_s$2.log" >&2; exit 1; }
}

first=1
for set in $DATASETS; do
  prepare "$set"
  for seed in $(seq "$SEEDS"); do
    echo "== $set seed $seed: attnps, torch, torch --tuned" >&2
    train_ours "$set" "$seed"
    if [ "$first" = 1 ]; then  # the peer gets the core and spin count attnps ran with
      log="$LOGS/${set}_attnps_s$seed.log"
      core=$(grep -o 'OPENBLAS_CORETYPE=[A-Za-z0-9]* set by attnps' "$log" | cut -d= -f2 |
        cut -d' ' -f1 || true)
      [ -z "$core" ] || PEER_ENV+=(OPENBLAS_CORETYPE="$core")
      spin=$(grep -o 'GOMP_SPINCOUNT=[0-9]* set by attnps' "$log" | cut -d= -f2 | cut -d' ' -f1 ||
        true)
      [ -z "$spin" ] || PEER_ENV+=(GOMP_SPINCOUNT="$spin")
      our_core=$(grep -o 'BLAS kernels [A-Za-z0-9]*' "$log" | head -1 | cut -d' ' -f3)
      peer_core=$("${PEER_ENV[@]}" /usr/bin/python3 bench/blas_core.py)
      echo "== BLAS: attnps core=$our_core; torch $peer_core; peer env: ${PEER_ENV[*]:1}" >&2
      first=0
    fi
    train_peer "$set" "$seed" torch
    train_peer "$set" "$seed" torch_tuned
  done
done

python3 - "$LOGS" "$our_core" "$peer_core" $DATASETS <<'PY'
import re, statistics, sys
logs, our_core, peer_core, sets = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
import glob
def last(path, key):
    found = re.findall(r"(?:^|[ \t])" + key + r"=([0-9.]+)", open(path).read(), re.M)
    return float(found[-1])
KEYS = {"attnps": ("auc", "gauc"), "torch": ("test_auc", "test_gauc"),
        "torch_tuned": ("test_auc", "test_gauc")}
def side(s, who):
    paths = sorted(glob.glob(f"{logs}/{s}_{who}_s*.log"))
    auc, gauc = KEYS[who]
    return ([last(p, auc) for p in paths], [last(p, gauc) for p in paths],
            statistics.median(last(p, "train_samples_per_s") for p in paths))
def ms(v):
    return f"{statistics.mean(v):.4f} +- {statistics.stdev(v) if len(v) > 1 else 0:.4f}"
print(f"blas: attnps core={our_core}; {peer_core}")
for s in sets:
    got = {who: side(s, who) for who in KEYS}
    for who, (auc, gauc, sps) in got.items():
        print(f"{s}: {who:<11} test_auc={ms(auc)} test_gauc={ms(gauc)} "
              f"median_samples_per_s={sps:.0f}  per seed: {' '.join(f'{a:.4f}' for a in auc)}")
    mean = lambda who: statistics.mean(got[who][0])
    print(f"{s}: auc_minus_torch_tuned={mean('attnps') - mean('torch_tuned'):+.4f} "
          f"auc_minus_torch={mean('attnps') - mean('torch'):+.4f} (means over {len(got['attnps'][0])} seeds)")
for s in sets:
    suffix = "" if s == "ml100k" else "_" + s
    print(f"din_vs_torch{suffix}={side(s, 'attnps')[2] / side(s, 'torch')[2]:.2f} "
          f"din_vs_torch{suffix}_tuned={side(s, 'attnps')[2] / side(s, 'torch_tuned')[2]:.2f}")
PY
