# SPDX-License-Identifier: GPL-2.0-or-later
"""Container live migration with runc, unmodified, run from the host
namespace: the plugin installed in CRIU's plugin directory, CRIU's options
from the shipped configuration file (plugin/criu.conf), nothing else.

    peer --- router --- origin --- ctA   (the container on host A)
                  \\--- dest   --- ctB   (where it is restored: host B)

ipX lives in the container's namespace; origin and dest route it to their
container, and the router to origin or dest.  A container is checkpointed
on A mid-transfer, its bundle and images copied, and it is restored on B;
the peer's transfer completes with the right sha256 and its capture has no
RST.
"""
import hashlib
import os
import subprocess
import time

import pytest

from lib import cli
from lib.capture import Capture, assert_no_rst, connection
from lib.criu import asan_build
from lib.netns import hostport
from lib.runc import Runc, add_container_netns, available
from lib.traffic import wait_file

pytestmark = [
    pytest.mark.skipif(asan_build(), reason='an ASan plugin cannot load into criu'),
    pytest.mark.skipif(available() is not None, reason=str(available())),
]

MB = 1 << 20
HTTP_PORT = 8080
PEER_PORT = 7000


@pytest.fixture
def hosts(topo):
    """Two container namespaces: ctA behind origin, ctB behind dest; the
    router's way to the peer shaped to 3 MB/s, so that a transfer of tens
    of megabytes is still under way in the sending process seconds later
    (curl's --limit-rate lets a first burst through, and a server that has
    written all its file into the socket has exited: nothing left to
    migrate)."""
    add_container_netns(topo, 'origin', 'ctA')
    add_container_netns(topo, 'dest', 'ctB')
    topo.run('router', 'tc', 'qdisc', 'add', 'dev', 'to-peer', 'root', 'tbf',
             'rate', '24mbit', 'burst', '64kb', 'latency', '100ms')
    return topo


@pytest.fixture
def runc(tmp_path):
    r = Runc(tmp_path)
    yield r
    r.cleanup()


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def random_file(path, size):
    path.write_bytes(os.urandom(size))
    return path


def migrate(topo, runc, tmp, cid, bundle):
    """runc checkpoint on A, the bundle copied to B, runc restore there,
    the traffic switched to B: what a user does, in that order."""
    imgs, work_a, work_b = tmp / 'img', tmp / 'work-a', tmp / 'work-b'
    dump = runc.checkpoint(cid, imgs, work_a)
    assert runc.status(cid) is None or runc.status(cid) == 'stopped'
    b = Runc.copy(bundle, tmp / 'bundle-b', topo.ns['ctB'])
    restore = runc.restore(b, imgs, work_b)
    topo.switch_to('dest')
    return dump, restore, b


def assert_plugin_carried(dump, restore, n=1):
    assert f'tcpcp: {n} connection(s) of' in dump.log, dump.log[-3000:]
    assert 'locked and captured' in dump.log, dump.log[-3000:]
    assert f'restored {n} connection(s)' in restore.log, restore.log[-3000:]
    # CRIU runs in the host namespace: the plugin found the container's.
    assert 'gated there' in restore.log, restore.log[-3000:]
    for log in (dump.log, restore.log):
        errs = [l for l in log.splitlines() if 'tcpcp: Error' in l]
        assert not errs, errs


@pytest.mark.parametrize('family', [4, 6])
def test_runc_http_download(hosts, runc, tmp_path, installed, family):
    """busybox httpd in a container serves a file; unmodified curl at the
    peer downloads it, rate-limited; `runc checkpoint` mid-download on A,
    `runc restore` on B: curl's file has the right sha256, and the peer saw
    no RST."""
    topo = hosts
    bundle = tmp_path / 'bundle-a'
    bundle.mkdir()
    runc.bundle(bundle, f'httpd -f -p {HTTP_PORT} -h /www', topo.ns['ctA'])
    src = random_file(bundle / 'rootfs/www/big', 24 * MB)
    cid = runc.start(bundle)
    cli.wait_listening(topo, 'ctA', HTTP_PORT)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    got = tmp_path / 'got'
    url = f'http://{hostport(topo.ipx(family), HTTP_PORT)}/big'
    curl = topo.popen('peer', 'curl', '-sS', '-o', got, url,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert curl.poll() is None, f'curl ended early: {curl.communicate()}'
    assert len(runc_tasks(topo, 'ctA')) == 2, 'httpd has no child serving the download'
    dump, restore, _ = migrate(topo, runc, tmp_path, cid, bundle)
    out, err = curl.communicate(timeout=120)
    assert curl.returncode == 0, f'curl: exit {curl.returncode}: {err}'
    assert sha256(got) == sha256(src), 'the download differs from the file'
    assert_plugin_carried(dump, restore)
    pkts = connection(cap.stop(), (topo.ipx(family), HTTP_PORT))
    assert_no_rst(pkts)
    no_gate_left(topo, 'ctB')


@pytest.mark.parametrize('family', [4, 6])
def test_runc_container_opened(hosts, runc, tmp_path, installed, family):
    """The container opened the connection itself: busybox wget downloads
    from a server at the peer; migrated mid-download, the file it wrote
    on B is complete and right, and the peer saw no RST."""
    topo = hosts
    peer_addr = topo.addr('peer', family)
    src = random_file(tmp_path / 'src', 16 * MB)
    ready = tmp_path / 'server.ready'
    server = topo.popen('peer', 'python3', str(cli_script('slow_http.py')), peer_addr,
                        PEER_PORT, src, 2 * MB, ready, stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, text=True)
    wait_file(ready)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    bundle = tmp_path / 'bundle-a'
    bundle.mkdir()
    url = f'http://{hostport(peer_addr, PEER_PORT)}/file'
    # From ipX, so that the connection can follow the container to B.
    runc.bundle(bundle, f'wget -q -O /data/got {url}', topo.ns['ctA'])
    # busybox wget binds no source address: ipX is the only address the
    # container's routes choose for the peer, through src hints.
    for f, via in ((4, '10.77.5.1'), (6, 'fd77:5::1')):
        for ct in ('ctA', 'ctB'):
            topo.run(ct, 'ip', f'-{f}', 'route', 'replace', 'default', 'via', via,
                     'src', topo.ipx(f))
    cid = runc.start(bundle)
    time.sleep(2)
    assert server.poll() is None, f'server ended early: {server.communicate()}'
    dump, restore, b = migrate(topo, runc, tmp_path, cid, bundle)
    out, err = server.communicate(timeout=120)
    assert server.returncode == 0, f'server: exit {server.returncode}: {err}'
    runc.wait_stopped(restore.cid)
    assert sha256(b / 'rootfs/data/got') == sha256(src), 'the file on B differs'
    assert_plugin_carried(dump, restore)
    pkts = connection(cap.stop(), (peer_addr, PEER_PORT))
    assert_no_rst(pkts)
    no_gate_left(topo, 'ctB')


@pytest.mark.parametrize('what', ['listener', 'no-socket'])
def test_runc_no_tcp(hosts, runc, tmp_path, installed, what):
    """A container with a listener only, or with no socket at all:
    checkpoint and restore work, and the plugin says nothing and writes
    nothing."""
    topo = hosts
    bundle = tmp_path / 'bundle-a'
    bundle.mkdir()
    cmd = f'httpd -f -p {HTTP_PORT} -h /www' if what == 'listener' else 'sleep 1000'
    runc.bundle(bundle, cmd, topo.ns['ctA'])
    (bundle / 'rootfs/www/index.html').write_text('hello\n')
    cid = runc.start(bundle)
    if what == 'listener':
        cli.wait_listening(topo, 'ctA', HTTP_PORT)
    else:
        time.sleep(0.5)
    dump, restore, _ = migrate(topo, runc, tmp_path, cid, bundle)
    for log in (dump.log, restore.log):
        said = [l for l in log.splitlines() if 'tcpcp: ' in l]
        assert not said, said
    assert 'Plugin "tcpcp"' in dump.log, 'the plugin was not loaded'
    assert not list((tmp_path / 'img').glob('tcpcp-*')), 'an image of the plugin\'s'
    assert runc.status(restore.cid) == 'running'
    if what == 'listener':
        cli.wait_listening(topo, 'ctB', HTTP_PORT)
        r = topo.run('peer', 'curl', '-sS', f'http://{hostport(topo.ipx(4), HTTP_PORT)}/')
        assert r.stdout == 'hello\n'


def runc_tasks(topo, host):
    r = subprocess.run(['ip', 'netns', 'pids', topo.ns[host]], capture_output=True, text=True)
    return r.stdout.split()


def cli_script(name):
    from pathlib import Path
    return Path(__file__).parent / 'lib' / name


def no_gate_left(topo, host):
    assert cli.gate_entries(topo, host) == 0


# ---- podman ------------------------------------------------------------------

def shared_netns_name(topo, name, target):
    """/run/netns/<name> as a bind of the namespace target: the name a
    container's configuration holds, which on host B must be B's own
    namespace (as it would be on another machine)."""
    path = f'/run/netns/{topo.ns["origin"].rsplit("-", 1)[0]}-{name}'
    if os.path.ismount(path):
        subprocess.run(['umount', path], check=True)
    else:
        open(path, 'w').close()
        topo._created.append(os.path.basename(path))
    subprocess.run(['mount', '--bind', f'/run/netns/{topo.ns[target]}', path], check=True)
    return os.path.basename(path)


@pytest.fixture
def podmen(tmp_path):
    from lib.podman import Podman, available as podman_available
    why = podman_available()
    if why:
        pytest.skip(why)
    a, b = Podman(tmp_path, 'a'), Podman(tmp_path, 'b')
    yield a, b
    a.cleanup()
    b.cleanup()


def test_podman_http_download(hosts, podmen, tmp_path, installed):
    """The same migration with `podman container checkpoint --export` on
    host A and `podman container restore --import` on host B (podman
    stores of their own: B knows the container only from the export)."""
    from lib.runc import make_rootfs
    topo = hosts
    a, b = podmen
    rootfs = tmp_path / 'rootfs'
    make_rootfs(rootfs)
    src = random_file(rootfs / 'www/big', 24 * MB)
    a.import_rootfs(rootfs)
    a.copy_image_to(b, tmp_path / 'image.tar')
    ct = shared_netns_name(topo, 'ct', 'ctA')
    a.start('tcpcp-web', ct, 'httpd', '-f', '-p', HTTP_PORT, '-h', '/www')
    cli.wait_listening(topo, 'ctA', HTTP_PORT)
    cap = Capture(topo, 'peer', tmp_path / 'peer.pcap').start()
    got = tmp_path / 'got'
    url = f'http://{hostport(topo.ipx(4), HTTP_PORT)}/big'
    curl = topo.popen('peer', 'curl', '-sS', '-o', got, url, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    assert curl.poll() is None, f'curl ended early: {curl.communicate()}'
    export = tmp_path / 'checkpoint.tar.gz'
    dump = a.checkpoint('tcpcp-web', export)
    shared_netns_name(topo, 'ct', 'ctB')
    restore = b.restore('tcpcp-web', export)
    topo.switch_to('dest')
    out, err = curl.communicate(timeout=120)
    assert curl.returncode == 0, f'curl: exit {curl.returncode}: {err}'
    assert sha256(got) == sha256(src), 'the download differs from the file'
    assert_plugin_carried(dump, restore)
    assert_no_rst(connection(cap.stop(), (topo.ipx(4), HTTP_PORT)))
    no_gate_left(topo, 'ctB')
