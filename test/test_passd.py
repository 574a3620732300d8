# SPDX-License-Identifier: GPL-2.0-or-later
"""Live passes between running hosts: tcpcp-pass at the origin talks to
tcpcp-passd at the destination over an authenticated control connection
(issue 4).  The stream checks of test_pass.py apply: both ends verify
every byte and agree on hashes, and the peer never sees a RST, an early
FIN or TSval going back.
"""
import subprocess
import time

import pytest

from lib import build, cli, netns
from lib.capture import Capture, assert_no_rst
from lib.netns import hostport
from lib.passd import Passd, binary, make_key, pass_conn, route_switch, tsval_regressions
from lib.traffic import Traffic, assert_hashes_match, read_state, wait_for
from lib.stream import MB, Stream


SANITIZER = ('Sanitizer', 'runtime error:')


@pytest.fixture(autouse=True)
def sanitizer_clean(tmp_path):
    """Daemons and their children report into files, not to us: after the
    test, none of them may hold an ASan/UBSan report."""
    yield
    for f in tmp_path.rglob('*'):
        if f.is_file() and f.suffix in ('.log', '.err', '.out'):
            text = f.read_text(errors='replace')
            assert not any(m in text for m in SANITIZER), f'{f}:\n{text[-3000:]}'


class Live:
    """A Stream whose serving end moves with tcpcp-pass."""

    def __init__(self, topo, tmp, family, nbytes, rate='1M', **kw):
        self.topo, self.tmp, self.family = topo, tmp, family
        self.s = Stream(topo, tmp, family, nbytes, rate=rate, **kw)
        self.key = make_key(tmp / 'key')
        self.daemons = {}
        self.count = {}

    def passd(self, host, key=None, args=(), env=None):
        rate = ('--rate', self.s.rate) if self.s.rate else ()
        # The control connection uses the stream's family: IPv6 tests
        # also cover [addr]:port control addresses.
        d = Passd(self.topo, host, key or self.key, self.tmp, family=self.family,
                  traffic_args=rate, args=args, env=env)
        self.daemons[host] = d
        self.count[host] = 0
        return d

    def fd(self):
        return cli.tcp_socket(self.topo, self.s.host, self.s.server.pid)['fd']

    def pass_to(self, host, switch_to=None, switch_back=None, key=None, check=True, extra=()):
        """Returns tcpcp-pass's (CompletedProcess, JSON)."""
        s, d = self.s, self.daemons[host]
        assert s.server.running(), 'stream over before the pass'
        switch_to = switch_to or route_switch(self.topo, host)
        switch_back = switch_back or route_switch(self.topo, s.host)
        r, res = pass_conn(self.topo, s.host, s.server.pid, self.fd(), d.addr,
                           key or self.key, state_file=s.state, switch_to=switch_to,
                           switch_back=switch_back, check=check, extra=extra)
        if r.returncode == 0:
            self._handed_over(host, d)
        return r, res

    def _handed_over(self, host, d):
        s = self.s
        old, state = s.server, read_state(s.state)
        old.terminate()
        res = old.expect('taken')
        assert (res['tx'], res['rx']) == (state['tx'], state['rx'])
        s.server = d.handler(self.count[host])
        self.count[host] += 1
        s.host, s.state = host, s.server.state_out

    def finish(self):
        """Stream.finish(), with a TSval check that tells reordering on
        the path from a clock going back."""
        return self.s.finish(tsval_regressions)


@pytest.mark.parametrize('family', [4, 6])
def test_live_pass_route(topo, tmp_path, family):
    """The paper's scenario: the route at the gateway moves ipX."""
    live = Live(topo, tmp_path, family, 4 * MB)
    live.passd('dest')
    time.sleep(1)
    r, res = live.pass_to('dest')
    assert res['result'] == 'passed', r.stderr
    live.finish()


def one_line(r):
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_wrong_key(topo, tmp_path):
    """An origin (or a third host) without the key is refused before the
    connection is touched; garbage on the control port changes nothing."""
    live = Live(topo, tmp_path, 4, 3 * MB)
    d = live.passd('dest')
    time.sleep(0.5)
    r, res = live.pass_to('dest', key=make_key(tmp_path / 'wrong'), check=False)
    assert r.returncode == 1, r.stderr
    assert 'do the keys match' in one_line(r)
    wait_for(lambda: 'refused' in d.log_text(), 5, 'passd to log the refusal')
    assert 'authentication failed' in d.log_text()
    host, port = d.addr.rsplit(':', 1)
    topo.run('peer', 'bash', '-c', f'printf "TCPI\\0\\0\\0\\4junkjunk" > /dev/tcp/{host}/{port}')
    wait_for(lambda: d.log_text().count('refused') == 2, 5, 'passd to refuse the junk')
    assert d.proc.poll() is None, 'passd died'
    assert not [c for c in cli.established(topo, 'dest') if c['local'][1] == 5001]
    live.finish()


HOSTILE = """
import socket, sys, time
host, port, n, hold, claim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
conns = [socket.create_connection((host, port)) for _ in range(n)]
if claim:
    for c in conns:
        c.sendall(claim.to_bytes(4, 'big') + bytes(32) + b'x' * 1000)
print('connected', flush=True)
time.sleep(hold)
"""


def hostile(topo, d, n, hold, claim=0):
    """n clients without the key on d's control port, from the peer; each
    claims a frame of `claim` bytes (0: says nothing) and stays hold s."""
    host, port = d.addr.rsplit(':', 1)
    p = topo.popen('peer', 'python3', '-c', HOSTILE, host.strip('[]'), port, n, hold, claim,
                   stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'connected'
    return p


def pass_after_hostile(live, p, sessions):
    """A pass that goes through; passd numbered the `sessions` before it,
    refused ones too.  Then the hostile clients go and the stream ends."""
    live.count['dest'] = sessions
    r, res = live.pass_to('dest')
    assert res['result'] == 'passed', r.stderr
    p.kill()
    p.wait()
    live.finish()


def test_hostile_length(topo, tmp_path):
    """A client without the key claims a 1 GiB frame: passd believes no
    length before its tag, so it refuses at once, without waiting for
    (or allocating) the body, and passes go on."""
    live = Live(topo, tmp_path, 4, 3 * MB)
    d = live.passd('dest')
    time.sleep(0.5)
    t0 = time.monotonic()
    p = hostile(topo, d, 3, 8, claim=1 << 30)
    wait_for(lambda: d.log_text().count('bad MAC') == 3, 5, 'passd to refuse the claims')
    # Well before the 10 s a session may wait for its next bytes.
    assert time.monotonic() - t0 < 5
    pass_after_hostile(live, p, 3)


def test_max_sessions(topo, tmp_path):
    """Clients without the key fill every session (--max-sessions 2) and
    could each hold one for --timeout: an origin with the key still gets
    through at once, in the room of the oldest of them, and the daemon
    says so."""
    live = Live(topo, tmp_path, 4, 4 * MB)
    d = live.passd('dest', args=('--max-sessions', 2, '--timeout', 8000))
    time.sleep(0.5)
    p = hostile(topo, d, 2, 30)
    t0 = time.monotonic()
    live.count['dest'] = 2
    r, res = live.pass_to('dest')
    assert res['result'] == 'passed', r.stderr
    assert time.monotonic() - t0 < 4, 'waited for a hostile session to time out'
    assert 'session 0 dropped: not authenticated yet' in d.log_text()
    p.kill()
    p.wait()
    live.finish()


def test_dest_refuses(topo, tmp_path):
    """dest cannot create the endpoint (no ipX there): it says why, the
    origin releases and the stream ends there."""
    topo.run('dest', 'ip', 'addr', 'del', '10.77.9.1/32', 'dev', 'lo')
    live = Live(topo, tmp_path, 4, 3 * MB)
    live.passd('dest')
    time.sleep(0.5)
    r, res = live.pass_to('dest', check=False)
    assert r.returncode == 1 and res['result'] == 'released', r.stderr
    err = one_line(r)
    assert 'destination gave up' in err and 'is not on this host' in err, err
    live.finish()


@pytest.mark.parametrize('who', ['passd', 'origin'])
def test_dest_carry_needs_policy(topo, tmp_path, who):
    """Congestion carry-over asked for by the destination's daemon
    (tcpcp passd --congestion carry) or by the origin (tcpcp pass
    --congestion carry, a field of the offer) on a host whose tcpcp.conf
    does not allow it: the destination refuses before it creates anything
    and says why, the origin releases and the stream goes on there.
    Allowed, the same pass goes through and the stream finishes intact."""
    conf = tmp_path / 'tcpcp.conf'
    conf.write_text('create-needs-net-raw no\n')
    live = Live(topo, tmp_path, 4, 3 * MB)
    carry = ('--congestion', 'carry')
    live.passd('dest', args=carry if who == 'passd' else (),
               env=dict(build.env(), TCPCP_CONFIG=str(conf)))
    time.sleep(0.5)
    r, res = live.pass_to('dest', check=False, extra=carry if who == 'origin' else ())
    assert r.returncode == 1 and res['result'] == 'released', r.stderr
    err = one_line(r)
    assert 'destination gave up' in err and 'congestion carry-over is not allowed' in err, err
    live.count['dest'] += 1     # the refused session had a number too
    conf.write_text('create-needs-net-raw no\ncongestion-carry yes\n')
    time.sleep(0.3)
    live.pass_to('dest', extra=carry if who == 'origin' else ())
    live.finish()


@pytest.mark.parametrize('family', [4, 6])
def test_dest_killed(topo, tmp_path, family):
    """dest dies after it created the endpoint, while the route moves to
    it: the origin notices, moves the route back and releases; the peer's
    retransmissions in between are dropped by dest's gate, never reset."""
    live = Live(topo, tmp_path, family, 4 * MB)
    live.passd('dest')
    time.sleep(1)
    router, dest = topo.ns['router'], topo.ns['dest']
    ipx = topo.ipx(family)
    hook = (f'exec:ip -n {router} route replace {ipx} via {topo.addr("dest", family)} && '
            f'kill -9 $(ip netns pids {dest}) && sleep 0.3')
    r, res = live.pass_to('dest', switch_to=hook, check=False)
    assert r.returncode == 1 and res['result'] == 'released', r.stderr
    assert 'closed it' in one_line(r)
    assert live.s.server.running()
    live.finish()


def test_back_and_forth(topo, tmp_path):
    """50 passes, origin -> dest -> origin ..., each one a different
    process continuing the stream on the socket it was given."""
    # Long enough for 50 passes on a slow (sanitizer) build.
    live = Live(topo, tmp_path, 4, 6 * MB, rate='128K')
    live.passd('dest')
    live.passd('origin')
    time.sleep(0.5)
    for i in range(50):
        r, res = live.pass_to('dest' if i % 2 == 0 else 'origin')
        assert res['result'] == 'passed', r.stderr
    live.finish()


def lossy_path(topo, percent):
    """Random loss on everything the router forwards (no netem here)."""
    rules = ['add table inet tcpcp-test-loss',
             'add chain inet tcpcp-test-loss lossy '
             '{ type filter hook forward priority 0; policy accept; }',
             f'add rule inet tcpcp-test-loss lossy meta l4proto tcp '
             f'numgen random mod 100 < {percent} counter drop']
    topo.run('router', 'nft', '-f', '-', input='\n'.join(rules) + '\n')


def dropped(topo):
    r = topo.run('router', 'nft', 'list', 'table', 'inet', 'tcpcp-test-loss')
    return int(r.stdout.split('packets ')[1].split()[0])


@pytest.mark.parametrize('family', [4, 6])
def test_pass_under_loss(topo, tmp_path, family):
    """5% of forwarded TCP segments dropped, the control connection's
    included, while the connection goes to dest, back and to dest again."""
    live = Live(topo, tmp_path, family, 4 * MB, rate='256K')
    live.passd('dest')
    live.passd('origin')
    lossy_path(topo, 5)
    time.sleep(1)
    for host in ('dest', 'origin', 'dest'):
        r, res = live.pass_to(host)
        assert res['result'] == 'passed', r.stderr
        time.sleep(0.5)
    live.finish()
    assert dropped(topo) > 0


STEER_MARK = 3


def steering(topo, host, mark=STEER_MARK):
    """The gateway's policy routing for marked flows: mark -> host."""
    for v in (4, 6):
        topo.run('router', 'ip', f'-{v}', 'rule', 'add', 'fwmark', mark, 'lookup', mark)
        topo.run('router', 'ip', f'-{v}', 'route', 'add', topo.ipx(v), 'via',
                 topo.addr(host, v), 'table', mark)


def test_per_connection_steering(topo, tmp_path):
    """100 connections to ipX; each is passed in turn by marking its
    4-tuple alone at the gateway while the others keep flowing through
    origin.  A connection steered by mistake would reach dest, which has
    no socket for it, and the RST would end it.

    Every stream must outlast the passes however slow the build, and end
    soon after its own: at origin the servers send at 4 KB/s and stop
    reading after 64 KB, so the peers (unpaced) keep their connections
    open, blocked on a full window, with data queued both ways (small
    buffers, so that no peer can push its whole stream into them).  At
    dest the handlers read and write unpaced and the stream ends at once."""
    n, base, nbytes = 100, 5100, 4 * MB
    topo.sysctl('origin', 'net.ipv4.tcp_rmem', '4096 65536 262144')
    topo.sysctl('peer', 'net.ipv4.tcp_wmem', '4096 65536 262144')
    key = make_key(tmp_path / 'key')
    steering(topo, 'dest')
    d = Passd(topo, 'dest', key, tmp_path)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    ipx = topo.ipx(4)
    conns = []
    for i in range(n):
        state = tmp_path / f'origin{i}.state'
        srv = Traffic(topo, 'origin', '--listen', hostport(ipx, base + i), '--bytes', nbytes,
                      '--tx-seed', i, '--rx-seed', 1000 + i, '--state-out', state,
                      '--rate', '4K', '--read-stall', '64K:1200000')
        conns.append({'srv': srv, 'state': state})
    for i, c in enumerate(conns):
        cli.wait_listening(topo, 'origin', base + i)
        c['peer'] = Traffic(topo, 'peer', '--connect', hostport(ipx, base + i),
                            '--bytes', nbytes, '--tx-seed', 1000 + i, '--rx-seed', i)
    to, back = f'flow:{topo.ns["router"]}:{STEER_MARK}', f'flow:{topo.ns["router"]}:0'
    for i, c in enumerate(conns):
        assert c['srv'].running(), f'stream {i} over before its pass\n{c["srv"].describe()}'
        fd = cli.tcp_socket(topo, 'origin', c['srv'].pid)['fd']
        r, res = pass_conn(topo, 'origin', c['srv'].pid, fd, d.addr, key,
                           state_file=c['state'], switch_to=to, switch_back=back)
        assert res['result'] == 'passed', r.stderr
        c['srv'].terminate()
        c['srv'].expect('taken')
        c['dest'] = d.handler(i)
        if i == n // 2:
            # The rest still run at origin, and still move data there.
            left = [s for s in cli.established(topo, 'origin') if s['local'][1] >= base]
            assert len(left) == n - i - 1, left
            assert all(c2['srv'].running() for c2 in conns[i + 1:])
    for c in conns:
        a, b = c['peer'].expect(timeout=120), c['dest'].expect(timeout=120)
        assert a['tx'] == a['rx'] == nbytes
        assert_hashes_match(a, b)
    pkts = cap.stop()
    assert_no_rst(pkts)
    r = topo.run('router', 'nft', 'list', 'map', 'inet', 'tcpcp-steer', 'v4')
    assert r.stdout.count(f': 0x{STEER_MARK:08x}') == n, r.stdout


@pytest.fixture
def segment_topo():
    t = netns.Topology(segment=True)
    yield t
    t.cleanup()


def neigh_mac(topo, family, ip):
    r = topo.run('router', 'ip', f'-{family}', 'neigh', 'show', ip, 'dev', netns.BRIDGE)
    f = r.stdout.split()
    return f[f.index('lladdr') + 1] if 'lladdr' in f else None


@pytest.mark.parametrize('family', [4, 6])
def test_shared_segment_announce(segment_topo, tmp_path, family):
    """origin and dest share a segment with the gateway, which reaches ipX
    on-link: the switch is a gratuitous ARP / unsolicited NA (libnet) that
    puts ipX at the other host's MAC.  There and back again."""
    topo = segment_topo
    live = Live(topo, tmp_path, family, 4 * MB)
    live.passd('dest')
    live.passd('origin')
    ipx = topo.ipx(family)
    assert neigh_mac(topo, family, ipx) == netns.mac('origin')
    time.sleep(1)
    for host, other in (('dest', 'origin'), ('origin', 'dest')):
        r, res = live.pass_to(host, switch_to=f'arp:-:eth0:{netns.mac(host)}',
                              switch_back=f'arp:-:eth0:{netns.mac(other)}')
        assert res['result'] == 'passed', r.stderr
        assert neigh_mac(topo, family, ipx) == netns.mac(host)
        time.sleep(1)
    live.finish()


def fake_dest(topo, tmp, mode, key):
    import sys
    from pathlib import Path
    log = tmp / f'fake-{mode}.log'
    addr = topo.addr('dest', 4)
    script = Path(__file__).parent / 'lib' / 'fakepass.py'
    p = topo.popen('dest', sys.executable, script, mode, addr, 7000, key,
                   stdout=open(log, 'w'), stderr=subprocess.STDOUT)
    wait_for(lambda: 'listening' in log.read_text(), 10, 'the fake destination')
    return p, log


def test_corrupt_message_rolls_back(topo, tmp_path):
    """After authentication, the destination's CREATED arrives with a bad
    tag (corruption or an injected frame): the origin rolls back and the
    connection goes on at the origin."""
    live = Live(topo, tmp_path, 4, 3 * MB)
    fake, log = fake_dest(topo, tmp_path, 'badmac', live.key)
    live.daemons['dest'] = type('D', (), {'addr': f'{topo.addr("dest", 4)}:7000'})()
    live.count['dest'] = 0
    time.sleep(0.5)
    r, res = live.pass_to('dest', check=False)
    assert r.returncode == 1 and res['result'] == 'released', r.stderr
    assert 'bad MAC' in one_line(r)
    assert 'offer' in log.read_text()
    live.finish()


def test_unconfirmed_activation(topo, tmp_path):
    """The destination goes away after ACTIVATE without answering: the
    origin may not release (the destination could be live), so it closes
    and says so (exit 3).  Here the fake destination created nothing, so
    the connection is lost: that is the documented price of never having
    two live endpoints."""
    live = Live(topo, tmp_path, 4, 3 * MB)
    fake, log = fake_dest(topo, tmp_path, 'unconfirmed', live.key)
    live.daemons['dest'] = type('D', (), {'addr': f'{topo.addr("dest", 4)}:7000'})()
    time.sleep(0.5)
    r, res = live.pass_to('dest', check=False)
    assert r.returncode == 3 and res['result'] == 'unconfirmed', r.stderr
    assert 'did not confirm' in one_line(r)
    assert 'got 5' in log.read_text()       # it did receive ACTIVATE
    live.s.server.terminate()
    live.s.server.expect('taken')           # not released


def test_key_file_checks(tmp_path):
    """A key others can read, or one that is not 64 hex digits, is refused
    before anything else happens, with one line naming the file."""
    from lib import build
    bad = tmp_path / 'open.key'
    bad.write_text('00' * 32)
    bad.chmod(0o644)
    short = tmp_path / 'short.key'
    short.write_text('abcd\n')
    short.chmod(0o600)
    for key, why in ((bad, 'accessible to other users'), (short, 'expected 64 hex digits')):
        r = subprocess.run([binary('tcpcp-pass'), '--to', '127.0.0.1:9', '--key', key,
                            '--pid', '1', '--fd', '0'], capture_output=True, text=True,
                           env=build.env(), timeout=30)
        assert r.returncode == 1, r
        assert why in one_line(r) and str(key) in r.stderr, r.stderr
