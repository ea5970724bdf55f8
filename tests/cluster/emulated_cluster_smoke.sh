#!/usr/bin/env bash
# The emulated cluster (launch/emulated_cluster.sh) as hosts for mpirun:
#  1. `up 2 --rate=200mbit`: a TCP transfer between the hosts runs at the link rate (+-30%);
#  2. mpirun places ranks on both hosts through the rsh agent, and the PS check
#     (2 servers + 2 workers, one of each per host) passes over TCP between the namespaces;
#  3. `down` leaves no namespace, link, /etc/hosts entry or process behind.
# Exit 77 (ctest: skipped) without root or network namespaces.
#
#   emulated_cluster_smoke.sh <source dir> <ps_mpi_check binary> <mpirun command...>
set -euo pipefail
SRC="$1"; CHECK="$2"; shift 2
MPIRUN=("$@")
source "$SRC/tests/cluster/cluster_lib.sh"
cluster_up 2 200mbit
cluster_up 2 200mbit >/dev/null  # idempotent: again over the running one

# 1. The link rate.
py=$(command -v /usr/bin/python3 || command -v python3)
cat >/tmp/attnps_tcp_rate.py <<'PY'
import socket, sys, time
if sys.argv[1] == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 5999)); s.listen(1); c, _ = s.accept()
    while c.recv(1 << 20): pass
else:
    for _ in range(50):
        try: s = socket.create_connection((sys.argv[2], 5999)); break
        except OSError: time.sleep(0.1)
    data = b"x" * (1 << 20); t = time.time()
    for _ in range(20): s.sendall(data)
    s.close(); print("%.0f" % (20 * 8 * 1.048576 / (time.time() - t)))
PY
ip netns exec aps-host2 "$py" /tmp/attnps_tcp_rate.py serve &
server=$!
mbit=$(ip netns exec aps-host1 "$py" /tmp/attnps_tcp_rate.py send 10.77.0.2)
wait "$server"
[ "$mbit" -ge 140 ] && [ "$mbit" -le 260 ] || { echo "FAIL: $mbit Mbit/s on a 200mbit link"; exit 1; }
echo "link: $mbit Mbit/s on a 200mbit link"

# 2. mpirun across the hosts.
where=$("${MPIRUN[@]}" "${NET[@]}" -np 4 --map-by node bash -c 'ip netns identify' | sort | uniq -c | tr -s ' ')
[ "$(echo "$where" | grep -c 'aps-host')" = 2 ] || { echo "FAIL: ranks not on both hosts: $where"; exit 1; }
"${MPIRUN[@]}" "${NET[@]}" -np 4 --map-by node "$CHECK" --servers=2 2>/dev/null | tail -1
echo "mpirun: ranks on $(echo $where)"

# 3. down leaves nothing.
bash "$CLUSTER" down
trap - EXIT
left=$( (ip netns list | grep aps-; ip -o link | grep -E 'aps-|apsbr'; grep 'attnps emulated' /etc/hosts) || true)
[ -z "$left" ] || { echo "FAIL: left behind: $left"; exit 1; }
echo "down: no namespace, link or hosts entry left"
