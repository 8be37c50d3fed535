"""``python -m mpspawn``: a self-check and a demonstration of the fork hazard.

Prints the version, the platform, the available start methods and the
default; starts a child with each method and reports its start-up time next
to a bare interpreter start; then shows why spawn exists: a thread holds a
logging handler's lock while a child that logs is started.  A forked child
inherits the lock held by a thread that does not exist in it and blocks
forever (detected with a timeout, reported, killed); a spawned child starts
clean.  Exit status 0 when the spawn checks pass.

Runs the same way on Python 3, where mpspawn is the standard library.
"""
from __future__ import print_function

import logging
import os
import platform
import subprocess
import sys
import threading
import time

import mpspawn
from mpspawn import _compat

HANG_TIMEOUT = 3.0
SAMPLES = 5

_demo_logger = logging.getLogger('mpspawn.selfcheck.demo')
_demo_logger.addHandler(logging.NullHandler())


def _log_something():
    """The child's work in the demo: log one line (takes the handler lock)."""
    _demo_logger.warning('child %d logged', os.getpid())


class _SlowHandler(logging.Handler):
    """A handler whose emit() holds the handler lock for a while, as a
    handler writing to a slow disk or socket does."""

    def __init__(self, entered):
        logging.Handler.__init__(self)
        self.entered = entered

    def emit(self, record):
        self.entered.set()
        time.sleep(HANG_TIMEOUT + 2)


def _median(values):
    values = sorted(values)
    return values[len(values) // 2]


def _time_start_join(ctx, samples=SAMPLES):
    times = []
    for _ in range(samples):
        start = time.time()
        # A builtin target: the child imports nothing for it, so this times
        # the start method itself.
        p = ctx.Process(target=os.getpid)
        p.start()
        p.join()
        times.append(time.time() - start)
        if p.exitcode != 0:
            raise RuntimeError('child exited with %s' % p.exitcode)
    return _median(times)


def _time_bare_interpreter(samples=SAMPLES):
    times = []
    with open(os.devnull, 'wb') as devnull:
        for _ in range(samples):
            start = time.time()
            subprocess.call([sys.executable, '-c', 'pass'], stdout=devnull, stderr=devnull)
            times.append(time.time() - start)
    return _median(times)


def _hazard(method):
    """Start a child that logs while another thread holds the handler lock.
    Returns (ok, description)."""
    ctx = mpspawn.get_context(method)
    entered = threading.Event()
    handler = _SlowHandler(entered)
    _demo_logger.addHandler(handler)
    _demo_logger.propagate = False
    holder = threading.Thread(target=_demo_logger.warning, args=('parent thread logs slowly',))
    holder.daemon = True
    holder.start()
    try:
        entered.wait(5)
        start = time.time()
        p = ctx.Process(target=_log_something)
        p.start()
        p.join(HANG_TIMEOUT)
        elapsed = time.time() - start
        if p.is_alive():
            p.kill()
            p.join()
            return False, 'HANG: the child was still blocked on the inherited lock ' \
                          'after %.1f s (killed it)' % elapsed
        if p.exitcode != 0:
            return False, 'child failed with exit code %s' % p.exitcode
        return True, 'ok: the child logged and exited in %.0f ms' % (elapsed * 1000)
    finally:
        _demo_logger.removeHandler(handler)
        holder.join()


def _not_byte_compiled():
    """Whether mpspawn's modules lack bytecode files (every spawned child
    would then compile them again at start-up)."""
    if not _compat.PY2:
        return False
    package_dir = os.path.dirname(os.path.abspath(mpspawn.__file__))
    sources = [f for f in os.listdir(package_dir) if f.endswith('.py')]
    suffix = 'o' if sys.flags.optimize else 'c'
    return any(not os.path.exists(os.path.join(package_dir, f + suffix)) for f in sources)


def main(argv=None):
    print('mpspawn %s on Python %s (%s, %s)' % (
        getattr(mpspawn, '__version__', 'stdlib'), platform.python_version(),
        sys.platform, platform.machine()))
    if not _compat.PY2:
        print('  (on Python 3, mpspawn is the standard library multiprocessing)')
    methods = mpspawn.get_all_start_methods()
    default = mpspawn.get_start_method()
    print('start methods: %s (default: %s)' % (', '.join(methods), default))
    failures = []

    if _not_byte_compiled():
        print('note: mpspawn is not byte-compiled here (is PYTHONDONTWRITEBYTECODE set?): '
              'every spawned child compiles it again; run '
              '"python -m compileall %s" to fix' % os.path.dirname(os.path.abspath(mpspawn.__file__)))
    bare = _time_bare_interpreter()
    print('bare interpreter start (python -c pass): %.1f ms' % (bare * 1000))
    print('child start+join, median of %d:' % SAMPLES)
    for method in methods:
        try:
            elapsed = _time_start_join(mpspawn.get_context(method))
        except Exception as exc:
            print('  %-10s FAILED: %s' % (method, exc))
            if method != 'fork':
                failures.append(method)
            continue
        extra = ''
        if method == 'spawn':
            extra = '  (%.2fx the bare interpreter)' % (elapsed / bare)
        print('  %-10s %6.1f ms%s' % (method, elapsed * 1000, extra))

    print('fork hazard: a thread holds a logging handler lock while a child that '
          'logs is started')
    for method in methods:
        ok, text = _hazard(method)
        print('  %-10s %s' % (method, text))
        if not ok and method != 'fork':
            failures.append(method)
    if failures:
        print('self-check FAILED for: %s' % ', '.join(sorted(set(failures))))
        return 1
    print('self-check passed')
    return 0
