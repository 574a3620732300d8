#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""N loopback connections in the caller's network namespace, for the gate
tests.  Prints {"pid", "server": [fds]} on one line (the clients are in
a child process), then
takes commands on stdin, answering each with one line:

  send      each client sends b'x'
  unacked   how many clients have data the server side has not ACKed
  verify    each server reads the b'x' (within 10 s: retransmitted once
            the gate opens), echoes b'y', its client reads it -> "ok N"
  isolate / release
            tcpcp_gate_close_fds / tcpcp_gate_open_fds on all server fds
            through ctypes (the library's batch API) -> "ok" or the error
  isolate-ends SECS / release-ends
            tcpcp_gate_close_ends / tcpcp_gate_open_ends: the same by
            4-tuple (struct tcpcp_ends), through a socket that is none of
            the connections; release-ends answers "ok CALLS", how often
            its @opened callback ran
  entries   tcpcp_gate_entries(-1)
  keep SECS tcpcp_gate_keep(-1, SECS) -> "ok" or the error

    holder.py N [--v6] [--lib PATH/libtcpcp.so]
"""
import ctypes
import json
import os
import resource
import select
import socket
import struct
import sys
import time

TCP_INFO = 11


def unacked(s):
    # struct tcp_info: tcpi_unacked is the 5th u32 after 8 u8s.
    info = s.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104)
    return struct.unpack_from('I', info, 8 + 4 * 4)[0]


def poll_all(socks, timeout):
    """Wait until each of @socks is readable; the ones that never were."""
    pending = {s.fileno(): s for s in socks}
    poll = select.poll()
    for fd in pending:
        poll.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poll.poll(500):
            poll.unregister(fd)
            yield pending.pop(fd)
    for s in pending.values():
        yield None


def sockaddr(fam, addr):
    """struct sockaddr_storage (128 bytes) for a Python socket address."""
    if fam == socket.AF_INET:
        raw = struct.pack('=H', fam) + struct.pack('>H', addr[1]) + socket.inet_aton(addr[0])
    else:
        raw = (struct.pack('=H', fam) + struct.pack('>HI', addr[1], 0) +
               socket.inet_pton(fam, addr[0]) + struct.pack('=I', 0))
    return raw.ljust(128, b'\0')


def ends_array(socks):
    """struct tcpcp_ends[n]: local, then peer, as sockaddr_storage."""
    raw = b''.join(sockaddr(s.family, s.getsockname()) + sockaddr(s.family, s.getpeername())
                   for s in socks)
    return ctypes.create_string_buffer(raw, len(raw))


def client_side(fam, addr, n, cmds, answers):
    """The clients live in a child process: both ends of 10,000
    connections would pass the file limit of one."""
    clients = [socket.create_connection(addr[:2]) for _ in range(n)]
    out = os.fdopen(answers, 'w')
    for line in os.fdopen(cmds):
        cmd = line.strip()
        if cmd == 'send':
            for c in clients:
                c.send(b'x')
            out.write('ok\n')
        elif cmd == 'unacked':
            out.write(f'{sum(1 for c in clients if unacked(c))}\n')
        elif cmd == 'echo':
            got = sum(1 for c in poll_all(clients, 120) if c is not None and c.recv(1) == b'y')
            out.write(f'{got}\n')
        out.flush()
    os._exit(0)


def main():
    n = int(sys.argv[1])
    v6 = '--v6' in sys.argv
    lib = None
    if '--lib' in sys.argv:
        lib = ctypes.CDLL(sys.argv[sys.argv.index('--lib') + 1], use_errno=True)
        lib.tcpcp_strerror.restype = ctypes.c_char_p
        lib.tcpcp_gate_entries.restype = ctypes.c_long
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, n + 100)), hard))
    fam, host = (socket.AF_INET6, '::1') if v6 else (socket.AF_INET, '127.0.0.1')
    lst = socket.socket(fam, socket.SOCK_STREAM)
    lst.bind((host, 0))
    lst.listen(4096)
    addr = lst.getsockname()
    lst.settimeout(60)      # a dead child must not hang the test
    cmd_r, cmd_w = os.pipe()
    ans_r, ans_w = os.pipe()
    child = os.fork()
    if child == 0:
        lst.close()
        os.close(cmd_w)
        os.close(ans_r)
        client_side(fam, addr, n, cmd_r, ans_w)
    os.close(cmd_r)
    os.close(ans_w)
    to_child, from_child = os.fdopen(cmd_w, 'w'), os.fdopen(ans_r)

    def clients(cmd):
        to_child.write(cmd + '\n')
        to_child.flush()
        return from_child.readline().strip()

    servers = [lst.accept()[0] for _ in range(n)]
    lst.close()
    sfds = [s.fileno() for s in servers]
    arr = (ctypes.c_int * n)(*sfds)
    print(json.dumps({'pid': os.getpid(), 'server': sfds}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd in ('send', 'unacked'):
            print(clients(cmd), flush=True)
        elif cmd in ('isolate', 'release'):
            fn = lib.tcpcp_gate_close_fds if cmd == 'isolate' else lib.tcpcp_gate_open_fds
            t = time.monotonic()
            r = fn(arr, ctypes.c_size_t(n))
            us = (time.monotonic() - t) * 1e6
            print(f'ok {us:.0f}' if r == 0 else 'error ' + lib.tcpcp_strerror().decode(),
                  flush=True)
        elif cmd.startswith('isolate-ends') or cmd == 'release-ends':
            other = socket.socket(fam, socket.SOCK_DGRAM)   # names the netns only
            ends = ends_array(servers)
            calls = []
            cb = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(lambda arg: calls.append(arg))
            if cmd == 'release-ends':
                r = lib.tcpcp_gate_open_ends(other.fileno(), ends, ctypes.c_size_t(n), cb, None)
            else:
                secs = int(cmd.split()[1])
                r = lib.tcpcp_gate_close_ends(other.fileno(), ends, ctypes.c_size_t(n),
                                              ctypes.c_uint(secs))
            other.close()
            print(f'ok {len(calls)}' if r == 0 else 'error ' + lib.tcpcp_strerror().decode(),
                  flush=True)
        elif cmd.startswith('keep '):
            r = lib.tcpcp_gate_keep(-1, ctypes.c_uint(int(cmd.split()[1])))
            print('ok' if r == 0 else 'error ' + lib.tcpcp_strerror().decode(), flush=True)
        elif cmd == 'entries':
            print(lib.tcpcp_gate_entries(-1), flush=True)
        elif cmd == 'verify':
            good = 0
            for s in poll_all(servers, 120):
                if s is not None and s.recv(1) == b'x':
                    s.send(b'y')
                    good += 1
            echoed = int(clients('echo'))
            print(f'ok {min(good, echoed)}' if good == echoed == n else
                  f'{good} delivered, {echoed} echoed of {n}', flush=True)
        else:
            print('unknown command', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
