#!/usr/bin/env bash
# An emulated cluster on one machine: N network namespaces are the hosts, veth links into one
# bridge are the network (each link's bandwidth limited by tc tbf in both directions), and an
# rsh agent lets mpirun start its daemons inside the namespace of the host it names.
#
#   bash launch/emulated_cluster.sh up N [--rate=1gbit]   hosts aps-host1..N at 10.77.0.1..N
#   bash launch/emulated_cluster.sh down                  removes every host, link, process
#   bash launch/emulated_cluster.sh status
#
# `up` first takes down what an earlier `up` left (idempotent). It writes the hostfile
# $STATE/hostfile (one line per host, slots=2) and the host names into /etc/hosts between marker
# lines. Then, e.g.:
#   mpirun --hostfile /run/attnps-cluster/hostfile --mca plm_rsh_agent "$PWD/launch/emulated_rsh" \
#     --mca oob_tcp_if_include 10.77.0.0/24 --mca btl_tcp_if_include 10.77.0.0/24 \
#     --mca btl tcp,self --mca routed direct ...
# (launch/emulated_rsh HOST CMD... runs CMD in HOST's namespace). The machine itself is
# 10.77.0.254 on the bridge (mpirun's own daemon runs there). Root only. docs/multinode.md.
set -euo pipefail

STATE=/run/attnps-cluster
BRIDGE=apsbr0
SUBNET=10.77.0
MARK="# attnps emulated cluster"

die() { echo "emulated_cluster: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (it creates network namespaces, links and /etc/hosts entries)"
command -v ip >/dev/null && command -v tc >/dev/null || die "needs iproute2 (ip, tc): apt-get install -y iproute2"

hosts() { ip netns list 2>/dev/null | awk '{print $1}' | grep '^aps-host[0-9]*$' || true; }

down() {
  for h in $(hosts); do
    for pid in $(ip netns pids "$h" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$h"
  done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^aps-h[0-9]*$' || true); do
    ip link delete "$l" 2>/dev/null || true
  done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"
  if grep -q "$MARK" /etc/hosts 2>/dev/null; then
    grep -v "$MARK" /etc/hosts >/etc/hosts.attnps.tmp && cat /etc/hosts.attnps.tmp >/etc/hosts
    rm -f /etc/hosts.attnps.tmp
  fi
  rm -rf "$STATE"
}

# limit DEV RATE: a token bucket on DEV's egress (each veth end limits its own direction).
limit() { tc qdisc replace dev "$1" root tbf rate "$2" burst 256kbit latency 50ms; }

up() {
  local n="$1" rate="$2"
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up N: N must be 1..200, got '$n'"
  down
  mkdir -p "$STATE"
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.254/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  : >"$STATE/hostfile"
  for i in $(seq 1 "$n"); do
    local h="aps-host$i" outer="aps-h$i"
    ip netns add "$h"
    ip link add "$outer" type veth peer name eth0 netns "$h"
    ip link set "$outer" master "$BRIDGE" up
    ip -n "$h" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    limit "$outer" "$rate"
    ip netns exec "$h" tc qdisc replace dev eth0 root tbf rate "$rate" burst 256kbit latency 50ms
    echo "$SUBNET.$i $h $MARK" >>/etc/hosts
    echo "$h slots=2" >>"$STATE/hostfile"
  done
  echo "$SUBNET.254 aps-gateway $MARK" >>/etc/hosts
  echo "$n $rate" >"$STATE/cluster"
  echo "emulated_cluster: $n host(s) aps-host1..$n on $SUBNET.0/24 at $rate per link; hostfile $STATE/hostfile"
}

status() {
  local hs; hs=$(hosts)
  if [ -z "$hs" ]; then echo "emulated_cluster: down"; return; fi
  echo "emulated_cluster: up ($(cat "$STATE/cluster" 2>/dev/null || echo '? ?'): hosts rate)"
  for h in $hs; do
    echo "  $h $(ip -n "$h" -o -4 addr show dev eth0 | awk '{print $4}') processes: $(ip netns pids "$h" | wc -l)"
  done
}

case "${1:-}" in
  up)
    n="${2:-}"; rate=1gbit
    for a in "${@:3}"; do
      case "$a" in --rate=*) rate="${a#--rate=}" ;; *) die "unknown flag $a" ;; esac
    done
    [[ "$rate" =~ ^[0-9]+(\.[0-9]+)?([kmg]?bit)$ ]] || die "--rate must look like 200mbit or 1gbit, got '$rate'"
    up "$n" "$rate" ;;
  down) down; echo "emulated_cluster: down" ;;
  status) status ;;
  *) die "usage: $0 up N [--rate=1gbit] | down | status" ;;
esac
