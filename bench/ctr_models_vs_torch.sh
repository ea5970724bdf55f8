#!/usr/bin/env bash
# The CTR sequence models against their PyTorch twins (bench/ctr_models_torch.py) on
# MovieLens-100K: each model trained once per seed with attnps and once with its twin, one process
# with 2 threads each, one epoch, in the same run, both on the very same prepared files (the twin
# reads attnps's train.tsv, test.tsv and item_cates.tsv). The sides run one after the other, never
# at the same time, on the same BLAS kernels: the twin gets the OPENBLAS_CORETYPE and
# GOMP_SPINCOUNT attnps set for itself, and each side's kernel core is printed.
#
#   bash bench/ctr_models_vs_torch.sh                (after bash launch/setup.sh build)
#   MODELS=dien SEEDS=3 bash bench/ctr_models_vs_torch.sh
#
# Prints per model each side's test AUC (mean +- std over the seeds, and per seed) and median
# training samples/s, then `<model>_vs_torch=<attnps / twin median samples per second>`.
# Models: dien (launch/dien_ml100k.pbtxt; the twin gets the config's evolution, query_projection
# and aux_loss_weight)
# and bst (launch/bst_ml100k.pbtxt; the twin gets its blocks, heads, ffn_hidden, dropout and
# target_attention).
set -euo pipefail

# The value of `field:` in config $1 (first match), or $3 when absent.
setting() { grep -o "^ *$2: *[A-Za-z0-9.e_-]*" "$1" | head -1 | sed 's/.*: *//' || true; }

# The twin's flags for model $1, read off its attnps config.
twin_args() {
  local cfg="launch/$1_ml100k.pbtxt" v
  case "$1" in
    dien)
      v=$(setting "$cfg" evolution); echo -n "--evolution $(echo "${v:-AUGRU}" | tr A-Z a-z) "
      v=$(setting "$cfg" query_projection); [ "${v:-true}" = true ] && echo -n "--query-projection on " ||
        echo -n "--query-projection off "
      v=$(setting "$cfg" aux_loss_weight); echo "--alpha ${v:-1}" ;;
    bst)
      v=$(setting "$cfg" blocks); echo -n "--blocks ${v:-1} "
      v=$(setting "$cfg" heads); echo -n "--heads ${v:-2} "
      v=$(setting "$cfg" ffn_hidden); echo -n "--ffn ${v:-0} "
      v=$(setting "$cfg" dropout); echo -n "--dropout ${v:-0.1} "
      case "$(setting "$cfg" target_attention)" in
        SCALED_DOT_PRODUCT) echo "--target sdp" ;; NONE) echo "--target none" ;; *) echo "--target din" ;;
      esac ;;
  esac
}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTNPS_BUILD_DIR:-$ROOT/build}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
THREADS="${THREADS:-2}"
SEEDS="${SEEDS:-1}"
MODELS="${MODELS:-dien bst}"
LOGS=runs/ctr_models_vs_torch
cd "$ROOT"
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log

if ! /usr/bin/python3 -c "import torch, sklearn" 2>/dev/null; then
  echo "== installing python3-torch python3-sklearn (the twins' dependencies)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-torch python3-sklearn >/dev/null
fi
[ -f "$ML100K/ml-100k.inter" ] || { echo "no MovieLens-100K in $ML100K (set ML100K=...)" >&2; exit 1; }
"$BUILD/attnps" prepare --format=movielens --input="$ML100K/ml-100k.inter" \
  --items="$ML100K/ml-100k.item" --out=data/ml-100k >/dev/null

for model in $MODELS; do
  [ -f "launch/${model}_ml100k.pbtxt" ] || { echo "unknown model $model" >&2; exit 1; }
  for seed in $(seq "$SEEDS"); do
    echo "== $model seed $seed: attnps, then its twin" >&2
    log="$LOGS/${model}_attnps_s$seed.log"
    "$BUILD/attnps" train --config="launch/${model}_ml100k.pbtxt" --set=train.threads="$THREADS" \
      --set=train.progress_seconds=1000 --set=checkpoint.dir= --metrics_out="$LOGS/metrics.jsonl" \
      --set=train.seed="$seed" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    core=$(grep -o 'OPENBLAS_CORETYPE=[A-Za-z0-9]* set by attnps' "$log" | cut -d= -f2 |
      cut -d' ' -f1 || true)
    spin=$(grep -o 'GOMP_SPINCOUNT=[0-9]* set by attnps' "$log" | cut -d= -f2 | cut -d' ' -f1 || true)
    env=(OMP_NUM_THREADS="$THREADS")  # the twin gets the BLAS core and spin count attnps ran with
    [ -z "$core" ] || env+=(OPENBLAS_CORETYPE="$core")
    [ -z "$spin" ] || env+=(GOMP_SPINCOUNT="$spin")
    echo "== twin env: ${env[*]}; torch $(env "${env[@]}" /usr/bin/python3 bench/blas_core.py)" >&2
    read -r -a args <<<"$(twin_args "$model")"
    echo "== twin flags: ${args[*]}" >&2
    log="$LOGS/${model}_torch_s$seed.log"
    env "${env[@]}" /usr/bin/python3 bench/ctr_models_torch.py --model "$model" --samples data/ml-100k \
      --threads "$THREADS" --epochs 1 --seed "$seed" "${args[@]}" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  done
done

python3 - "$LOGS" $MODELS <<'PY'
import glob, re, statistics, sys
logs, models = sys.argv[1], sys.argv[2:]
def last(path, key):
    return float(re.findall(r"(?:^|[ \t])" + key + r"=([0-9.]+)", open(path).read(), re.M)[-1])
def side(m, who, key):
    paths = sorted(glob.glob(f"{logs}/{m}_{who}_s*.log"))
    return ([last(p, key) for p in paths],
            statistics.median(last(p, "train_samples_per_s") for p in paths))
for m in models:
    got = {"attnps": side(m, "attnps", "auc"), "torch": side(m, "torch", "test_auc")}
    for who, (auc, sps) in got.items():
        sd = statistics.stdev(auc) if len(auc) > 1 else 0
        print(f"{m}: {who:<6} test_auc={statistics.mean(auc):.4f} +- {sd:.4f} "
              f"median_samples_per_s={sps:.0f}  per seed: {' '.join(f'{a:.4f}' for a in auc)}")
    print(f"{m}_vs_torch={got['attnps'][1] / got['torch'][1]:.2f}")
PY
