# SPDX-License-Identifier: GPL-2.0-or-later
"""Half-closed connections passed through the CLI (lib/fin.c).

One side has sent its FIN while the other still sends; the pass happens
in that state and the peer must see what it would have seen without it:
every byte both ways, each side's FIN right after its last byte, no RST,
no TSval going back.  Each case drives the origin's end into its state
with the byte counts, rates and read stalls of the two tcpcp-traffic
ends, waits until ss shows the state, and passes it to dest.
"""
import pytest

from lib import build, cli
from lib.capture import first_fin
from lib.stream import MB, PORT, Stream

KB = 1 << 10
STALL = ('--read-stall', '0:4000')     # the peer reads nothing for 4 s
# An end that has sent its FIN and read the peer's stays open a while,
# as an application between its last read and close() would.
LINGER = ('--linger', 3000)
BIG_SNDBUF = '4096 4194304 8388608'    # the origin holds unsent data + FIN

# state: nbytes from the service, peer_bytes, rates and stalls of each
# end, and whose FIN the peer sees first.
CASES = {
    # The peer has said all it will (FIN); the service still streams.
    'close-wait': dict(nbytes=3 * MB, peer_bytes=256 * KB,
                       origin=('--rate', '1M'), peer=(), first='peer'),
    # The service has said all (its FIN acknowledged); the peer streams.
    'fin-wait-2': dict(nbytes=256 * KB, peer_bytes=3 * MB,
                       origin=(), peer=('--rate', '1M'), first='service'),
    # The service's FIN waits behind data the stalled peer cannot take;
    # the peer goes on sending after its stall, so the FIN must come from
    # the image, not from the application's close() at the very end.
    'fin-wait-1': dict(nbytes=512 * KB, peer_bytes=6 * MB,
                       origin=(), peer=('--rate', '1M', *STALL), first='service'),
    # The peer's FIN came first, then the service's, still unsent.
    'last-ack': dict(nbytes=512 * KB, peer_bytes=256 * KB,
                     origin=('--rate', '1M', *LINGER), peer=STALL, first='peer'),
    # The service's FIN first (unsent), then the peer's crossed it.
    'closing': dict(nbytes=512 * KB, peer_bytes=256 * KB,
                    origin=LINGER, peer=('--rate', '256K', *STALL), first='peer'),
}


@pytest.mark.parametrize('state', CASES)
@pytest.mark.parametrize('family', [4, 6])
def test_pass_half_closed(topo, tmp_path, family, state):
    c = CASES[state]
    for h in ('origin', 'dest'):
        topo.sysctl(h, 'net.ipv4.tcp_wmem', BIG_SNDBUF)
    s = Stream(topo, tmp_path, family, c['nbytes'], rate=None, peer_bytes=c['peer_bytes'],
               origin_args=c['origin'], dest_args=c['origin'], peer_args=c['peer'])
    img = s.take(state=state)
    ici = cli.show(img)
    assert ici['state'] == {'close-wait': 8, 'fin-wait-2': 5, 'fin-wait-1': 4,
                            'last-ack': 9, 'closing': 11}[state], ici
    if state in ('fin-wait-1', 'last-ack', 'closing'):
        assert ici['sendq_len'] > 0, 'nothing queued behind the FIN'
    dest = s.create('dest', img, '--activate')
    s.hand_over(dest, 'dest')
    pkts = s.finish()
    service = (s.ipx, PORT)
    peer = next((p.src, p.sport) for p in pkts if p.dst == s.ipx)
    assert first_fin(pkts, service, peer) == (peer if c['first'] == 'peer' else service)


def test_half_closed_needs_net_raw(topo, tmp_path):
    """The peer's FIN is replayed with a raw socket: where the host lets
    a create run without CAP_NET_RAW (tcpcp.conf), a half-closed image
    still needs it, the refusal names it, dest keeps nothing, and the
    origin carries on after a release."""
    c = CASES['close-wait']
    s = Stream(topo, tmp_path, 4, c['nbytes'], rate=None, peer_bytes=c['peer_bytes'],
               origin_args=c['origin'], peer_args=c['peer'])
    img = s.take(state='close-wait')
    conf = tmp_path / 'tcpcp.conf'
    conf.write_text('create-needs-net-raw no\n')
    r = topo.run('dest', 'env', f'TCPCP_CONFIG={conf}', 'setpriv', '--bounding-set=-net_raw',
                 '--inh-caps=-net_raw', '--', build.tcpcp(), 'create', img, '--activate',
                 '--', 'true', check=False)
    err = r.stderr.strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1 and 'CAP_NET_RAW' in err, \
        (r.returncode, err)
    assert not cli.connected(topo, 'dest'), 'a socket was left at dest'
    assert cli.gate_entries(topo, 'dest') == 0, 'a gate was left'
    cli.release(topo, 'origin', s.server.pid, s.fd)
    s.finish()
