# SPDX-License-Identifier: GPL-2.0-or-later
"""A destination that speaks the pass protocol but misbehaves on purpose,
to test the origin's side of the edge cases (docs/pass.md):

  badmac       answers the offer with CREATED under a corrupted tag
  unconfirmed  answers CREATED (without creating anything) and closes the
               control connection when told to activate

Run as a script: fakepass.py MODE ADDR PORT KEYFILE.  It prints one line
per message it handled and exits after one session.
"""
import hashlib
import hmac
import os
import socket
import struct
import sys

MAC_LABEL = b'tcpcp-pass-2\0'
LEN_LABEL = b'tcpcp-pass-2-length\0'
SESSION_LABEL = b'tcpcp-pass-session-1\0'
ORIGIN, DEST = 0, 1
HELLO, WELCOME, OFFER, CREATED, ACTIVATE, ACTIVE, ABORT = range(1, 8)


def varint(n):
    out = b''
    while True:
        b, n = n & 0x7f, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def encode(kind, **fields):
    out = b'\x08' + varint(kind)
    for num, name in ((2, 'nonce_origin'), (3, 'nonce_dest')):
        if name in fields:
            out += bytes([num << 3 | 2]) + varint(len(fields[name])) + fields[name]
    return out


def decode(body):
    fields, i = {}, 0
    while i < len(body):
        key = body[i]
        i += 1
        num, wt = key >> 3, key & 7
        n = shift = 0
        while True:
            b = body[i]
            i += 1
            n |= (b & 0x7f) << shift
            shift += 7
            if not b & 0x80:
                break
        if wt == 0:
            fields[num] = n
        else:
            fields[num] = body[i:i + n]
            i += n
    return fields


class Session:
    def __init__(self, conn, key):
        self.c, self.key, self.tx, self.rx = conn, key, 0, 0

    def tag(self, role, seq, hdr, body=None):
        """The body's tag, or without a body the length's."""
        label, rest = (LEN_LABEL, b'') if body is None else (MAC_LABEL, body)
        return hmac.new(self.key, label + bytes([role]) + struct.pack('>Q', seq) + hdr + rest,
                        hashlib.sha256).digest()

    def send(self, body, corrupt=False):
        hdr = struct.pack('>I', len(body))
        t = bytearray(self.tag(DEST, self.tx, hdr, body))
        if corrupt:
            t[0] ^= 1
        self.c.sendall(hdr + self.tag(DEST, self.tx, hdr) + body + bytes(t))
        self.tx += 1

    def recv(self):
        def full(n):
            b = b''
            while len(b) < n:
                chunk = self.c.recv(n - len(b))
                if not chunk:
                    raise EOFError
                b += chunk
            return b
        hdr = full(4)
        assert hmac.compare_digest(full(32), self.tag(ORIGIN, self.rx, hdr)), 'bad length tag'
        body = full(struct.unpack('>I', hdr)[0])
        t = full(32)
        assert hmac.compare_digest(t, self.tag(ORIGIN, self.rx, hdr, body)), 'bad tag'
        self.rx += 1
        return decode(body)


def main(mode, addr, port, keyfile):
    key = bytes.fromhex(open(keyfile).read().strip())
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, int(port)))
    ls.listen(1)
    print('listening', flush=True)
    conn, _ = ls.accept()
    s = Session(conn, key)
    hello = s.recv()
    n_o, n_d = hello[2], os.urandom(32)
    s.send(encode(WELCOME, nonce_origin=n_o, nonce_dest=n_d))
    s.key = hmac.new(key, SESSION_LABEL + n_o + n_d, hashlib.sha256).digest()
    offer = s.recv()
    print('offer', len(offer.get(4, b'')), flush=True)
    s.send(encode(CREATED), corrupt=(mode == 'badmac'))
    try:
        msg = s.recv()
        print('got', msg[1], flush=True)
    except EOFError:
        print('eof', flush=True)
    conn.close()


if __name__ == '__main__':
    main(*sys.argv[1:])
