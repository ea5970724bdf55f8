# Sourced by the cluster tests after `set -euo pipefail`, with SRC set to the source dir:
# exits 77 (ctest: skipped) without root or network namespaces, brings the emulated cluster up on
# `cluster_up N RATE` and down again on exit, and sets NET, mpirun's flags for its hosts.
CLUSTER="$SRC/launch/emulated_cluster.sh"
if [ "$(id -u)" != 0 ] || ! ip netns add aps-probe 2>/dev/null; then
  echo "SKIP: needs root and network namespaces (ip netns add)"; exit 77
fi
ip netns delete aps-probe
trap 'bash "$CLUSTER" down >/dev/null 2>&1 || true' EXIT
cluster_up() { bash "$CLUSTER" up "$1" --rate="$2"; }
NET=(--hostfile /run/attnps-cluster/hostfile --mca plm_rsh_agent "$SRC/launch/emulated_rsh"
     --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24 --mca btl tcp,self
     --mca routed direct)
