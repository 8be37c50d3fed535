"""Helpers shared by the tests: which implementation is under test, running
real scripts with a real interpreter (with a deadline), and reading the
process table, descriptors and /dev/shm for leak checks."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import mpspawn

# On 2.7 the suite tests mpspawn; on Python 3 mpspawn *is* the standard library.
IS_MPSPAWN = sys.version_info[0] == 2
PY2 = sys.version_info[0] == 2

ALL_START_METHODS = [m for m in ('fork', 'spawn', 'forkserver')
                     if m in mpspawn.get_all_start_methods()]
NON_FORK_METHODS = [m for m in ALL_START_METHODS if m != 'fork']

# The directory holding the mpspawn package under test (installed or source).
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(mpspawn.__file__)))
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))

# Names in /dev/shm of the implementation under test (semaphores, shared
# memory, and the blocks tests create by name, which start with
# SHM_TEST_PREFIX).  The 2.7 and Python 3 runs use different names, so the
# two can run at the same time without seeing each other's entries.
if IS_MPSPAWN:
    SHM_TEST_PREFIX = 'mps-'
    SHM_PATTERNS = ('sem.mps-', 'mpsm_', SHM_TEST_PREFIX)
else:
    SHM_TEST_PREFIX = 'mp3-'
    SHM_PATTERNS = ('sem.mp-', 'psm_', SHM_TEST_PREFIX)


def monotonic():
    return getattr(time, 'monotonic', time.time)()


def child_env(extra=None, pythonpath=None):
    """The environment of a test's script: mpspawn and the tests importable
    (or only ``pythonpath`` if given), no start method preset."""
    env = dict(os.environ)
    path = [PACKAGE_PARENT, TESTS_DIR] if pythonpath is None else list(pythonpath)
    if env.get('PYTHONPATH') and pythonpath is None:
        path.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(path)
    env.pop('MPSPAWN_START_METHOD', None)
    if extra:
        env.update(extra)
    return env


class Result(object):
    def __init__(self, returncode, out, err, elapsed):
        self.returncode = returncode
        self.out = out
        self.err = err
        self.elapsed = elapsed

    def __repr__(self):
        return 'Result(rc=%r)\n--- stdout ---\n%s\n--- stderr ---\n%s' % (
            self.returncode, self.out, self.err)


def run_python(args, cwd=None, timeout=60, env=None, python=None, stdin_data=None,
               pythonpath=None):
    """Run ``python args...`` in its own session; kill the whole session if
    it outlives ``timeout``.  Returns a Result with text output."""
    cmd = [python or sys.executable] + list(args)
    start = monotonic()
    full_env = child_env(pythonpath=pythonpath)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(cmd, cwd=cwd, env=full_env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=os.setsid,
                            close_fds=True)
    import threading
    outputs = {}

    def communicate():
        outputs['out'], outputs['err'] = proc.communicate(stdin_data)
    reader = threading.Thread(target=communicate)
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        kill_session(proc.pid)
        reader.join(10)
        raise AssertionError('%s did not finish within %ss\nstdout: %s\nstderr: %s' % (
            ' '.join(cmd), timeout, outputs.get('out'), outputs.get('err')))
    # Anything the script left running in its session is a leak: kill it.
    kill_session(proc.pid)
    decode = lambda b: b.decode('utf-8', 'replace') if isinstance(b, bytes) else b
    return Result(proc.returncode, decode(outputs['out']), decode(outputs['err']),
                  monotonic() - start)


def kill_session(sid):
    for pid in session_members(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def proc_stats():
    """(pid, fields) for every process in /proc; ``fields`` are those of
    /proc/<pid>/stat after the command name: state ppid pgrp session ..."""
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (IOError, OSError):
            continue
        yield int(entry), fields


def session_members(sid):
    return [pid for pid, fields in proc_stats()
            if int(fields[3]) == sid and fields[0] != 'Z']


# How long a test waits for a child before calling it hung.
DEADLINE = 30


def start(ctx, target, *args):
    """Start ``target(*args)`` in a child of ``ctx``; the Process."""
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def join_ok(*procs):
    """Join the children (each within DEADLINE) and check they exited with 0."""
    for p in procs:
        p.join(DEADLINE)
        assert p.exitcode == 0, p


def recv(conn, timeout=DEADLINE):
    """The next object from ``conn``, failing the test if none arrives in time."""
    assert conn.poll(timeout), 'nothing arrived from the child within %ss' % timeout
    return conn.recv()


def write_file(path, text):
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent)
    with open(path, 'w') as f:
        f.write(textwrap.dedent(text).lstrip('\n'))
    return path


# -- leak accounting ----------------------------------------------------------

def process_info(pid):
    """(ppid, state, cmdline) of ``pid``, or None if it is gone."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            cmdline = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
    except (IOError, OSError):
        return None
    return int(fields[1]), fields[0], cmdline


def child_pids(parent=None):
    parent = parent or os.getpid()
    pids = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            info = process_info(int(entry))
            if info is not None and info[0] == parent:
                pids.add(int(entry))
    return pids


HELPER_MARKERS = ('resource_tracker', 'forkserver', 'semaphore_tracker')


def is_helper(pid):
    info = process_info(pid)
    return info is not None and any(m in info[2] for m in HELPER_MARKERS)


def open_fds():
    fds = {}
    for name in os.listdir('/proc/self/fd'):
        try:
            fds[int(name)] = os.readlink('/proc/self/fd/' + name)
        except OSError:
            pass
    return fds


def shm_entries():
    try:
        names = os.listdir('/dev/shm')
    except OSError:
        return set()
    return set(n for n in names if n.startswith(SHM_PATTERNS))


_PRIVATE_TEMPDIR = None


def use_private_tempdir():
    """Point tempfile (and, through TMPDIR, every child) at a fresh
    directory, removed at exit."""
    global _PRIVATE_TEMPDIR
    import atexit
    import shutil
    import tempfile
    if _PRIVATE_TEMPDIR is None:
        _PRIVATE_TEMPDIR = tempfile.mkdtemp(prefix='mpspawn-tests-')
        os.environ['TMPDIR'] = _PRIVATE_TEMPDIR
        tempfile.tempdir = _PRIVATE_TEMPDIR
        atexit.register(shutil.rmtree, _PRIVATE_TEMPDIR, True)
    return _PRIVATE_TEMPDIR


def temp_entries():
    import tempfile
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return set()
    return set(n for n in names if n.startswith(('pymp-', 'listener-', 'mps-')))


def wait_until(predicate, timeout=5.0, interval=0.02):
    deadline = monotonic() + timeout
    while True:
        if predicate():
            return True
        if monotonic() > deadline:
            return False
        time.sleep(interval)
