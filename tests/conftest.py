"""Fixtures: the start-method matrix, and a leak check around every test.

A test fails if it leaves behind a child process, a descriptor, a /dev/shm
entry of ours or a multiprocessing temp file.  The long-lived helpers
(resource tracker, fork server) are started once before the first test so
that they are part of the baseline.
"""
import gc
import os
import signal
import sys

import pytest

import mpspawn
import support

# A private temp directory for the whole session (children inherit TMPDIR):
# the leak check then sees only this run's temp files.
support.use_private_tempdir()


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason='behaviour beyond Python 3: tested on mpspawn only')
    for item in items:
        if 'mpspawn_only' in item.keywords and not support.IS_MPSPAWN:
            item.add_marker(skip)


def pytest_report_header(config):
    impl = 'mpspawn %s' % mpspawn.__version__ if support.IS_MPSPAWN else \
        'the standard library (Python %d.%d)' % sys.version_info[:2]
    return 'multiprocessing under test: %s; start methods: %s' % (
        impl, ', '.join(support.ALL_START_METHODS))


@pytest.fixture(params=support.ALL_START_METHODS)
def start_method(request):
    return request.param


@pytest.fixture
def ctx(start_method):
    return mpspawn.get_context(start_method)


@pytest.fixture(params=support.NON_FORK_METHODS)
def spawning_ctx(request):
    """A context whose children do not inherit the parent's memory."""
    return mpspawn.get_context(request.param)


def _noop():
    pass


@pytest.fixture(scope='session', autouse=True)
def warm_helpers():
    """Start the per-tree helpers (and lazy process-wide state) once."""
    import mpspawn.util
    mpspawn.util.get_temp_dir()
    for method in support.ALL_START_METHODS:
        ctx = mpspawn.get_context(method)
        p = ctx.Process(target=os.getpid)
        p.start()
        p.join()
        # The first named semaphore starts the resource tracker.
        ctx.Lock()
    # The shared-memory heap keeps its arenas below 4 MB (and their
    # descriptors): make a 64 KiB one that later small blocks fit in.
    import mpspawn.heap
    mpspawn.heap.BufferWrapper(1 << 16)
    gc.collect()
    yield


def _children():
    """Our child processes but the helpers, and the fork server's children
    (ours in all but their parent pid, and named like the server)."""
    pids = set()
    for pid in support.child_pids():
        if not support.is_helper(pid):
            pids.add(pid)
        elif 'forkserver' in (support.process_info(pid) or (0, '', ''))[2]:
            pids |= support.child_pids(pid)
    return pids


def _leftovers(before):
    gc.collect()
    children = _children() - before['children']
    fds = set(support.open_fds()) - set(before['fds'])
    shm = support.shm_entries() - before['shm']
    tmp = support.temp_entries() - before['tmp']
    return children, fds, shm, tmp


@pytest.fixture(autouse=True)
def no_leaks(request, warm_helpers):
    if 'allow_leaks' in request.keywords:
        yield
        return
    before = {'children': _children(), 'fds': support.open_fds(),
              'shm': support.shm_entries(), 'tmp': support.temp_entries()}
    yield
    state = {}

    def clean():
        state['left'] = _leftovers(before)
        return not any(state['left'])
    if support.wait_until(clean, timeout=5.0):
        return
    children, fds, shm, tmp = state['left']
    now = support.open_fds()
    details = []
    if children:
        details.append('child processes: %s' % ', '.join(
            '%d (%s)' % (pid, (support.process_info(pid) or (0, '', '?'))[2])
            for pid in sorted(children)))
    if fds:
        details.append('descriptors: %s' % ', '.join(
            '%d -> %s' % (fd, now.get(fd)) for fd in sorted(fds)))
    if shm:
        details.append('/dev/shm entries: %s' % ', '.join(sorted(shm)))
    if tmp:
        details.append('temp files: %s' % ', '.join(sorted(tmp)))
    # Clean up so one leak does not fail every later test.
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    mpspawn.active_children()
    pytest.fail('test leaked ' + '; '.join(details), pytrace=False)
