"""ProcessPoolExecutor with Python 3's API on mpspawn's pool machinery.

It uses the ``futures`` backport's Future and Executor, and mpspawn.pool's
handler thread and workers: each worker gets its tasks through its own pipe,
so when one dies (killed, ``os._exit``, an initializer that raises) the
executor knows it at once, fails every pending and running future with
BrokenProcessPool (the message names the worker and its exit code) and
refuses new work, as Python 3 does.
"""
from __future__ import absolute_import

import itertools
import sys
import weakref

from concurrent.futures import _base

from .. import context, util, _compat
from ..pool import _PoolCore, process_chunk

__all__ = ['ProcessPoolExecutor', 'BrokenProcessPool']

BrokenExecutor = getattr(_base, 'BrokenExecutor', None)
if BrokenExecutor is None:
    class BrokenExecutor(RuntimeError):
        """An executor that a severe failure made unusable."""

BrokenProcessPool = getattr(sys.modules.get('concurrent.futures.process'),
                            'BrokenProcessPool', None)
if BrokenProcessPool is None:
    class BrokenProcessPool(BrokenExecutor):
        """A worker process of a ProcessPoolExecutor ended abruptly; the
        executor cannot be used any more."""

# Executors whose workers may still run: finished at interpreter exit.
_live_cores = weakref.WeakSet()
_global_shutdown = False


def _python_exit():
    """At exit, let every executor finish its queued work (as Python 3 does)."""
    global _global_shutdown
    _global_shutdown = True
    cores = list(_live_cores)
    for core in cores:
        core.close()
    for core in cores:
        core.join()


util.Finalize(None, _python_exit, exitpriority=20)


def _lost_worker_error(detail):
    return BrokenProcessPool('A process in the process pool was terminated abruptly '
                             'while the future was running or pending: ' + detail)


class _FutureSink(object):
    """How the pool machinery completes a Future."""
    __slots__ = ('future', 'claimed')

    def __init__(self, future):
        self.future = future
        self.claimed = False

    def _claim(self):
        # Called when a worker is about to get the task: False if cancelled.
        if self.claimed:
            return True
        self.claimed = True
        return self.future.set_running_or_notify_cancel()

    def _set(self, i, outcome):
        success, value = outcome
        if success:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)

    def _abort(self, error):
        if not self.future.done():
            self.future.set_exception(error)

    def _cancel(self):
        if not self.claimed:
            self.future.cancel()


def _get_chunks(iterables, chunksize):
    it = _compat_zip(*iterables)
    while True:
        chunk = tuple(itertools.islice(it, chunksize))
        if not chunk:
            return
        yield chunk


_compat_zip = getattr(itertools, 'izip', zip)


def _make_process(ctx, *args, **kwds):
    return ctx.Process(*args, **kwds)


class ProcessPoolExecutor(_base.Executor):
    """Runs calls in worker processes (Python 3's ProcessPoolExecutor).

    ``mp_context`` is an mpspawn context (default: the default context, or
    spawn when ``max_tasks_per_child`` is given).  Workers start on the first
    submit().
    """

    def __init__(self, max_workers=None, mp_context=None, initializer=None,
                 initargs=(), max_tasks_per_child=None):
        if max_workers is None:
            try:
                max_workers = context._default_context.cpu_count()
            except NotImplementedError:
                max_workers = 1
        elif max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        if mp_context is None:
            if max_tasks_per_child is not None:
                mp_context = context._default_context.get_context('spawn')
            else:
                mp_context = context._default_context.get_context()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if (not isinstance(max_tasks_per_child, _compat.integer_types) or
                    isinstance(max_tasks_per_child, bool)):
                raise TypeError("max_tasks_per_child must be an integer")
            elif max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
            if mp_context.get_start_method(allow_none=False) == 'fork':
                raise ValueError("max_tasks_per_child is incompatible with"
                                 " the 'fork' multiprocessing start method;"
                                 " supply a different mp_context.")
        self._max_workers = max_workers
        self._mp_context = mp_context
        self._initializer = initializer
        self._initargs = tuple(initargs)
        self._max_tasks_per_child = max_tasks_per_child
        self._shutdown_lock = _compat.allocate_lock()
        self._shutdown_thread = False
        self._broken = False
        self._core = None
        self._workers = []

    @property
    def _processes(self):
        return dict((p.pid, p) for p in list(self._workers))

    def _start(self, first_task):
        core = _PoolCore(self._mp_context, _make_process, self._max_workers,
                         self._initializer, self._initargs, self._max_tasks_per_child,
                         True, False, self._workers, executor=True,
                         lost_error=_lost_worker_error)
        core.submit(first_task, self._refusal)
        core.start()
        self._core = core
        _live_cores.add(core)
        # Collected without shutdown(): finish the queued work, then stop.
        util.Finalize(self, core.close)

    def _refusal(self):
        core = self._core
        if core is not None and core.broken_error is not None:
            self._broken = ('A child process terminated abruptly, the process pool '
                            'is not usable anymore (%s)' % (core.broken_error,))
            return BrokenProcessPool(self._broken)
        return RuntimeError('cannot schedule new futures after shutdown')

    def submit(*args, **kwargs):
        """Schedule ``fn(*args, **kwargs)``; returns a Future."""
        if len(args) < 2:
            raise TypeError('submit expected at least 1 positional argument')
        self, fn, args = args[0], args[1], args[2:]
        with self._shutdown_lock:
            if self._broken or (self._core is not None and
                                self._core.broken_error is not None):
                raise self._refusal()
            if self._shutdown_thread:
                raise RuntimeError('cannot schedule new futures after shutdown')
            if _global_shutdown:
                raise RuntimeError('cannot schedule new futures after '
                                   'interpreter shutdown')
            future = _base.Future()
            task = (_FutureSink(future), 0, fn, args, kwargs, False)
            if self._core is None:
                # Queued before the workers start, so that a worker failing at
                # once fails this future rather than this call.
                self._start(task)
            else:
                self._core.submit(task, self._refusal)
            return future

    def map(self, fn, *iterables, **kwargs):
        """An iterator over ``fn(*args)`` for the zipped ``iterables``, in
        order; ``timeout`` (seconds from this call) and ``chunksize``."""
        timeout = kwargs.pop('timeout', None)
        chunksize = kwargs.pop('chunksize', 1)
        if kwargs:
            raise TypeError('map() got an unexpected keyword argument %r'
                            % sorted(kwargs)[0])
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        if timeout is not None:
            end_time = timeout + _compat.monotonic()
        futures = [self.submit(process_chunk, fn, chunk)
                   for chunk in _get_chunks(iterables, chunksize)]

        # A generator of its own, so that everything is submitted before the
        # first result is asked for.
        def result_iterator():
            try:
                futures.reverse()
                while futures:
                    if timeout is None:
                        chunk = futures.pop().result()
                    else:
                        chunk = futures.pop().result(end_time - _compat.monotonic())
                    chunk.reverse()
                    while chunk:
                        yield chunk.pop()
            finally:
                for future in futures:
                    future.cancel()
        return result_iterator()

    def shutdown(self, wait=True, cancel_futures=False):
        """No more submissions; with ``cancel_futures`` the calls not yet
        started are cancelled; with ``wait`` return once the workers exited."""
        with self._shutdown_lock:
            self._shutdown_thread = True
            core = self._core
        if core is None:
            return
        if cancel_futures:
            core.cancel_pending()
        core.close()
        if wait:
            core.join()
