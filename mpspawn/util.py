"""Process-wide helpers: finalizers run at exit or on garbage collection,
after-fork hooks, the package logger, the private temp directory and
descriptor housekeeping.

Kept free of heavy imports (threading, logging, tempfile are imported on
first use) because every spawned child imports this module while starting.
"""
import atexit
import itertools
import os
import sys
from _weakref import ref as _weak_ref

from . import process
from . import _compat

__all__ = [
    'sub_debug', 'debug', 'info', 'sub_warning', 'get_logger',
    'log_to_stderr', 'get_temp_dir', 'register_after_fork',
    'is_exiting', 'Finalize', 'ForkAwareThreadLock', 'ForkAwareLocal',
    'close_all_fds_except', 'SUBDEBUG', 'SUBWARNING',
]

NOTSET = 0
SUBDEBUG = 5
DEBUG = 10
INFO = 20
SUBWARNING = 25

LOGGER_NAME = 'multiprocessing'
DEFAULT_LOGGING_FORMAT = '[%(levelname)s/%(processName)s] %(message)s'

_logger = None
_log_to_stderr = False


def sub_debug(msg, *args):
    if _logger:
        _logger.log(SUBDEBUG, msg, *args)


def debug(msg, *args):
    if _logger:
        _logger.log(DEBUG, msg, *args)


def info(msg, *args):
    if _logger:
        _logger.log(INFO, msg, *args)


def sub_warning(msg, *args):
    if _logger:
        _logger.log(SUBWARNING, msg, *args)


class _ProcessNameFilter(object):
    """2.7's logging asks 2.7's multiprocessing for the process name; ask ours."""

    def filter(self, record):
        record.processName = process.current_process().name
        return True


def get_logger():
    """The package logger ('multiprocessing', as in Python 3), made on first use."""
    global _logger
    import logging
    logging._acquireLock()
    try:
        if not _logger:
            _logger = logging.getLogger(LOGGER_NAME)
            _logger.propagate = 0
            logging.addLevelName(SUBDEBUG, 'SUBDEBUG')
            logging.addLevelName(SUBWARNING, 'SUBWARNING')
            if not any(isinstance(f, _ProcessNameFilter) for f in _logger.filters):
                _logger.addFilter(_ProcessNameFilter())
            # Flush our finalizers before logging shuts its handlers down.
            if hasattr(atexit, 'unregister'):
                atexit.unregister(_exit_function)
                atexit.register(_exit_function)
            else:
                handlers = atexit._exithandlers
                handlers.remove((_exit_function, (), {}))
                handlers.append((_exit_function, (), {}))
    finally:
        logging._releaseLock()
    return _logger


def log_to_stderr(level=None):
    """Send the package log to stderr, optionally setting its level."""
    global _log_to_stderr
    import logging
    logger = get_logger()
    formatter = logging.Formatter(DEFAULT_LOGGING_FORMAT)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    _log_to_stderr = True
    return _logger


# -- temp directory -----------------------------------------------------------

def _remove_temp_dir(rmtree, tempdir, tracked=False):
    rmtree(tempdir, ignore_errors=True)
    if tracked:
        from . import resource_tracker
        resource_tracker.unregister(tempdir, 'folder')
    current = process.current_process()
    if current is not None:
        current._config['tempdir'] = None


def get_temp_dir():
    """A private 0700 directory for this process, removed at exit."""
    tempdir = process.current_process()._config.get('tempdir')
    if tempdir is None:
        import shutil
        import tempfile
        tempdir = tempfile.mkdtemp(prefix='pymp-')
        info('created temp directory %s', tempdir)
        # Should this process be killed before its exit functions run, the
        # resource tracker removes the directory once the tree has ended.
        try:
            from . import resource_tracker
            resource_tracker.register(tempdir, 'folder')
            tracked = True
        except (OSError, ValueError):
            tracked = False
        Finalize(None, _remove_temp_dir, args=(shutil.rmtree, tempdir, tracked),
                 exitpriority=-100)
        process.current_process()._config['tempdir'] = tempdir
    return tempdir


# -- after-fork hooks ------------------------------------------------------------

# key -> weak reference to the object; an entry leaves when its object dies.
# (A plain dict of weak references: the weakref module is not worth its
# import in every spawned child.)
_afterfork_registry = {}
_afterfork_counter = itertools.count()


def _run_after_forkers():
    for key in sorted(_afterfork_registry):
        ref = _afterfork_registry.get(key)
        obj = ref() if ref is not None else None
        if obj is None:
            continue
        try:
            key[2](obj)
        except Exception as exc:
            info('after forker raised exception %s', exc)


def register_after_fork(obj, func):
    """Call ``func(obj)`` in a forked child while ``obj`` is alive."""
    key = (next(_afterfork_counter), id(obj), func)
    registry = _afterfork_registry

    def forget(_, key=key):
        registry.pop(key, None)
    registry[key] = _weak_ref(obj, forget)


# -- finalizers ------------------------------------------------------------------

_finalizer_registry = {}
_finalizer_counter = itertools.count()


class Finalize(object):
    """Call ``callback(*args, **kwargs)`` once: when ``obj`` is collected, when
    called explicitly, or at exit (if ``exitpriority`` is not None; higher
    priorities run first)."""

    def __init__(self, obj, callback, args=(), kwargs=None, exitpriority=None):
        if exitpriority is not None and not isinstance(exitpriority, _compat.integer_types):
            raise TypeError(
                "Exitpriority ({0!r}) must be None or int, not {1!s}".format(
                    exitpriority, type(exitpriority)))
        if obj is not None:
            self._weakref = _weak_ref(obj, self)
        elif exitpriority is None:
            raise ValueError("Without object, exitpriority cannot be None")
        self._callback = callback
        self._args = args
        self._kwargs = kwargs or {}
        self._key = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        _finalizer_registry[self._key] = self

    def __call__(self, wr=None,
                 # Bound at definition: module globals may be gone at shutdown.
                 _finalizer_registry=_finalizer_registry,
                 sub_debug=sub_debug, getpid=os.getpid):
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            sub_debug('finalizer no longer registered')
            return None
        if self._pid != getpid():
            sub_debug('finalizer ignored because different process')
            res = None
        else:
            sub_debug('finalizer calling %s with args %s and kwargs %s',
                      self._callback, self._args, self._kwargs)
            res = self._callback(*self._args, **self._kwargs)
        self._weakref = self._callback = self._args = \
            self._kwargs = self._key = None
        return res

    def cancel(self):
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            pass
        else:
            self._weakref = self._callback = self._args = \
                self._kwargs = self._key = None

    def still_active(self):
        return self._key in _finalizer_registry

    def __repr__(self):
        try:
            obj = self._weakref()
        except (AttributeError, TypeError):
            obj = None
        if obj is None:
            return '<%s object, dead>' % self.__class__.__name__
        x = '<%s object, callback=%s' % (
            self.__class__.__name__,
            getattr(self._callback, '__name__', self._callback))
        if self._args:
            x += ', args=' + str(self._args)
        if self._kwargs:
            x += ', kwargs=' + str(self._kwargs)
        if self._key[0] is not None:
            x += ', exitpriority=' + str(self._key[0])
        return x + '>'


def _run_finalizers(minpriority=None):
    """Run registered finalizers, highest priority first; with ``minpriority``
    only those at or above it (finalizers without priority never run here)."""
    if _finalizer_registry is None:
        return
    if minpriority is None:
        def wanted(priority):
            return priority is not None
    else:
        def wanted(priority):
            return priority is not None and priority >= minpriority
    # Keys sort by (priority, creation order); newest first within a priority.
    keys = [key for key in list(_finalizer_registry) if wanted(key[0])]
    keys.sort(reverse=True)
    for key in keys:
        finalizer = _finalizer_registry.get(key)
        if finalizer is not None:
            sub_debug('calling %s', finalizer)
            try:
                finalizer()
            except Exception:
                import traceback
                traceback.print_exc()
    if minpriority is None:
        _finalizer_registry.clear()


def is_exiting():
    return _exiting or _exiting is None


_exiting = False


def _exit_function(info=info, debug=debug, _run_finalizers=_run_finalizers,
                   active_children=process.active_children,
                   current_process=process.current_process):
    """At exit: run prioritised finalizers, stop daemonic children, join the
    others, then run the rest."""
    global _exiting
    if _exiting:
        return
    _exiting = True
    info('process shutting down')
    debug('running all "atexit" finalizers with priority >= 0')
    _run_finalizers(0)
    if current_process() is not None:
        for p in active_children():
            if p.daemon:
                info('calling terminate() for daemon %s', p.name)
                p._popen.terminate()
        for p in active_children():
            info('calling join() for process %s', p.name)
            p.join()
    debug('running the remaining "atexit" finalizers')
    _run_finalizers()


atexit.register(_exit_function)


# -- thread helpers that survive fork ------------------------------------------

class ForkAwareThreadLock(object):
    """A thread lock that a forked child gets back unlocked."""

    def __init__(self):
        self._at_fork_reinit()
        register_after_fork(self, ForkAwareThreadLock._at_fork_reinit)

    def _at_fork_reinit(self):
        self._lock = _compat.allocate_lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)


class ForkAwareLocal(_compat.thread_local):
    """Thread-local storage that a forked child gets back empty."""

    def __init__(self):
        register_after_fork(self, lambda obj: obj.__dict__.clear())

    def __reduce__(self):
        return type(self), ()


def thread_qualified_process_name():
    """'MainProcess', or 'MainProcess|Thread-1' outside the main thread."""
    name = process.current_process().name
    threading = sys.modules.get('threading')
    if threading is not None:
        thread_name = threading.current_thread().name
        if thread_name != 'MainThread':
            name += '|' + thread_name
    return name


def wait_for_predicate(predicate, wait, timeout=None):
    """Call ``wait(remaining_seconds)`` (None: no limit) until ``predicate()``
    is true or ``timeout`` seconds have passed; return the predicate's last
    value.  Condition.wait_for of every flavour (process, thread, proxy)."""
    result = predicate()
    if result:
        return result
    deadline = None if timeout is None else _compat.monotonic() + timeout
    remaining = None
    while not result:
        if deadline is not None:
            remaining = deadline - _compat.monotonic()
            if remaining <= 0:
                break
        wait(remaining)
        result = predicate()
    return result


# -- descriptors and streams --------------------------------------------------

def close_all_fds_except(fds):
    fds = sorted(set(fds) | set([-1, _compat.max_fd()]))
    for i in range(len(fds) - 1):
        os.closerange(fds[i] + 1, fds[i + 1])


def close_fds(*fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _close_stdin():
    if sys.stdin is None:
        return
    try:
        sys.stdin.close()
    except (OSError, ValueError, IOError):
        pass
    try:
        sys.stdin = _compat.open_devnull_as_stdin()
    except (OSError, ValueError):
        pass


def _flush_std_streams():
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (AttributeError, ValueError, IOError, OSError):
            pass


