"""The forkserver start method.

Conformance tests (no marker) run against mpspawn on 2.7 and against the
standard library on Python 3.  What goes beyond Python 3 -- the socket's
privacy, HMAC authentication before any descriptor is received, preloading
``__main__``, reporting preload errors, the server's life tied to its
parent's -- is marked mpspawn_only (Python 3.11's forkserver listens on an
abstract socket and authenticates nothing).
"""
import errno
import hashlib
import hmac
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading

import pytest

import mpspawn
import support
from support import start
import targets
import targets_forkserver as tfs
from support import run_python, write_file

pytestmark = pytest.mark.skipif('forkserver' not in support.ALL_START_METHODS,
                                reason='forkserver is not available here')

TIMEOUT = 60


@pytest.fixture
def fsctx():
    return mpspawn.get_context('forkserver')


def forkserver_module():
    from mpspawn import forkserver
    return forkserver


def server_pid():
    forkserver = forkserver_module()
    forkserver.ensure_running()
    return forkserver._forkserver._forkserver_pid


def recv(conn, timeout=TIMEOUT):
    assert conn.poll(timeout), 'no message within %ss' % timeout
    return conn.recv()


def alive(pid):
    info = support.process_info(pid)
    return info is not None and info[1] != 'Z'


# ---------------------------------------------------------------------------
# Conformance
# ---------------------------------------------------------------------------

def test_available_and_named(fsctx):
    assert 'forkserver' in mpspawn.get_all_start_methods()
    assert fsctx.get_start_method() == 'forkserver'
    assert forkserver_module().get_inherited_fds() is None
    with pytest.raises(TypeError):
        fsctx.set_forkserver_preload([1])


def test_child_is_forked_by_the_server(fsctx):
    r, w = fsctx.Pipe(duplex=False)
    p = start(fsctx, tfs.report_lineage, w)
    w.close()
    pid, ppid, parent_pid, has_inherited_fds, tracker = recv(r)
    p.join(TIMEOUT)
    r.close()
    assert p.exitcode == 0
    assert pid == p.pid
    assert parent_pid == os.getpid()
    assert ppid == server_pid() != os.getpid()
    assert has_inherited_fds
    assert ppid not in [c.pid for c in mpspawn.active_children()]
    # The child reports to our resource tracker, not one of its own.
    st = os.fstat(_resource_tracker_fd())
    assert tracker == (st.st_dev, st.st_ino)


def test_ctrl_c_reaches_children_not_the_server(fsctx):
    r, w = fsctx.Pipe(duplex=False)
    p = start(fsctx, tfs.ready_then_sleep, w, 30)
    w.close()
    assert recv(r) == 'ready'
    r.close()
    server = server_pid()
    os.kill(server, signal.SIGINT)
    os.kill(p.pid, signal.SIGINT)
    p.join(TIMEOUT)
    assert p.exitcode == 1          # KeyboardInterrupt in the child
    assert server_pid() == server and alive(server)


def test_many_descriptors_reach_the_child(fsctx):
    pipes = [fsctx.Pipe(duplex=False) for _ in range(100)]
    p = start(fsctx, tfs.write_index_to_each, [w for _, w in pipes])
    for _, w in pipes:
        w.close()
    assert [recv(r) for r, _ in pipes] == list(range(100))
    p.join(TIMEOUT)
    assert p.exitcode == 0
    for r, _ in pipes:
        r.close()


def test_too_many_descriptors_refused_at_start(fsctx):
    pipes = [fsctx.Pipe(duplex=False) for _ in range(300)]
    try:
        p = fsctx.Process(target=tfs.write_index_to_each, args=([w for _, w in pipes],))
        with pytest.raises(ValueError):
            p.start()
    finally:
        for r, w in pipes:
            r.close()
            w.close()
    p = start(fsctx, targets.exit_with, 3)
    p.join(TIMEOUT)
    assert p.exitcode == 3


def test_concurrent_starts_from_threads(fsctx):
    results = {}

    def starter(k):
        procs = [start(fsctx, targets.exit_with, 10 * k + i) for i in range(3)]
        for p in procs:
            p.join(TIMEOUT)
        results[k] = [p.exitcode for p in procs]
    threads = [threading.Thread(target=starter, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert results == dict((k, [10 * k, 10 * k + 1, 10 * k + 2]) for k in range(4))


@pytest.mark.parametrize('method', ['fork', 'spawn', 'forkserver'])
def test_forkserver_child_starts_its_own_children(fsctx, method):
    if method not in support.ALL_START_METHODS:
        pytest.skip('%s not available' % method)
    r, w = fsctx.Pipe(duplex=False)
    p = start(fsctx, tfs.start_grandchild, w, method)
    w.close()
    exitcode, used_server, child_pid = recv(r)
    p.join(TIMEOUT)
    r.close()
    assert exitcode == 5
    assert p.exitcode == 0
    if method == 'forkserver':
        # A forkserver child runs a server of its own, as in Python 3.
        assert used_server not in (None, server_pid())


PRELOAD_ONCE_SCRIPT = '''
import os
import sys
import mpspawn
import counted

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    ctx.set_forkserver_preload(['counted'])
    pids = []
    for i in range(3):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=counted.work, args=(w,))
        p.start()
        w.close()
        pids.append(r.recv())
        p.join()
        assert p.exitcode == 0
    print('PARENT %d' % os.getpid())
    print('CHILDREN %s' % ' '.join(str(pid) for pid in pids))
'''

COUNTED_MODULE = '''
import os
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'counted.log'), 'a') as f:
    f.write('%d\\n' % os.getpid())

def work(conn):
    conn.send(os.getpid())
    conn.close()
'''


def _field(out, name):
    for line in out.splitlines():
        if line.startswith(name + ' '):
            return line.split()[1:]
    raise AssertionError('no %s line in %r' % (name, out))


def test_preloaded_module_runs_once_not_per_child(tmpdir):
    write_file(str(tmpdir.join('counted.py')), COUNTED_MODULE)
    write_file(str(tmpdir.join('app.py')), PRELOAD_ONCE_SCRIPT)
    result = run_python(['app.py'], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    imports = tmpdir.join('counted.log').read().split()
    parent = _field(result.out, 'PARENT')[0]
    children = _field(result.out, 'CHILDREN')
    # Once in the parent (which names the target), once in the server.
    assert len(imports) == 2, (imports, result)
    assert parent in imports
    assert not set(children) & set(imports)


RESEED_SCRIPT = '''
import mpspawn
import targets_forkserver
import hooked

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    ctx.set_forkserver_preload(['random', 'hooked'])
    numbers, hooks = [], []
    for i in range(3):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=targets_forkserver.random_numbers, args=(w,))
        p.start()
        w.close()
        numbers.append(r.recv())
        p.join()
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=hooked.report, args=(w,))
        p.start()
        w.close()
        hooks.append(r.recv())
        p.join()
    print('DISTINCT %d' % len(set(numbers)))
    print('HOOKS %s' % ' '.join(str(h) for h in hooks))
'''

HOOKED_MODULE = '''
import os
from mpspawn import util

class State(object):
    ran_in = None

STATE = State()

def _after_fork(state):
    state.ran_in = os.getpid()

util.register_after_fork(STATE, _after_fork)

def report(conn):
    conn.send(STATE.ran_in == os.getpid())
    conn.close()
'''


def test_children_reseed_random_and_run_after_fork_hooks(tmpdir):
    write_file(str(tmpdir.join('hooked.py')), HOOKED_MODULE)
    write_file(str(tmpdir.join('app.py')), RESEED_SCRIPT)
    result = run_python(['app.py'], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    assert _field(result.out, 'DISTINCT') == ['3'], result
    assert _field(result.out, 'HOOKS') == ['True'] * 3, result


SERVER_KILLED_SCRIPT = '''
import os
import signal
import sys
import time
import mpspawn
from mpspawn import forkserver
import targets

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    p = ctx.Process(target=targets.sleep, args=(60,))
    p.start()
    old_server = forkserver._forkserver._forkserver_pid
    os.kill(old_server, signal.SIGKILL)
    p.join(30)
    print('ORPHAN_EXIT %s' % p.exitcode)
    os.kill(p.pid, signal.SIGKILL)
    if sys.argv[1] == 'wait':
        # Python 3 sees the old server alive until it can be reaped.
        deadline = time.time() + 30
        while time.time() < deadline:
            with open('/proc/%d/stat' % old_server) as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    break
            time.sleep(0.01)
    q = ctx.Process(target=targets.exit_with, args=(4,))
    q.start()
    q.join(30)
    print('NEW_EXIT %s' % q.exitcode)
    print('NEW_SERVER %s' % (forkserver._forkserver._forkserver_pid != old_server))
'''


@pytest.mark.parametrize('when', [
    'wait',
    # Python 3 may still take the dying server for alive, and fail.
    pytest.param('at_once', marks=pytest.mark.mpspawn_only)])
def test_killed_server_is_replaced(tmpdir, when):
    write_file(str(tmpdir.join('app.py')), SERVER_KILLED_SCRIPT)
    result = run_python(['app.py', when], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    # The exit code of a child whose server died is lost (255, as Python 3).
    assert _field(result.out, 'ORPHAN_EXIT') == ['255'], result
    assert _field(result.out, 'NEW_EXIT') == ['4'], result
    assert _field(result.out, 'NEW_SERVER') == ['True'], result


@pytest.mark.mpspawn_only      # Python 3.11: "AF_UNIX path too long"
def test_works_with_a_long_tmpdir(tmpdir):
    """A socket path must fit in 104-108 bytes: a long TMPDIR still works."""
    deep = tmpdir.join('d' * 60, 'e' * 60)
    deep.ensure(dir=True)
    write_file(str(tmpdir.join('app.py')), """
import mpspawn
import targets

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    p = ctx.Process(target=targets.exit_with, args=(8,))
    p.start()
    p.join()
    print('EXIT %s' % p.exitcode)
""")
    result = run_python(['app.py'], cwd=str(tmpdir), timeout=TIMEOUT,
                        env={'TMPDIR': str(deep)})
    assert result.returncode == 0, result
    assert _field(result.out, 'EXIT') == ['8'], result


# ---------------------------------------------------------------------------
# Beyond Python 3: descriptors, a private authenticated socket, preloading
# __main__, lifecycle
# ---------------------------------------------------------------------------

def _stat_key(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


@pytest.mark.mpspawn_only
def test_child_holds_only_what_it_was_handed(fsctx):
    """A forkserver child gets no descriptor of the server (listener, alive
    and wake-up pipes, other children's status pipes, pending connections),
    and what it was handed arrives close-on-exec."""
    sleeper = start(fsctx, targets.sleep, 30)
    pending = _connect()
    try:
        server = server_pid()
        server_fds = {}
        for name in os.listdir('/proc/%d/fd' % server):
            try:
                server_fds[_stat_key('/proc/%d/fd/%s' % (server, name))] = int(name)
            except OSError:
                pass
        r, w = fsctx.Pipe(duplex=False)
        extra_r, extra_w = fsctx.Pipe(duplex=False)
        p = start(fsctx, tfs.describe_fds, w, extra_w)
        w.close()
        fds, cloexec = recv(r)
        p.join(TIMEOUT)
        r.close()
        extra_r.close()
        extra_w.close()
    finally:
        pending.close()
        sleeper.kill()
        sleeper.join(TIMEOUT)
    assert cloexec == [True, True]
    tracker = os.fstat(_resource_tracker_fd())
    for fd, (target, dev, ino) in fds.items():
        if fd <= 2 or target in ('/dev/urandom', '/dev/null'):
            continue
        assert not target.startswith('socket:'), (fd, target, fds)
        if (dev, ino) in server_fds:
            assert (dev, ino) == (tracker.st_dev, tracker.st_ino), (fd, target, fds)


def _resource_tracker_fd():
    from mpspawn import resource_tracker
    return resource_tracker.getfd()


@pytest.mark.mpspawn_only
def test_socket_is_private_filesystem_path():
    server_pid()
    address = forkserver_module()._forkserver._forkserver_address
    assert isinstance(address, str) and address.startswith('/'), address
    st = os.stat(address)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    directory = os.path.dirname(address)
    st = os.stat(directory)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.getuid()
    assert os.listdir(directory) == [os.path.basename(address)]
    with open('/proc/net/unix') as f:
        paths = [line.split()[-1] for line in f.read().splitlines()[1:]
                 if len(line.split()) > 7]
    assert address in paths
    assert not [p for p in paths if p.startswith('@') and 'pymp' in p]


@pytest.mark.mpspawn_only
def test_key_not_in_argv_or_environment():
    pid = server_pid()
    key = forkserver_module()._forkserver._forkserver_authkey
    assert isinstance(key, bytes) and len(key) >= 32
    for what in ('cmdline', 'environ'):
        with open('/proc/%d/%s' % (pid, what), 'rb') as f:
            data = f.read()
        for form in (key, key.hex() if hasattr(key, 'hex') else key.encode('hex'),
                     repr(key)):
            assert (form if isinstance(form, bytes) else form.encode()) not in data


# -- attacks through a raw socket ---------------------------------------------

CHALLENGE_PREFIX = b'#CHALLENGE#{sha256}'


def _connect():
    forkserver = forkserver_module()
    forkserver.ensure_running()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(forkserver._forkserver._forkserver_address)
    return s


def _recv_exact(s, n):
    data = b''
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError('server closed the connection')
        data += chunk
    return data


def _recv_frame(s):
    size, = struct.unpack('!i', _recv_exact(s, 4))
    return _recv_exact(s, size)


def _send_frame(s, payload):
    s.sendall(struct.pack('!i', len(payload)) + payload)


def _reply(key, challenge):
    assert challenge.startswith(CHALLENGE_PREFIX)
    message = challenge[len(CHALLENGE_PREFIX):]
    return b'{sha256}' + hmac.new(key, message, hashlib.sha256).digest()


def _key():
    return forkserver_module()._forkserver._forkserver_authkey


def _authenticate(s):
    _send_frame(s, _reply(_key(), _recv_frame(s)))
    assert _recv_frame(s) == b'#WELCOME#'


def _wait_dropped(s):
    """Read until the server closes the connection; what it sent."""
    received = b''
    while True:
        try:
            chunk = s.recv(4096)
        except socket.error as exc:
            if exc.args[0] == errno.ECONNRESET:
                return received
            raise
        if not chunk:
            return received
        received += chunk


def attack_random_bytes(s):
    s.sendall(os.urandom(4096))
    _wait_dropped(s)


def attack_wrong_key(s):
    _send_frame(s, _reply(os.urandom(32), _recv_frame(s)))
    assert _recv_frame(s) == b'#FAILURE#'
    _wait_dropped(s)


def attack_truncated_header(s):
    s.sendall(b'\x00\x00')
    s.shutdown(socket.SHUT_WR)
    _wait_dropped(s)


def attack_truncated_body(s):
    _recv_frame(s)
    s.sendall(struct.pack('!i', 40) + b'{sha256}01')
    s.shutdown(socket.SHUT_WR)
    _wait_dropped(s)


def attack_huge_length(s):
    s.sendall(struct.pack('!i', 0x7fffffff) + b'x' * 100)
    _wait_dropped(s)


def attack_negative_length(s):
    s.sendall(struct.pack('!i', -1) + struct.pack('!Q', 2 ** 40))
    _wait_dropped(s)


def attack_replay(s):
    # A valid exchange, recorded (it asks for nothing)...
    first = _connect()
    try:
        recorded = _reply(_key(), _recv_frame(first))
        _send_frame(first, recorded)
        assert _recv_frame(first) == b'#WELCOME#'
    finally:
        first.close()
    # ...is worthless against a fresh challenge.
    assert _recv_frame(s) != b''
    _send_frame(s, recorded)
    assert _recv_frame(s) == b'#FAILURE#'
    _wait_dropped(s)


def attack_fds_before_authenticating(s):
    """Descriptors pushed before the handshake are never taken in."""
    from mpspawn import reduction
    r, w = os.pipe()
    try:
        _send_frame(s, b'{sha256}' + b'0' * 32)
        _unless_dropped(reduction.sendfds, s, [w])
        os.close(w)
        w = None
        _wait_dropped(s)
        s.close()
        # No copy of the write end survives anywhere: end of file.
        assert support.wait_until(lambda: _readable(r), timeout=10)
        assert os.read(r, 1) == b''
    finally:
        for fd in (r, w):
            if fd is not None:
                os.close(fd)


def _unless_dropped(send, *args):
    """Send, unless the server has already hung up on us."""
    try:
        send(*args)
    except (OSError, IOError, socket.error) as exc:
        if exc.args[0] not in (errno.EPIPE, errno.ECONNRESET):
            raise


def _readable(fd):
    import select
    return bool(select.select([fd], [], [], 0)[0])


def attack_authenticated_bad_request(s):
    _authenticate(s)
    _send_frame(s, b'#FORK#100000')
    _wait_dropped(s)


def attack_authenticated_not_a_request(s):
    _authenticate(s)
    _send_frame(s, b'hello, server')
    _wait_dropped(s)


def _status_pipe_attack(s, announced, send):
    """Authenticate, announce ``announced`` descriptors, then misbehave with
    ``send(s, fds)``; the status pipe must never carry a pid."""
    data_r, data_w = os.pipe()
    status_r, status_w = os.pipe()
    try:
        _authenticate(s)
        _send_frame(s, ('#FORK#%d' % announced).encode('ascii'))
        _unless_dropped(send, s, [data_r, status_w, _resource_tracker_fd()])
        for fd in (data_r, status_w):
            os.close(fd)
        data_r = status_w = None
        _wait_dropped(s)
        s.close()
        assert support.wait_until(lambda: _readable(status_r), timeout=10)
        assert os.read(status_r, 8) == b''
    finally:
        for fd in (data_r, data_w, status_r, status_w):
            if fd is not None:
                os.close(fd)


def attack_fewer_fds_than_announced(s):
    from mpspawn import reduction
    _status_pipe_attack(s, 4, reduction.sendfds)


def attack_no_descriptors_behind_the_count(s):
    def send(s, fds):
        s.sendall(b'3\n' + b'xyz')
        s.shutdown(socket.SHUT_WR)
    _status_pipe_attack(s, 3, send)


def attack_hang_up_half_way_through_the_descriptors(s):
    from mpspawn import _compat

    def send(s, fds):
        s.sendall(b'4\n')
        for fd in fds[:2]:
            _compat.sendfd(s.fileno(), fd)
        s.shutdown(socket.SHUT_WR)
    _status_pipe_attack(s, 4, send)


ATTACKS = sorted(name for name in dir(sys.modules[__name__]) if name.startswith('attack_'))


def _server_fd_count(pid):
    return len(os.listdir('/proc/%d/fd' % pid))


@pytest.mark.mpspawn_only
@pytest.mark.parametrize('attack', ATTACKS)
def test_server_survives_and_forks_nothing(fsctx, attack):
    pid = server_pid()
    assert support.child_pids(pid) == set()
    fd_count = _server_fd_count(pid)
    s = _connect()
    try:
        globals()[attack](s)
        assert support.child_pids(pid) == set()
    finally:
        s.close()
    # The same server still serves, and holds nothing more than before.
    p = start(fsctx, targets.exit_with, 9)
    p.join(TIMEOUT)
    assert p.exitcode == 9
    assert server_pid() == pid
    assert support.child_pids(pid) == set()
    assert support.wait_until(lambda: _server_fd_count(pid) == fd_count, timeout=10), \
        os.listdir('/proc/%d/fd' % pid)


@pytest.mark.mpspawn_only
def test_stalled_connections_do_not_hold_up_requests(fsctx):
    """Connections that never authenticate (more of them than the server
    keeps pending) cannot delay a legitimate request."""
    pid = server_pid()
    fd_count = _server_fd_count(pid)
    stalled = []
    try:
        for i in range(80):
            s = _connect()
            if i % 2:
                s.sendall(b'\x00\x00\x00')      # half a frame header
            stalled.append(s)
        p = start(fsctx, targets.exit_with, 2)
        # Were the server waiting on them, this would take 80 x its timeout.
        p.join(TIMEOUT)
        assert p.exitcode == 2
    finally:
        for s in stalled:
            s.close()
    assert server_pid() == pid
    assert support.wait_until(lambda: _server_fd_count(pid) == fd_count, timeout=10)


# -- preloading ----------------------------------------------------------------

MAIN_PRELOAD_SCRIPT = '''
import os
import sys
import mpspawn

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'main.log'), 'a') as f:
    f.write('%s %d\\n' % (__name__, os.getpid()))

def work(conn):
    conn.send((os.getpid(), __name__, FACTOR * 2))
    conn.close()

FACTOR = 21

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    if sys.argv[1] == 'none':
        ctx.set_forkserver_preload([])
    elif sys.argv[1] == 'explicit':
        ctx.set_forkserver_preload(['__main__'])
    seen = []
    for i in range(3):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=work, args=(w,))
        p.start()
        w.close()
        seen.append(r.recv())
        p.join()
        assert p.exitcode == 0
    print('PARENT %d' % os.getpid())
    print('CHILDREN %s' % ' '.join('%d:%s:%d' % item for item in seen))
'''


@pytest.mark.mpspawn_only
@pytest.mark.parametrize('how', ['script', 'module'])
@pytest.mark.parametrize('preload', ['default', 'explicit', 'none'])
def test_main_module_preloaded_once(tmpdir, how, preload):
    write_file(str(tmpdir.join('mainpreload.py')), MAIN_PRELOAD_SCRIPT)
    args = ['mainpreload.py'] if how == 'script' else ['-m', 'mainpreload']
    result = run_python(args + [preload], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    parent = int(_field(result.out, 'PARENT')[0])
    children = [item.split(':') for item in _field(result.out, 'CHILDREN')]
    assert [(name, value) for _, name, value in children] == [('__mp_main__', '42')] * 3
    runs = [line.split() for line in tmpdir.join('main.log').read().splitlines()]
    assert runs[0] == ['__main__', str(parent)]
    child_pids = set(pid for pid, _, _ in children)
    if preload == 'none':
        # Each child rebuilds __main__ itself, as a spawned child does.
        assert sorted(pid for _, pid in runs[1:]) == sorted(child_pids)
    else:
        # Once more in the server, never in a child.
        assert len(runs) == 2, runs
        assert runs[1][0] == '__mp_main__'
        assert runs[1][1] not in child_pids


BROKEN_PRELOAD_SCRIPT = '''
import mpspawn
import targets

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    ctx.set_forkserver_preload(['no_such_module_xyz', 'broken', 'targets'])
    p = ctx.Process(target=targets.exit_with, args=(6,))
    p.start()
    p.join()
    print('EXIT %s' % p.exitcode)
'''


@pytest.mark.mpspawn_only
def test_preload_errors_are_reported(tmpdir):
    write_file(str(tmpdir.join('broken.py')), 'raise ValueError("broken at import")\n')
    write_file(str(tmpdir.join('app.py')), BROKEN_PRELOAD_SCRIPT)
    result = run_python(['app.py'], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    assert _field(result.out, 'EXIT') == ['6'], result
    # The server's traceback, and a warning in the parent, for each.
    assert 'could not preload no_such_module_xyz' in result.err, result
    assert 'could not preload broken' in result.err, result
    assert 'ValueError: broken at import' in result.err, result
    assert "RuntimeWarning: fork server: could not preload module 'broken'" in result.err, result
    assert "could not preload module 'no_such_module_xyz'" in result.err, result
    assert 'targets' not in result.err.replace('import targets', ''), result


NOISY_MODULE = '''
import sys
sys.stdout.write('PRELOAD-NOISE\\n')   # left in the buffer: stdout is a pipe
'''

NOISY_SCRIPT = '''
import mpspawn
import targets_forkserver

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    ctx.set_forkserver_preload(['noisy'])
    for i in range(3):
        p = ctx.Process(target=targets_forkserver.print_and_exit, args=('CHILD %d\\n' % i,))
        p.start()
        p.join()
'''


@pytest.mark.mpspawn_only      # Python 3.11 repeats it in every child (gh-98552)
def test_server_output_not_duplicated_in_children(tmpdir):
    write_file(str(tmpdir.join('noisy.py')), NOISY_MODULE)
    write_file(str(tmpdir.join('app.py')), NOISY_SCRIPT)
    # Buffered output, as by default (an empty value means unset).
    result = run_python(['app.py'], cwd=str(tmpdir), timeout=TIMEOUT,
                        env={'PYTHONUNBUFFERED': ''})
    assert result.returncode == 0, result
    assert result.out.count('PRELOAD-NOISE') == 1, result
    assert sorted(line for line in result.out.splitlines() if line.startswith('CHILD')) == \
        ['CHILD 0', 'CHILD 1', 'CHILD 2'], result


# -- lifecycle -----------------------------------------------------------------

LIFECYCLE_SCRIPT = '''
import os
import signal
import sys
import mpspawn
from mpspawn import forkserver, resource_tracker
import targets_forkserver

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    print('SERVER_BEFORE %s' % forkserver._forkserver._forkserver_pid)
    lock = ctx.Lock()
    shm_file = '/dev/shm/mpspawn-fstest-%d' % os.getpid()
    open(shm_file, 'w').close()
    resource_tracker.register(shm_file, 'file')
    children = []
    for i in range(2):
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=targets_forkserver.wait_for_parent, args=(w,), daemon=True)
        p.start()
        w.close()
        children.append(r.recv())
    lingering = None
    if sys.argv[1] == 'kill' and 'fork' in mpspawn.get_all_start_methods():
        # A fork child inherits the alive pipe's write end: it must not keep
        # the fork server running once the parent is gone.
        r, w = ctx.Pipe(duplex=False)
        p = mpspawn.get_context('fork').Process(target=targets_forkserver.outlive_parent,
                                                args=(w, 4))
        p.start()
        w.close()
        lingering = r.recv()
    print('LINGERING %s' % lingering)
    print('SERVER %d' % forkserver._forkserver._forkserver_pid)
    print('DIR %s' % os.path.dirname(forkserver._forkserver._forkserver_address))
    print('CHILDREN %s' % ' '.join(str(pid) for pid in children))
    print('SHM %s %s' % (os.path.basename(shm_file), 'sem.' + lock._name.lstrip('/')))
    sys.stdout.flush()
    if sys.argv[1] == 'kill':
        os.kill(os.getpid(), signal.SIGKILL)
    lock = None
    resource_tracker.unregister(shm_file, 'file')
    os.unlink(shm_file)
'''


def _run_detached(tmpdir, args):
    """Run a script in its own session, output to a file; wait for it."""
    out_path = str(tmpdir.join('out.txt'))
    with open(out_path, 'w') as out:
        proc = subprocess.Popen([sys.executable] + args, cwd=str(tmpdir), stdout=out,
                                stderr=subprocess.STDOUT, env=support.child_env(),
                                preexec_fn=os.setsid, close_fds=True)
    assert support.wait_until(lambda: proc.poll() is not None, timeout=TIMEOUT), \
        'the script did not end'
    with open(out_path) as f:
        return proc, f.read()


@pytest.mark.mpspawn_only
@pytest.mark.parametrize('end', ['kill', 'exit'])
def test_server_and_children_end_with_the_parent(tmpdir, end):
    """SIGKILL of the parent (or a normal exit): the server, its children,
    the socket's directory and the parent's /dev/shm entries are all gone
    within seconds."""
    write_file(str(tmpdir.join('app.py')), LIFECYCLE_SCRIPT)
    proc, out = _run_detached(tmpdir, ['app.py', end])
    try:
        assert proc.returncode == (-signal.SIGKILL if end == 'kill' else 0), out
        assert _field(out, 'SERVER_BEFORE') == ['None'], out   # started on first use
        server = int(_field(out, 'SERVER')[0])
        directory = _field(out, 'DIR')[0]
        children = [int(pid) for pid in _field(out, 'CHILDREN')]
        shm = _field(out, 'SHM')

        lingering = _field(out, 'LINGERING')[0]
        if lingering != 'None':
            # The server goes while the fork child still lives.  (The
            # forkserver children wait for it: it inherited the write ends
            # of their parent sentinels, as any fork child does.)
            assert support.wait_until(lambda: not alive(server), timeout=10)
            assert alive(int(lingering)), out
            children.append(int(lingering))

        def all_gone():
            return (not any(alive(pid) for pid in [server] + children) and
                    not os.path.exists(directory) and
                    not any(os.path.exists('/dev/shm/' + name) for name in shm))
        assert support.wait_until(all_gone, timeout=15), (
            out, [(pid, support.process_info(pid)) for pid in [server] + children],
            os.path.exists(directory), [n for n in shm if os.path.exists('/dev/shm/' + n)])
        if end == 'exit':
            assert 'leaked' not in out, out
    finally:
        support.kill_session(proc.pid)
        # If it failed, the tracker may have been killed before cleaning up.
        for name in _field(out, 'SHM') if 'SHM ' in out else ():
            if name.startswith(('sem.mps-', 'mpspawn-fstest-')):
                try:
                    os.unlink('/dev/shm/' + name)
                except OSError:
                    pass


FROZEN_APP = '''
import os
import sys
sys.frozen = True
sys.executable = os.environ['FROZEN_EXE']
import mpspawn as multiprocessing

def work(conn):
    conn.send(('child ran', sys.frozen, os.getppid()))
    conn.close()

if __name__ == '__main__':
    multiprocessing.freeze_support()
    from mpspawn import forkserver
    ctx = multiprocessing.get_context('forkserver')
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=work, args=(w,))
    p.start()
    w.close()
    message, frozen, ppid = r.recv()
    p.join()
    with open('/proc/%d/cmdline' % ppid, 'rb') as f:
        server_argv = f.read().split(b'\\0')
    print('GOT %r %r' % (message, frozen))
    print('SERVER IS %s' % ('fork server' if ppid == forkserver._forkserver._forkserver_pid else ppid))
    print('SERVER ARGV %r' % (server_argv[2:4],))
    print('EXIT %s' % p.exitcode)
'''


@pytest.mark.mpspawn_only
def test_frozen_executable_runs_the_fork_server(tmpdir):
    """In a frozen program the fork server is the program itself started
    with a marker argument, which freeze_support() dispatches."""
    app = write_file(str(tmpdir.join('frozen_app.py')), FROZEN_APP)
    exe = write_file(str(tmpdir.join('frozen-exe')), '''
        #!/bin/sh
        exec %s %s "$@"
    ''' % (sys.executable, app))
    os.chmod(exe, 0o755)
    result = run_python([], python=exe, cwd=str(tmpdir), env={'FROZEN_EXE': exe},
                        timeout=TIMEOUT)
    assert result.returncode == 0, result
    assert "GOT 'child ran' True" in result.out, result
    assert 'SERVER IS fork server' in result.out, result
    assert "SERVER ARGV ['--mpspawn-forkserver', '(3, 4, 5, 6)']" in result.out, result
    assert 'EXIT 0' in result.out, result


SNAPSHOT_MODULE = '''
import sys
from mpspawn import forkserver

_run_child = forkserver._run_child

def _snapshot_then_run(*args):
    forkserver.MODULES_AT_FORK = set(k for k, v in sys.modules.items() if v is not None)
    return _run_child(*args)

forkserver._run_child = _snapshot_then_run
'''

FOOTPRINT_SCRIPT = '''
import sys
import mpspawn

def report(conn, lock, queue):
    from mpspawn import forkserver
    now = set(k for k, v in sys.modules.items() if v is not None)
    with lock:
        queue.put('used')
    conn.send(sorted(now - forkserver.MODULES_AT_FORK))
    conn.close()

if __name__ == '__main__':
    ctx = mpspawn.get_context('forkserver')
    ctx.set_forkserver_preload(['__main__', 'snapshot'])
    queue = ctx.Queue()
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=report, args=(w, ctx.Lock(), queue))
    p.start()
    w.close()
    print('NEW %s' % ' '.join(r.recv()))
    print('QUEUE %s' % queue.get(timeout=30))
    p.join()
'''


@pytest.mark.mpspawn_only
def test_child_imports_nothing_after_the_fork(tmpdir):
    """Start-up speed: what a child's bootstrap and the usual objects (a
    Lock, a Queue, a Pipe) need is imported once, in the server."""
    write_file(str(tmpdir.join('snapshot.py')), SNAPSHOT_MODULE)
    write_file(str(tmpdir.join('app.py')), FOOTPRINT_SCRIPT)
    result = run_python(['app.py'], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    assert _field(result.out, 'QUEUE') == ['used'], result
    assert _field(result.out, 'NEW') == [], result
