"""Helpers for the robustness drivers (the scripts that run a scenario in a
process tree of their own) and for the tests that read their reports.

A driver bounds every blocking call it makes with ``bounded()``: a SIGALRM
timer that raises ``Hang`` in the main thread if the call outlives its
bound, so a call that would wait forever is counted instead of stalling the
run.  Drivers print one ``RESULT {json}`` line per finished unit of work;
``read_results()`` collects them.
"""
import contextlib
import json
import os
import signal
import sys
import time

# Full counts of the soak and fault tests (slow); reduced counts otherwise.
FULL = os.environ.get('MPSPAWN_SOAK_FULL', '') not in ('', '0')

HERE = os.path.dirname(os.path.abspath(__file__))

# The suite's support module, also for drivers run as scripts from here.
if os.path.dirname(HERE) not in sys.path:
    sys.path.append(os.path.dirname(HERE))
from support import proc_stats  # noqa: E402


def monotonic():
    from mpspawn import _compat
    return _compat.monotonic()


class Hang(Exception):
    """A blocking call did not return within its bound."""


@contextlib.contextmanager
def bounded(seconds, what):
    """Raise Hang if the block runs longer than ``seconds`` (main thread only)."""
    def on_alarm(signum, frame):
        raise Hang('%s did not return within %.1f s' % (what, seconds))
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def emit(kind, payload):
    """One report line on stdout (flushed: a driver killed later keeps it)."""
    sys.stdout.write('%s %s\n' % (kind, json.dumps(payload, sort_keys=True)))
    sys.stdout.flush()


def progress(text):
    sys.stderr.write('[%s] %s\n' % (time.strftime('%H:%M:%S'), text))
    sys.stderr.flush()


def read_results(output, kind='RESULT'):
    prefix = kind + ' '
    return [json.loads(line[len(prefix):]) for line in output.splitlines()
            if line.startswith(prefix)]


# -- what a process holds ---------------------------------------------------------

def open_fd_count(pid='self'):
    return len(os.listdir('/proc/%s/fd' % pid))


def thread_count(pid='self'):
    return len(os.listdir('/proc/%s/task' % pid))


def rss_kib(pid='self'):
    with open('/proc/%s/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


SHM_PREFIXES = ('sem.mps-', 'mps-', 'mpsm_')


def shm_entries():
    """Our entries in /dev/shm (semaphores, shared memory, heap arenas)."""
    try:
        return set(n for n in os.listdir('/dev/shm') if n.startswith(SHM_PREFIXES))
    except OSError:
        return set()


def process_table():
    """{pid: (ppid, session id, cmdline)} of every live (non-zombie) process."""
    table = {}
    for pid, fields in proc_stats():
        if fields[0] == 'Z':
            continue
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmdline = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')
        except (IOError, OSError):
            continue
        table[pid] = (int(fields[1]), int(fields[3]), cmdline)
    return table


def descendants(root):
    """Live descendants of ``root`` (by parent links)."""
    table = process_table()
    found = set()
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def session_processes(sid):
    return dict((pid, info[2]) for pid, info in process_table().items() if info[1] == sid)


def describe_helper(cmdline):
    """The kind of mpspawn process a command line belongs to."""
    for marker, kind in (('resource_tracker', 'resource tracker'),
                         ('forkserver', 'fork server or its child'),
                         ('spawn_main', 'spawned child'),
                         ('semaphore_tracker', 'tracker')):
        if marker in cmdline:
            return kind
    return 'other'


# -- running a driver -------------------------------------------------------------

class DriverRun(object):
    """What a driver did: its exit code, output, run time, and what its
    process tree left behind once it had a few seconds to wind down."""

    def __init__(self, name):
        self.name = name
        self.returncode = None
        self.out = ''
        self.err = ''
        self.elapsed = None
        self.timed_out = False
        self.leftovers = {}
        self.shm_left = set()

    def results(self, kind='RESULT'):
        return read_results(self.out, kind)

    def summary(self):
        found = self.results('SUMMARY')
        return found[-1] if found else None

    def __repr__(self):
        return ('%s: rc=%r, elapsed=%.1f s, timed_out=%r, leftovers=%r, shm_left=%r\n'
                '--- stdout (end) ---\n%s\n--- stderr (end) ---\n%s' % (
                    self.name, self.returncode, self.elapsed or 0, self.timed_out,
                    self.leftovers, sorted(self.shm_left), self.out[-3000:],
                    self.err[-5000:]))


def driver_env():
    import mpspawn
    env = dict(os.environ)
    tests_dir = os.path.dirname(HERE)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(mpspawn.__file__)))
    path = [HERE, tests_dir, package_parent]
    if env.get('PYTHONPATH'):
        path.append(env['PYTHONPATH'])
    env['PYTHONPATH'] = os.pathsep.join(path)
    env.pop('MPSPAWN_START_METHOD', None)
    return env


class Driver(object):
    """A driver script running in a session of its own.  Its stderr lines
    go to ``echo`` as they arrive (progress), and are kept."""

    def __init__(self, script, args, echo=None, env=None, name=None):
        import subprocess
        import threading
        full_env = driver_env()
        if env:
            full_env.update(env)
        self.run = DriverRun(name or '%s %s' % (script, ' '.join(str(a) for a in args)))
        self.start = monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, script)] + [str(a) for a in args],
            env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=os.setsid, close_fds=True)
        self.proc.stdin.close()
        self.sid = self.proc.pid
        self._out = []
        self._err = []
        self._readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self._out, None)),
                         threading.Thread(target=self._read, args=(self.proc.stderr, self._err, echo))]
        for t in self._readers:
            t.daemon = True
            t.start()

    def _read(self, stream, sink, echo):
        for line in iter(stream.readline, b''):
            text = line.decode('utf-8', 'replace')
            sink.append(text)
            if echo is not None and text.startswith('['):
                echo('%s: %s' % (self.run.name, text.rstrip()))

    def lines(self):
        return list(self._out)

    def wait_for_line(self, prefix, timeout):
        deadline = monotonic() + timeout
        while monotonic() < deadline:
            for line in list(self._out):
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        return None

    def finish(self, timeout, settle=8.0):
        """Wait until the driver ends (kill its session at ``timeout`` s
        from its start), then up to ``settle`` s for its tree to end;
        record and kill what is left."""
        run = self.run
        while self.proc.poll() is None:
            if monotonic() - self.start > timeout:
                run.timed_out = True
                kill_session(self.sid)
                break
            time.sleep(0.02)
        self.proc.wait()
        run.returncode = self.proc.returncode
        run.elapsed = monotonic() - self.start
        deadline = monotonic() + settle
        while session_processes(self.sid) and monotonic() < deadline:
            time.sleep(0.05)
        run.leftovers = session_processes(self.sid)
        kill_session(self.sid)
        for t in self._readers:
            t.join(10)
        run.out = ''.join(self._out)
        run.err = ''.join(self._err)
        return run


def kill_session(sid):
    for pid in session_processes(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def run_drivers(specs, timeout, echo=None, settle=8.0):
    """Run the drivers ``specs`` [(script, args), ...] at the same time.
    Returns their DriverRuns; each one's ``shm_left`` holds the /dev/shm
    entries that appeared while they ran and were still there after every
    tree had ended (shared by all: the entries do not say whose they are)."""
    shm_before = shm_entries()
    drivers = []
    try:
        for script, args in specs:
            drivers.append(Driver(script, args, echo=echo))
        runs = [d.finish(timeout, settle) for d in drivers]
    except BaseException:
        # Cut short (the test's timeout): leave no process behind.
        for d in drivers:
            kill_session(d.sid)
            d.proc.wait()
        raise
    deadline = monotonic() + settle
    while shm_entries() - shm_before and monotonic() < deadline:
        time.sleep(0.05)
    left = shm_entries() - shm_before
    for run in runs:
        run.shm_left = left
    return runs
