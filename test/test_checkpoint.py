# SPDX-License-Identifier: GPL-2.0-or-later
"""tcpcp_checkpoint() through the library's own ABI (ctypes), on loopback
connections in a namespace of the test topology: what a checkpoint says
matches what the kernel says (the isolating tcpcp_get() of the same idle
connection), the application's state and unread bytes travel in it, and
what it refuses it refuses with one line, the connection untouched."""
import json
import re
import subprocess
from pathlib import Path

from lib import build, cli

SCRIPT = r'''
import ctypes, json, socket, sys, time
lib = ctypes.CDLL(sys.argv[1], use_errno=True)
out_dir = sys.argv[2]
lib.tcpcp_strerror.restype = ctypes.c_char_p
lib.tcpcp_ckpt_new.restype = ctypes.c_void_p
lib.tcpcp_checkpoint.restype = ctypes.c_void_p
lib.tcpcp_checkpoint.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
lib.tcpcp_ckpt_free.argtypes = [ctypes.c_void_p]
lib.tcpcp_get_ex.restype = ctypes.c_void_p
lib.tcpcp_get_ex.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_size_t)]
lib.tcpcp_release.argtypes = [ctypes.c_int]
libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]
res = {}

def save(name, p, n):
    open(f'{out_dir}/{name}.img', 'wb').write(ctypes.string_at(p, n))
    libc.free(p)

def why():
    return ctypes.get_errno(), lib.tcpcp_strerror().decode()

def pair():
    l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen()
    c = socket.create_connection(l.getsockname()); a, _ = l.accept()
    return l, c, a

l, c, a = pair()
res['listen'] = (lib.tcpcp_ckpt_new(l.fileno()) or 0,) + why()
h = lib.tcpcp_ckpt_new(a.fileno())
assert h, why()
n = ctypes.c_size_t()
def ckpt(name, state):
    p = lib.tcpcp_checkpoint(h, a.fileno(), state, len(state), ctypes.byref(n))
    assert p, why()
    save(name, p, n.value)
ckpt('first', b'offset=0')
# The peer's 1000 bytes, unread; ours, 300 KB, read by the peer.
c.sendall(b'x' * 1000)
got, total = 0, 300000
a.setblocking(False)
c.setblocking(False)
sent = 0
while got < total:
    if sent < total:
        try:
            sent += a.send(b'y' * min(65536, total - sent))
        except BlockingIOError:
            pass
    try:
        got += len(c.recv(1 << 20))
    except BlockingIOError:
        time.sleep(0.001)
c.setblocking(True)
time.sleep(0.2)
res['ts_before'] = a.getsockopt(socket.IPPROTO_TCP, 24)    # TCP_TIMESTAMP
ckpt('moved', b'offset=300000')
# The same idle connection, isolated and read by tcpcp_get(): the truth.
p = lib.tcpcp_get_ex(a.fileno(), ctypes.byref(n))
assert p, why()
save('truth', p, n.value)
assert lib.tcpcp_release(a.fileno()) == 0, why()
# Still alive both ways after all that.
a.setblocking(True)
a.sendall(b'z'); c.sendall(b'w')
res['alive'] = c.recv(1) == b'z' and a.recv(1000, socket.MSG_WAITALL) == b'x' * 1000 \
    and a.recv(1) == b'w'
# A writer with bytes not yet sent: refused, the connection untouched.
l2, c2, a2 = pair()
a2.setblocking(False)
try:
    while True:
        a2.send(b'q' * 65536)
except BlockingIOError:
    pass
res['unsent'] = (lib.tcpcp_ckpt_new(a2.fileno()) or 0,) + why()
res['unsent_repair'] = a2.getsockopt(socket.IPPROTO_TCP, 19)     # TCP_REPAIR
# The peer closed: checkpoints end with one line.
c.close()
time.sleep(0.1)
p = lib.tcpcp_checkpoint(h, a.fileno(), b'', 0, ctypes.byref(n))
res['closed'] = (p or 0,) + why()
lib.tcpcp_ckpt_free(h)
print(json.dumps(res))
'''


def test_checkpoint_matches_the_kernel(topo, tmp_path):
    r = subprocess.run(topo.cmd('origin', 'python3', '-c', SCRIPT,
                                build.build_dir() / 'libtcpcp.so', tmp_path),
                       capture_output=True, text=True, env=build.ctypes_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    first, moved, truth = (cli.show(tmp_path / f'{n}.img') for n in ('first', 'moved', 'truth'))
    # The half packed once (tcpcp_ici_fixed) is the connection's, as the
    # first checkpoint read it (rcv_mss, an estimate, moves on since).
    for k in ('version', 'local', 'peer', 'state', 'options', 'sockopts'):
        assert moved[k] == first[k], (k, moved, first)
    for k in ('local', 'peer', 'state'):
        assert moved[k] == truth[k], (k, moved, truth)
    # The timestamp, told from the clock (lib/checkpoint.c): never behind
    # what the socket said just before, and ahead by a few ticks only.
    before = res['ts_before'] & 0xffffffff
    ahead = (moved['timestamp'] - before) % (1 << 32)
    tick_us = 1 if before & 1 else 1000
    assert ahead < 20000 // tick_us, (before, moved['timestamp'])
    for k in ('write_seq', 'rcv_nxt', 'copied_seq'):
        assert moved[k] == truth[k], (k, moved, truth)
    assert moved['unqueued_una'] == truth['snd_una'], (moved, truth)
    assert (moved['write_seq'] - first['write_seq']) % (1 << 32) == 300000
    assert (moved['rcv_nxt'] - first['rcv_nxt']) % (1 << 32) == 1000
    # No send queue, the unread bytes, the application's state.
    assert moved['sendq_len'] == 0 and moved['snd_una'] == moved['write_seq'], moved
    assert moved['recvq_len'] == 1000 and moved['app_state_len'] == len('offset=300000')
    assert res['alive'], res
    h, err, line = res['listen']
    assert not h and 'ESTABLISHED' in line and '\n' not in line, res
    h, err, line = res['unsent']
    assert not h and err == 11 and 'not yet sent' in line, res
    assert res['unsent_repair'] == 0, res
    p, err, line = res['closed']
    assert not p and 'CLOSE_WAIT' in line, res


def proto_fields(text, message):
    """{number: 'label type name'} of @message in a .proto text."""
    body = re.search(r'message ' + message + r' \{(.*?)\n\}', text, re.S).group(1)
    return {int(m.group(4)): ' '.join(m.group(1, 2, 3))
            for m in re.finditer(r'^\s*(required|optional|repeated)\s+(\w+)\s+(\w+)\s*=\s*(\d+);',
                                 body, re.M)}


def test_checkpoint_halves_are_the_ici():
    """A checkpoint's image is tcpcp_ici_fixed's bytes then
    tcpcp_ici_live's (images/ici.proto): that decodes as one tcpcp_ici
    only while the two halves have tcpcp_ici's fields, the same numbers,
    labels and types, each field in one half."""
    text = (Path(__file__).resolve().parent.parent / 'images' / 'ici.proto').read_text()
    ici, fixed, live = (proto_fields(text, m) for m in ('tcpcp_ici', 'tcpcp_ici_fixed',
                                                         'tcpcp_ici_live'))
    assert len(ici) == 22 and fixed and live
    assert not fixed.keys() & live.keys(), 'a field in both halves'
    assert {**fixed, **live} == ici


def test_live_half_packed_as_protobuf_c_packs_it():
    """A checkpoint writes its live half with a packer of its own
    (lib/live-pack.c: protobuf-c's generic one is the larger part of a
    cold checkpoint).  build/test/live-check (test/fuzz/fuzz_live.c) fills
    every field the generated descriptors list with values of every
    varint length, present and absent, and aborts where the two packers'
    bytes differ; its fullest input must have filled every field of
    tcpcp_ici_live and of the messages in it, as images/ici.proto lists
    them, or the comparison missed one."""
    text = (Path(__file__).resolve().parent.parent / 'images' / 'ici.proto').read_text()
    live = proto_fields(text, 'tcpcp_ici_live')
    total = len(live) + sum(len(proto_fields(text, f.split()[1]))
                            for f in live.values() if f.split()[1].startswith('tcpcp_'))
    assert total == 27, live
    r = subprocess.run([str(build.build_dir() / 'test' / 'live-check'), '100000'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.fullmatch(r'100000 inputs, both packers agree, at most (\d+) fields filled\n', r.stdout)
    assert m and int(m.group(1)) == total, r.stdout
