#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A plain HTTP/1.0 server that sends one file at a fixed rate: the peer
of a container's own download (busybox wget has no rate limit).

    slow_http.py ADDRESS PORT FILE RATE_BYTES_PER_S READY_FILE
"""
import socket
import sys
import time


def main():
    addr, port, path, rate, ready = sys.argv[1:6]
    rate = int(rate)
    data = open(path, 'rb').read()
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(4)
    open(ready, 'w').close()
    c, _ = ls.accept()
    req = b''
    while b'\r\n\r\n' not in req:
        got = c.recv(4096)
        if not got:
            return 1
        req += got
    c.sendall(b'HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n' % len(data))
    chunk, t0, sent = 16384, time.monotonic(), 0
    while sent < len(data):
        c.sendall(data[sent:sent + chunk])
        sent += min(chunk, len(data) - sent)
        ahead = sent / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    c.shutdown(socket.SHUT_WR)
    c.recv(1)           # the client's close
    c.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
