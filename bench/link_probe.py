#!/usr/bin/env python3
"""Measures an emulated link the way the cost model needs it: the median round trip of a 1-byte
TCP ping-pong, and the TCP throughput per direction while both directions carry a bulk transfer
at once (training traffic goes both ways). Run inside the namespaces (bench/scaling.sh does):

  link_probe.py serve ADDR PORT            echo / sink server (one connection per mode)
  link_probe.py rtt ADDR PORT              prints the median round trip in microseconds
  link_probe.py send ADDR PORT MEGABYTES   prints the throughput in Mbit/s
"""
import socket
import sys
import time


def serve(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    for _ in range(2):  # one rtt connection, one bulk connection
        c, _ = s.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = c.recv(1)
        while True:
            b = c.recv(1 if mode == b"r" else 1 << 20)
            if not b:
                break
            if mode == b"r":
                c.sendall(b)
        if mode == b"b":
            c.sendall(b"k")
        c.close()


def connect(addr, port, mode):
    c = socket.create_connection((addr, port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.sendall(mode)
    return c


def rtt(addr, port):
    c = connect(addr, port, b"r")
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        c.sendall(b"x")
        c.recv(1)
        times.append(time.perf_counter() - t0)
    c.close()
    times.sort()
    print("%.0f" % (1e6 * times[len(times) // 2]))


def send(addr, port, megabytes):
    c = connect(addr, port, b"b")
    buf = b"x" * (1 << 20)
    t0 = time.perf_counter()
    for _ in range(megabytes):
        c.sendall(buf)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)
    print("%.1f" % (megabytes * 8 * 1.048576 / (time.perf_counter() - t0)))


if __name__ == "__main__":
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "serve":
        serve(addr, port)
    elif mode == "rtt":
        rtt(addr, port)
    else:
        send(addr, port, int(sys.argv[4]))
