# SPDX-License-Identifier: GPL-2.0-or-later
"""`tcpcp edit`: rewriting the addresses and ports of ICI images (the ones
the CRIU plugin writes as tcpcp-*.img), for restores behind NAT.  Runs in
both builds: this is where the ASan build covers tools/edit.c."""
import subprocess
import time

import pytest

from lib import build, cli
from test_pass import MB, Stream


def edit(*args):
    return subprocess.run([build.tcpcp(), 'edit', *map(str, args)], capture_output=True,
                          text=True, env=build.env(), timeout=30)


@pytest.fixture
def image(topo, tmp_path):
    """A real image: a live stream's connection taken at the origin and
    given back (release), so the stream ends normally."""
    def take(family):
        s = Stream(topo, tmp_path, family, 1 * MB)
        time.sleep(0.3)
        img = s.take()
        cli.release(topo, 'origin', s.server.pid, s.fd)
        s.finish()
        return img
    return take


@pytest.mark.parametrize('family', [4, 6])
def test_edit(image, family):
    img = image(family)
    old = cli.show(img)
    new, peer = ('10.77.3.2', '10.77.1.9') if family == 4 else ('fd77:3::2', 'fd77:1::9')
    # Not selected: the file stays byte for byte as it was.
    before = img.read_bytes()
    r = edit('--local', new, '--only-port', old['local']['port'] + 1, img)
    assert r.returncode == 0 and img.read_bytes() == before, r.stderr
    # Wrong family: refused with a one-line reason, file untouched.
    other = 'fd77:3::2' if family == 4 else '10.77.3.2'
    r = edit('--local', other, img)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert 'address is IPv' in r.stderr and img.read_bytes() == before
    # Bad command lines: exit 2.
    assert edit('--local', 'not-an-address', img).returncode == 2
    assert edit('--local-port', 70000, img).returncode == 2
    assert edit(img).returncode == 2
    # The real edit.
    r = edit('--local', new, '--local-port', 7001, '--peer', peer, '--peer-port', 9,
             '--only-local', old['local']['addr'], img)
    assert r.returncode == 0, r.stderr
    ici = cli.show(img)
    assert ici['local'] == dict(old['local'], addr=new, port=7001)
    assert ici['peer'] == dict(old['peer'], addr=peer, port=9)
    assert {k: v for k, v in ici.items() if k not in ('local', 'peer')} == \
        {k: v for k, v in old.items() if k not in ('local', 'peer')}


def test_edit_refuses_garbage(tmp_path):
    bad = tmp_path / 'bad.img'
    bad.write_bytes(b'TCPI\0\0\0\x10' + b'\xff' * 16)
    r = edit('--local', '10.0.0.1', bad)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert bad.read_bytes() == b'TCPI\0\0\0\x10' + b'\xff' * 16
