# SPDX-License-Identifier: GPL-2.0-or-later
"""tcpcp-traffic and the test network, without any pass."""
import ctypes
import fcntl
import os
import socket
import struct
import termios
import time

import pytest

from lib import cli
from lib.capture import Capture, assert_fin_after_data, assert_no_rst, connection, isn
from lib.netns import hostport
from lib.traffic import Traffic, assert_hashes_match, read_state, wait_file, wait_for

PORT = 5001


def stream(topo, family, nbytes, server='origin', port=PORT, srv_args=(), peer_args=()):
    ipx = topo.ipx(family)
    srv = Traffic(topo, server, '--listen', hostport(ipx, port), '--bytes', nbytes,
                  '--tx-seed', 1, '--rx-seed', 2, *srv_args)
    cli.wait_listening(topo, server, port)
    peer = Traffic(topo, 'peer', '--connect', hostport(ipx, PORT), '--bytes', nbytes,
                   '--tx-seed', 2, '--rx-seed', 1, *peer_args)
    return peer, srv


@pytest.mark.parametrize('family', [4, 6])
def test_stream_both_ways(topo, tmp_path, family):
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    peer, srv = stream(topo, family, '4M')
    a, b = peer.expect(), srv.expect()
    assert a['tx'] == a['rx'] == 4 << 20
    assert_hashes_match(a, b)
    pkts = connection(cap.stop(), (topo.ipx(family), PORT))
    assert pkts, 'the capture saw nothing of the connection'
    assert_no_rst(pkts)
    assert_fin_after_data(pkts, (topo.ipx(family), PORT), 4 << 20)


def test_wrong_seed_is_caught(topo):
    ipx = hostport(topo.ipx(4), PORT)
    srv = Traffic(topo, 'origin', '--listen', ipx, '--bytes', '1M',
                  '--tx-seed', 1, '--rx-seed', 2)
    cli.wait_listening(topo, 'origin', PORT)
    peer = Traffic(topo, 'peer', '--connect', ipx, '--bytes', '1M',
                   '--tx-seed', 2, '--rx-seed', 3)
    assert peer.wait() == 3, peer.describe()
    assert 'mismatch at offset 0' in peer.err
    srv.wait()


def test_short_stream_is_caught(topo):
    ipx = hostport(topo.ipx(4), PORT)
    srv = Traffic(topo, 'origin', '--listen', ipx, '--bytes', '1M')
    cli.wait_listening(topo, 'origin', PORT)
    # The peer holds back its second MB, so the server ends with nothing
    # unread: a FIN, not a RST, and the peer must notice the short stream.
    peer = Traffic(topo, 'peer', '--connect', ipx, '--bytes', '2M', '--write-stall', '1M:5000')
    assert peer.wait() == 3, peer.describe()
    assert 'EOF at offset' in peer.err
    srv.wait()


def test_router_port_translation(topo):
    """The nft rewrite the port-mode pass tests rely on, with a plain
    server on another port at dest."""
    ipx, peer_addr = topo.ipx(4), topo.addr('peer', 4)
    topo.run('router', 'nft', '-f', '-', input=f'''
table inet tcpcp-test-xlate {{
  chain pre {{ type filter hook prerouting priority -300; policy accept;
    iifname "to-dest" ip saddr {ipx} tcp sport 6001 ip daddr {peer_addr} tcp sport set {PORT}
  }}
  chain post {{ type filter hook postrouting priority -300; policy accept;
    oifname "to-dest" ip saddr {peer_addr} ip daddr {ipx} tcp dport {PORT} tcp dport set 6001
  }}
}}''')
    topo.switch_to('dest')
    peer, srv = stream(topo, 4, '2M', server='dest', port=6001)
    assert_hashes_match(peer.expect(), srv.expect())


# ---- a socket taken away and given back, without tcpcp ----

TCP_REPAIR, TCP_REPAIR_QUEUE, TCP_QUEUE_SEQ = 19, 20, 21
TCP_RECV_QUEUE, TCP_SEND_QUEUE, TCP_NO_QUEUE = 1, 2, 0
SYS_pidfd_open, SYS_pidfd_getfd = 434, 438


def steal(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = libc.syscall(SYS_pidfd_open, pid, 0)
    assert pidfd >= 0, os.strerror(ctypes.get_errno())
    try:
        s = libc.syscall(SYS_pidfd_getfd, pidfd, fd, 0)
        assert s >= 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    return socket.socket(fileno=s)


def queue_seq(s, q):
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, q)
    seq = struct.unpack('I', s.getsockopt(socket.IPPROTO_TCP, TCP_QUEUE_SEQ, 4))[0]
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)
    return seq


def copied_seq(s):
    """rcv_nxt - unread; repair mode does not stop segments arriving."""
    while True:
        nxt = queue_seq(s, TCP_RECV_QUEUE)
        inq = struct.unpack('i', fcntl.ioctl(s.fileno(), termios.FIONREAD, b'\0' * 4))[0]
        if queue_seq(s, TCP_RECV_QUEUE) == nxt:
            return (nxt - inq) & 0xffffffff


def test_repair_mode_is_noticed(topo, tmp_path):
    """TCP_REPAIR on: the state file holds exactly what went through the
    socket API; TCP_REPAIR off: the stream just goes on (rollback)."""
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    state = tmp_path / 'origin.state'
    peer, srv = stream(topo, 4, '3M', srv_args=('--rate', '1M', '--state-out', state),
                       peer_args=('--rate', '1M'))
    time.sleep(1)
    sock = cli.tcp_socket(topo, 'origin', srv.pid)
    s = steal(srv.pid, sock['fd'])
    try:
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
        wait_file(state)
        st = read_state(state)
        write_seq = queue_seq(s, TCP_SEND_QUEUE)
        copied = copied_seq(s)
        time.sleep(0.3)
        assert read_state(state) == st, 'the state changed while taken'
        s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 0)
    finally:
        s.close()
    assert 0 < st['tx'] < 3 << 20 and 0 < st['rx'] < 3 << 20, st
    assert (st['tx_seed'], st['rx_seed'], st['tx_bytes'], st['rx_bytes'], st['shut']) == \
        (1, 2, 3 << 20, 3 << 20, 0)
    assert_hashes_match(peer.expect(), srv.expect())
    pkts = cap.stop()
    ipx = (topo.ipx(4), PORT)
    assert (write_seq - isn(pkts, ipx) - 1) & 0xffffffff == st['tx']
    assert (copied - isn(pkts, sock['peer']) - 1) & 0xffffffff == st['rx']
    assert_no_rst(pkts)


def test_sigterm_when_taken(topo, tmp_path):
    state = tmp_path / 'origin.state'
    peer, srv = stream(topo, 4, '3M', srv_args=('--rate', '1M', '--state-out', state),
                       peer_args=('--rate', '1M'))
    time.sleep(0.5)
    s = steal(srv.pid, cli.tcp_socket(topo, 'origin', srv.pid)['fd'])
    s.setsockopt(socket.IPPROTO_TCP, TCP_REPAIR, 1)
    wait_file(state)
    srv.terminate()
    res = srv.expect('taken')
    st = read_state(state)
    assert (res['tx'], res['rx'], res['tx_hash'], res['rx_hash']) == \
        (st['tx'], st['rx'], st['tx_hash'], st['rx_hash'])
    s.close()
    peer.terminate()
    wait_for(lambda: not peer.running(), what='the peer to stop')


def test_tsval_check_catches_a_clock_going_back():
    """The pass tests' TSval check: reordering within 10 ms is the
    network's doing; a step back across a longer gap is a bug it catches."""
    from lib.capture import Packet, tsval_never_backwards
    src = ('10.77.9.1', 5001)

    def seg(t, tsval):
        return Packet(t, src[0], '10.77.1.2', src[1], 40000, 0x10, 0, 0, 0, 0,
                      {'ts': (tsval, 0)})
    reordered = [seg(0.000, 100), seg(0.001, 102), seg(0.002, 101), seg(0.5, 600)]
    assert tsval_never_backwards(reordered, src)
    went_back = [seg(0.000, 100), seg(0.100, 200), seg(0.300, 150)]
    assert not tsval_never_backwards(went_back, src)
    wrapped = [seg(0.0, 0xfffffff0), seg(0.1, 0x10)]
    assert tsval_never_backwards(wrapped, src)

    def data(t, tsval):
        return Packet(t, src[0], '10.77.1.2', src[1], 40000, 0x18, 0, 0, 0, 1000,
                      {'ts': (tsval, 0)})
    # Paced data stamped ahead of the clock, then an ACK from the clock.
    assert tsval_never_backwards([data(0.000, 719), seg(0.026, 704)], src)
    assert not tsval_never_backwards([seg(0.000, 100), seg(0.5, 600), data(0.8, 550)], src)
    assert not tsval_never_backwards([data(0.000, 100), data(0.5, 600), data(0.8, 550)], src)
    assert not tsval_never_backwards([seg(0.000, 100), seg(0.5, 600), seg(0.8, 550)], src)


def test_passd_tsval_rule():
    """The passd tests' TSval rule: swapped segments acknowledge less and
    pass; a pure ACK a tick older than the paced data segment before it is
    Linux's own stamping and passes; a data segment older than its
    predecessor, or an ACK far older, is a clock going back."""
    from lib.capture import Packet
    from lib.passd import EDT_SLACK, tsval_regressions
    src = ('10.77.9.1', 5001)

    def seg(t, tsval, ack, length):
        return Packet(t, src[0], '10.77.1.2', src[1], 40000, 0x10, 0, ack, 0, length,
                      {'ts': (tsval, 0)})
    assert not tsval_regressions([seg(0, 100, 50, 1000), seg(0, 99, 40, 1000)], src)
    assert not tsval_regressions([seg(0, 100, 50, 1000), seg(0, 99, 50, 0)], src)
    assert tsval_regressions([seg(0, 100, 50, 1000), seg(0, 99, 50, 1000)], src)
    assert tsval_regressions([seg(0, 100, 50, 1000), seg(0, 99 - EDT_SLACK, 50, 0)], src)


def test_criu_rst_rule():
    """The CRIU tests' RST count: an RST from the peer after both FINs were
    exchanged and acknowledged (a retransmitted FIN that crossed the last
    ACK) is not counted; one while the connection lives is."""
    from lib.capture import Packet
    from lib.criu import after_close, closes
    X, P = ('10.77.9.1', 5001), ('10.77.1.2', 40000)

    def pkt(t, src, dst, flags, seq, ack, length=0):
        return Packet(t, src[0], dst[0], src[1], dst[1], flags, seq, ack, 0, length)
    close = [pkt(0.0, X, P, 0x19, 100, 500, 4),      # service's FIN after 4 bytes
             pkt(0.1, P, X, 0x10, 500, 105),         # ... acknowledged
             pkt(0.1, P, X, 0x11, 500, 105),         # the peer's FIN
             pkt(0.2, X, P, 0x10, 105, 501)]         # ... acknowledged
    late = pkt(0.3, P, X, 0x04, 501, 0)
    closed = closes(close + [late], ('10.77.9.1',))
    assert after_close(late, closed)
    early = pkt(0.05, P, X, 0x04, 500, 0)
    closed = closes([close[0], early], ('10.77.9.1',))
    assert not after_close(early, closed)
