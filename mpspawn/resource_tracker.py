"""The resource tracker: one helper process per process tree that unlinks the
named semaphores, shared-memory segments and files its processes registered
and did not release.

Every process of the tree holds the write end of the tracker's pipe
(spawned children receive it, forked children inherit it).  When the last
holder is gone the tracker reads end-of-file, unlinks what is still
registered, says once what it cleaned, and exits.  It ignores SIGINT and
SIGTERM (Ctrl-C at a terminal reaches the whole foreground group) and is
relaunched, with one warning, if it was killed.
"""
import errno
import os
import signal
import sys

from . import util, _compat

__all__ = ['ensure_running', 'register', 'unregister', 'getfd', 'main']

_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# A line written to a pipe in one write() of at most PIPE_BUF bytes is never
# interleaved with another process's line.
_PIPE_BUF = 512


def _unlink_semaphore(name):
    _compat.sem_api().unlink(name)


def _unlink_shared_memory(name):
    _compat.shm_unlink(name)


def _remove_folder(path):
    import shutil
    shutil.rmtree(path)


_CLEANERS = {
    'noop': lambda name: None,
    'semaphore': _unlink_semaphore,
    'shared_memory': _unlink_shared_memory,
    'file': os.unlink,
    'folder': _remove_folder,
}


class ResourceTracker(object):
    """The client side: launches the tracker and sends it (un)registrations."""

    def __init__(self):
        self._lock = _compat.allocate_lock()
        self._lock_owner = None
        self._fd = None
        self._pid = None
        # What this process registered and has not released, for a relaunch.
        self._mine = {}

    def getfd(self):
        self.ensure_running()
        return self._fd

    def ensure_running(self):
        """Launch the tracker unless one is already reachable."""
        with _Reentrant(self):
            if self._fd is not None:
                if self._send_line(b'PROBE:noop:0\n'):
                    return
                self._forget_dead_tracker()
                sys.stderr.write('mpspawn resource_tracker: the tracker process died '
                                 'unexpectedly; relaunching it and registering this '
                                 "process's %d live resource(s) again\n" % len(self._mine))
            self._launch()
            for (rtype, name) in list(self._mine):
                self._send_line(_line('REGISTER', rtype, name))

    def _launch(self):
        from . import spawn
        r, w = _compat.pipe()
        try:
            cmd = spawn.helper_command('resource_tracker', [_compat.FIRST_CHILD_FD],
                                       spawn.TRACKER_FLAG)
            self._pid = _compat.spawn_with_fds(spawn.get_executable(), cmd, [r],
                                               blocked_signals=_IGNORED_SIGNALS)
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        self._fd = w

    def _forget_dead_tracker(self):
        try:
            os.close(self._fd)
        except OSError:
            pass
        self._fd = None
        if self._pid is not None:
            try:
                _compat.waitpid(self._pid, os.WNOHANG)
            except OSError:
                pass
            self._pid = None

    def _send_line(self, line):
        try:
            _compat.retry_on_eintr(os.write, self._fd, line)
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF):
                return False
            raise
        return True

    def register(self, name, rtype):
        """Have the tracker unlink ``name`` if nobody unregisters it."""
        self._mine[(rtype, name)] = True
        self._send('REGISTER', name, rtype)

    def unregister(self, name, rtype):
        """``name`` was released: the tracker forgets it."""
        self._mine.pop((rtype, name), None)
        self._send('UNREGISTER', name, rtype)

    def _send(self, cmd, name, rtype):
        line = _line(cmd, rtype, name)
        if len(line) > _PIPE_BUF:
            raise ValueError('resource name too long for the tracker: %r' % (name,))
        with _Reentrant(self):
            if self._fd is None or not self._send_line(line):
                self.ensure_running()
                self._send_line(line)

    def _stop(self):
        """Close our end and wait for the tracker (tests and at-exit use)."""
        with _Reentrant(self):
            if self._fd is None:
                return
            os.close(self._fd)
            self._fd = None
            if self._pid is not None:
                try:
                    _compat.waitpid(self._pid, 0)
                except OSError:
                    pass
                self._pid = None


class _Reentrant(object):
    """Holds the tracker's lock; a nested call from the same thread (a
    finalizer run by the garbage collector during a launch) goes through."""

    def __init__(self, tracker):
        self._tracker = tracker
        self._acquired = False

    def __enter__(self):
        tracker = self._tracker
        if tracker._lock_owner != _compat.get_ident():
            tracker._lock.acquire()
            tracker._lock_owner = _compat.get_ident()
            self._acquired = True

    def __exit__(self, *exc):
        if self._acquired:
            self._tracker._lock_owner = None
            self._tracker._lock.release()


def _line(cmd, rtype, name):
    if not isinstance(name, bytes):
        name = name.encode('utf-8')
    return ('%s:%s:' % (cmd, rtype)).encode('ascii') + name + b'\n'


_resource_tracker = ResourceTracker()


def _forget_inherited(tracker):
    # A forked child registered none of its parent's resources: were it to
    # relaunch a dead tracker, that tracker must not take charge of (and,
    # when the child's tree ends, unlink) what the parent still uses.
    tracker._mine = {}


util.register_after_fork(_resource_tracker, _forget_inherited)
ensure_running = _resource_tracker.ensure_running
register = _resource_tracker.register
unregister = _resource_tracker.unregister
getfd = _resource_tracker.getfd


def main(fd):
    """The tracker process: collect registrations from ``fd`` until every
    writer is gone, then clean up what is left."""
    for signum in _IGNORED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    for stream in (sys.stdin,):
        try:
            stream.close()
        except Exception:
            pass
    registered = {}
    try:
        with os.fdopen(fd, 'rb') as lines:
            for raw in lines:
                try:
                    cmd, rtype, name = raw.rstrip(b'\n').split(b':', 2)
                    cmd = cmd.decode('ascii')
                    rtype = rtype.decode('ascii')
                    name = name.decode('utf-8')
                    if rtype not in _CLEANERS:
                        raise ValueError('unknown resource type %r' % rtype)
                    if cmd == 'REGISTER':
                        registered.setdefault(rtype, set()).add(name)
                    elif cmd == 'UNREGISTER':
                        registered.get(rtype, set()).discard(name)
                    elif cmd != 'PROBE':
                        raise ValueError('unknown command %r' % cmd)
                except Exception as exc:
                    sys.stderr.write('mpspawn resource_tracker: ignored bad line %r: %s\n'
                                     % (raw[:100], exc))
    finally:
        _clean_up(registered)


def _clean_up(registered):
    leaked = [(rtype, name) for rtype, names in sorted(registered.items())
              for name in sorted(names) if rtype != 'noop']
    if not leaked:
        return
    sys.stderr.write('mpspawn resource_tracker: cleaning up %d leaked resource(s) '
                     'that their processes did not release: %s\n'
                     % (len(leaked), ', '.join('%s %s' % item for item in leaked)))
    for rtype, name in leaked:
        try:
            _CLEANERS[rtype](name)
        except Exception as exc:
            sys.stderr.write('mpspawn resource_tracker: %s %r: %s\n' % (rtype, name, exc))
    sys.stderr.flush()
