# SPDX-License-Identifier: GPL-2.0-or-later
"""The peer's view of a connection: tcpdump in a namespace, parsed here.

Only what the checks need: Ethernet, IPv4/IPv6, TCP with its options.
Windows are raw header values (unscaled); lengths come from the IP header,
so they are right even though frames are cut at the snap length.
"""
import ipaddress
import signal
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MASK32 = 0xffffffff


@dataclass
class Packet:
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    seq: int
    ack: int
    win: int
    length: int                 # TCP payload bytes
    opts: dict = field(default_factory=dict)

    def __str__(self):
        names = ''.join(c for bit, c in ((SYN, 'S'), (FIN, 'F'), (RST, 'R'),
                                         (PSH, 'P'), (ACK, '.')) if self.flags & bit)
        return (f'{self.ts:.6f} {self.src}.{self.sport} > {self.dst}.{self.dport} '
                f'[{names}] seq {self.seq} ack {self.ack} win {self.win} '
                f'len {self.length} {self.opts}')


class Capture:
    """tcpdump on one interface of one namespace, to a pcap file."""

    def __init__(self, topo, host, path, ifname='eth0', expr=None):
        """expr: a pcap-filter(7) expression, to keep a big capture small."""
        self.topo, self.host, self.ifname = topo, host, ifname
        self.expr = [expr] if expr else []
        self.path = Path(path)
        self.log = self.path.with_suffix('.log')
        self.proc = None

    def start(self, timeout=10):
        with open(self.log, 'w') as log:
            # -Z root: Debian's tcpdump would drop to a user that cannot
            # write into pytest's tmp_path.
            self.proc = self.topo.popen(self.host, 'tcpdump', '-i', self.ifname,
                                        '-w', self.path, '-U', '--immediate-mode', '-s', '128',
                                        '-n',
                                        '-Z', 'root', *self.expr, stdout=subprocess.DEVNULL,
                                        stderr=log)
        deadline = time.monotonic() + timeout
        while 'listening on' not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f'tcpdump did not start: {self.log.read_text()}')
            time.sleep(0.05)
        return self

    def stop(self):
        """Stop tcpdump and return every TCP packet it saw."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=10)
        return read_pcap(self.path)


# ---- pcap parsing ----

def read_pcap(path):
    data = Path(path).read_bytes()
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        end = '<'
    elif magic in (b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d'):
        end = '>'
    else:
        raise ValueError(f'{path}: not a pcap file')
    scale = 1e-9 if magic in (b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\x3c\x4d') else 1e-6
    linktype = struct.unpack(end + 'I', data[20:24])[0]
    if linktype != 1:
        raise ValueError(f'{path}: link type {linktype}, only Ethernet is parsed')
    pkts, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(end + 'IIII', data[off:off + 16])
        off += 16
        p = parse_ether(data[off:off + incl], sec + frac * scale)
        off += incl
        if p:
            pkts.append(p)
    return pkts


def parse_ether(frame, ts):
    etype, off = struct.unpack('!H', frame[12:14])[0], 14
    while etype in (0x8100, 0x88a8):
        etype, off = struct.unpack('!H', frame[off + 2:off + 4])[0], off + 4
    if etype == 0x0800:
        return parse_ipv4(frame[off:], ts)
    if etype == 0x86dd:
        return parse_ipv6(frame[off:], ts)
    return None


def parse_ipv4(ip, ts):
    if len(ip) < 20 or ip[9] != 6:
        return None
    ihl = (ip[0] & 0x0f) * 4
    total = struct.unpack('!H', ip[2:4])[0]
    frag = struct.unpack('!H', ip[6:8])[0] & 0x1fff
    if frag:
        return None
    src, dst = ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20])
    return parse_tcp(ip[ihl:], total - ihl, str(src), str(dst), ts)


def parse_ipv6(ip, ts):
    # Extension headers never appear in these tests' traffic.
    if len(ip) < 40 or ip[6] != 6:
        return None
    plen = struct.unpack('!H', ip[4:6])[0]
    src, dst = ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40])
    return parse_tcp(ip[40:], plen, str(src), str(dst), ts)


def parse_tcp(tcp, seglen, src, dst, ts):
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack, offflags, win = struct.unpack('!HHIIHH', tcp[:16])
    hlen = (offflags >> 12) * 4
    return Packet(ts, src, dst, sport, dport, offflags & 0x3f, seq, ack, win,
                  seglen - hlen, parse_options(tcp[20:hlen]))


def parse_options(raw):
    opts, i = {}, 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            break
        n = raw[i + 1]
        body = raw[i + 2:i + n]
        if kind == 2 and len(body) == 2:
            opts['mss'] = struct.unpack('!H', body)[0]
        elif kind == 3 and len(body) == 1:
            opts['wscale'] = body[0]
        elif kind == 4:
            opts['sackok'] = True
        elif kind == 5:
            opts['sack'] = [struct.unpack('!II', body[j:j + 8])
                            for j in range(0, len(body) - 7, 8)]
        elif kind == 8 and len(body) == 8:
            opts['ts'] = struct.unpack('!II', body)
        i += n
    return opts


# ---- selecting and checking ----

def _norm(a):
    return str(ipaddress.ip_address(a))


def _is(p_addr, p_port, end):
    """end is an address or an (address, port) pair."""
    if isinstance(end, tuple):
        return p_addr == _norm(end[0]) and p_port == end[1]
    return p_addr == _norm(end)


def sent_by(pkts, src):
    return [p for p in pkts if _is(p.src, p.sport, src)]


def connection(pkts, a, b=None):
    """Packets of one connection, both directions: a and b are endpoints
    (address or (address, port)); without b, everything touching a."""
    out = []
    for p in pkts:
        if _is(p.src, p.sport, a) and (b is None or _is(p.dst, p.dport, b)):
            out.append(p)
        elif _is(p.dst, p.dport, a) and (b is None or _is(p.src, p.sport, b)):
            out.append(p)
    return out


def seq_before(a, b):
    """a comes before b in 32-bit sequence (or timestamp) space."""
    return a != b and ((a - b) & MASK32) > 0x7fffffff


def assert_no_rst(pkts):
    rsts = [p for p in pkts if p.flags & RST]
    assert not rsts, f'{len(rsts)} RST segment(s), first: {rsts[0]}'


def fins(pkts):
    return [p for p in pkts if p.flags & FIN]


REORDER_S = 0.01


def _pure_ack(p):
    return p.length == 0 and not p.flags & (SYN | FIN | RST)


def tsval_never_backwards(pkts, src):
    """True if no TSval from src is older than one it sent more than 10 ms
    before.  Closer than that, a host's own segments may leave out of order
    (veth on two CPUs): that is the network, not a clock going back, and
    a pass takes far longer than 10 ms, so a step back across one shows.
    A pure ACK is held only to earlier pure ACKs: Linux stamps paced data
    with its departure time, which may run tens of ms ahead of the clock
    that stamps ACKs (seen: the window probe of a rollback, 15 ticks
    behind the data sent 26 ms before it, under ASan)."""
    sent = [(p.ts, p.opts['ts'][0], _pure_ack(p)) for p in sent_by(pkts, src) if 'ts' in p.opts]
    top = {False: None, True: None}     # newest TSval of data / pure ACKs
    j = 0
    for ts, val, ack in sent:
        while j < len(sent) and sent[j][0] < ts - REORDER_S:
            kind = sent[j][2]
            if top[kind] is None or seq_before(top[kind], sent[j][1]):
                top[kind] = sent[j][1]
            j += 1
        for ref in ((True,) if ack else (False, True)):
            if top[ref] is not None and seq_before(val, top[ref]):
                return False
    return True


def tsval_hz(pkts, src, after=0.0):
    """How fast src's TSval clock ticks (per second of capture time) over
    its segments after `after`: about 1000 for a Linux millisecond clock.
    A restored clock whose TCP_TIMESTAMP value had bit 0 set by mistake
    ticks in microseconds (1e6), and wraps into the past for PAWS within
    36 minutes."""
    sent = [(p.ts, p.opts['ts'][0]) for p in sent_by(pkts, src)
            if 'ts' in p.opts and p.ts > after]
    if len(sent) < 2 or sent[-1][0] - sent[0][0] < 0.2:
        return None
    return ((sent[-1][1] - sent[0][1]) & 0xffffffff) / (sent[-1][0] - sent[0][0])


def isn(pkts, src):
    syns = [p for p in sent_by(pkts, src) if p.flags & SYN]
    assert syns, f'no SYN from {src} in the capture'
    return syns[0].seq


def first_fin(pkts, *ends):
    """Which of ends sent its first FIN first."""
    when = {end: min((p.ts for p in fins(sent_by(pkts, end))), default=float('inf'))
            for end in ends}
    return min(ends, key=when.get)


def assert_fin_after_data(pkts, src, nbytes):
    """src sent a FIN, and only right after byte nbytes of its stream."""
    first = isn(pkts, src)
    fs = fins(sent_by(pkts, src))
    assert fs, f'no FIN from {src}'
    for p in fs:
        at = (p.seq + p.length - first - 1) & MASK32
        assert at == nbytes, f'FIN from {src} after {at} bytes, not {nbytes}: {p}'
