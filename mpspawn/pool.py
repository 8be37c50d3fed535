"""Worker pools with Python 3's API: Pool, ThreadPool and their results.

Each pool has one handler thread that owns the workers.  It gives every idle
worker the next task through that worker's own pipe, reads the answer from
the worker's result pipe, completes the caller's result object, and watches
each worker's sentinel.  Because it always knows which task a worker holds:

- a worker that dies while running a task (SIGKILL, the OOM killer,
  ``os._exit``) fails that task with ``WorkerLostError``, which names the
  worker, its pid and its exit code; Python 3's Pool waits forever instead;
- workers that die before they are ready (an initializer that raises, a
  script that starts a pool without the ``if __name__ == '__main__':``
  guard) stop the pool with ``BrokenPoolError`` after a few attempts instead
  of being respawned forever.

The handler never sleeps in steps: it blocks in poll() on the result pipes,
the sentinels and a wake-up pipe, and writes tasks without blocking, so
``terminate()`` is always prompt.  Tasks and results travel with cPickle.
Both new exceptions derive from ``ProcessError``; results still waiting when
a pool is terminated fail with ``PoolTerminatedError`` (Python 3 leaves them
pending forever).  ``mpspawn.futures.ProcessPoolExecutor`` runs on the same
machinery.

Only the worker-side functions run in children, so this module imports
nothing heavy at the top.
"""
import errno
import itertools
import os
import struct
import sys

from . import context, util, _compat
from .context import ProcessError, TimeoutError

__all__ = ['Pool', 'ThreadPool']

INIT = 'INIT'
RUN = 'RUN'
CLOSE = 'CLOSE'
TERMINATE = 'TERMINATE'
BROKEN = 'BROKEN'   # the handler's own state: the pool can no longer work

job_counter = itertools.count()

# A worker sends this when it is ready (its initializer, if any, has run).
_READY = None
# A thread worker posts (_EXITED, reason) as its last message.
_EXITED = 'exited'

# How many failed starts in a row make a pool give up (at least the pool size).
MIN_FAILED_STARTS = 3
# The feeder thread of imap() keeps at most this many tasks queued ahead.
FEED_AHEAD = 256
# Grace between SIGTERM and SIGKILL when terminating workers.
TERMINATE_GRACE = 1.0


# -- exceptions ----------------------------------------------------------------

class WorkerLostError(ProcessError):
    """The worker running a task ended before answering (killed by a signal,
    ``os._exit``, ``SystemExit`` in a thread worker ...).  ``worker_name``,
    ``pid`` and ``exitcode`` say which and how."""

    def __init__(self, message, worker_name=None, pid=None, exitcode=None):
        ProcessError.__init__(self, message)
        self.worker_name = worker_name
        self.pid = pid
        self.exitcode = exitcode


class BrokenPoolError(ProcessError):
    """Workers keep dying before they are ready, so the pool stopped; when the
    initializer raised, that exception is ``__cause__``."""


class PoolTerminatedError(ProcessError):
    """The pool was terminated (or collected) before this task finished."""


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in a worker.  It is the
    ``__cause__`` of the exception re-raised in the parent (Python 3 prints
    it; on 2.7 read ``exc.__cause__.tb``)."""

    def __init__(self, tb):
        Exception.__init__(self, tb)
        self.tb = tb

    def __str__(self):
        return self.tb


class ExceptionWithTraceback(object):
    """An exception and its traceback text; unpickles to the exception with a
    RemoteTraceback as ``__cause__``."""

    def __init__(self, exc, tb):
        import traceback
        text = ''.join(traceback.format_exception(type(exc), exc, tb))
        self.exc = exc
        self.tb = '\n"""\n%s"""' % text

    def __reduce__(self):
        return rebuild_exc, (self.exc, self.tb)


def rebuild_exc(exc, tb):
    try:
        exc.__cause__ = RemoteTraceback(tb)
    except (AttributeError, TypeError):
        pass    # an exception type without a __dict__: keep it bare
    return exc


class MaybeEncodingError(Exception):
    """A result or exception that could not be pickled (or unpickled)."""

    def __init__(self, exc, value):
        self.exc = repr(exc)
        self.value = repr(value)
        super(MaybeEncodingError, self).__init__(self.exc, self.value)

    def __str__(self):
        return "Error sending result: '%s'. Reason: '%s'" % (self.value, self.exc)

    def __repr__(self):
        return '<%s: %s>' % (self.__class__.__name__, self)


# -- what workers run ------------------------------------------------------------

def mapstar(args):
    return list(map(*args))


def starmapstar(args):
    return list(itertools.starmap(args[0], args[1]))


def process_chunk(fn, chunk):
    """One chunk of ProcessPoolExecutor.map."""
    return [fn(*args) for args in chunk]


def _wrapped(exc, tb, wrap):
    if not wrap:
        return exc
    try:
        return ExceptionWithTraceback(exc, tb)
    except Exception:
        return exc


def _process_worker(tasks, results, initializer=None, initargs=(),
                    maxtasks=None, wrap_exception=True, executor=False):
    """The loop of a pool worker process: read a task, run it, send back
    (True, value) or (False, exception), until told to stop.

    ``executor`` selects ProcessPoolExecutor's rules: BaseException from a
    task is its result, and a result that cannot be pickled is reported as
    the pickling error itself rather than MaybeEncodingError.
    """
    _exit_with_parent()
    pickler = context._reducer_module().ForkingPickler
    dumps, loads = pickler.dumps, pickler.loads
    recv_bytes, send_bytes = tasks.recv_bytes, results.send_bytes
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as exc:
            report = (False, _wrapped(exc, sys.exc_info()[2], wrap_exception))
            try:
                send_bytes(dumps(report))
            except Exception:
                pass
            raise
    try:
        send_bytes(dumps(_READY))
    except (OSError, IOError):
        return
    catch = BaseException if executor else Exception
    completed = 0
    while maxtasks is None or completed < maxtasks:
        try:
            data = recv_bytes()
        except (EOFError, OSError, IOError):
            break
        try:
            task = loads(data)
            if task is None:
                break
            func, args, kwds = task
            result = (True, func(*args, **kwds))
        except catch as exc:
            result = (False, _wrapped(exc, sys.exc_info()[2], wrap_exception))
        data = task = func = args = kwds = None
        payload = _encode_result(dumps, loads, result, executor, wrap_exception)
        result = None
        try:
            send_bytes(payload)
        except (OSError, IOError):
            break
        payload = None
        completed += 1


def _exit_with_parent():
    """End this worker as soon as the pool's process dies, even inside a
    task: its result could go nowhere, and a worker must not outlive a
    SIGKILLed parent (Python 3's wait forever).  A bare thread watches the
    parent's sentinel (the threading module would cost start-up time)."""
    from . import process
    sentinel = getattr(process.parent_process(), '_sentinel', None)
    if sentinel is None:
        return

    def watch():
        while True:
            _compat.wait_fds([sentinel], None)
            try:
                if not os.read(sentinel, 1):
                    os._exit(1)             # end of file: the parent is gone
            except OSError:
                return                      # not ours to watch any more
    _compat.start_new_thread(watch, ())


def _encode_result(dumps, loads, result, executor, wrap_exception):
    try:
        payload = dumps(result)
        if result[0]:
            return payload
        # An exception that pickles may still fail to unpickle (a custom
        # __init__ with required arguments): find out here, not in the parent.
        loads(payload)
        return payload
    except Exception as exc:
        value = result[1]
        value = getattr(value, 'exc', value)
        if executor:
            error = _wrapped(exc, sys.exc_info()[2], wrap_exception)
        else:
            error = MaybeEncodingError(exc, value)
        try:
            return dumps((False, error))
        except Exception:
            return dumps((False, MaybeEncodingError(exc, '<unrepresentable>')))


def _thread_worker(post, worker, inbox, initializer=None, initargs=()):
    """The loop of a ThreadPool worker: tasks and results are not pickled."""
    reason = None
    try:
        if initializer is not None:
            try:
                initializer(*initargs)
            except BaseException as exc:
                post(worker, (False, exc))
                raise
        post(worker, _READY)
        get = inbox.get
        while True:
            task = get()
            if task is None:
                break
            func, args, kwds = task
            try:
                result = (True, func(*args, **kwds))
            except Exception as exc:
                result = (False, exc)
            post(worker, result)
            task = func = args = kwds = result = None
    except BaseException as exc:
        reason = exc
        raise
    finally:
        post(worker, (_EXITED, reason))


# -- the pool's machinery ----------------------------------------------------------

_HEADER = struct.Struct('!i')
_BIG_HEADER = struct.Struct('!Q')
_SMALL_MESSAGE = 65536


def _frame(data):
    """``data`` as the chunks Connection.recv_bytes reads as one message."""
    n = len(data)
    if n > 0x7fffffff:
        return [_HEADER.pack(-1) + _BIG_HEADER.pack(n), data]
    if n < _SMALL_MESSAGE:
        return [_HEADER.pack(n) + data]
    return [_HEADER.pack(n), data]


def _exit_text(exitcode):
    if exitcode is None:
        return 'an unknown exit code'
    if exitcode < 0:
        from .process import _exitcode_to_name
        name = _exitcode_to_name.get(exitcode)
        how = name[1:] if name else 'signal %d' % -exitcode
        return 'exit code %d (killed by %s)' % (exitcode, how)
    return 'exit code %d' % exitcode


class _Worker(object):
    """The handler's record of one worker."""
    __slots__ = ('process', 'name', 'pid', 'task_writer', 'task_fd', 'results',
                 'sentinel', 'inbox', 'outgoing', 'task', 'ready', 'done',
                 'retiring', 'stopping', 'unreachable', 'init_error')

    def __init__(self):
        self.process = self.name = self.pid = None
        self.task_writer = self.task_fd = self.results = self.sentinel = None
        self.inbox = None
        self.outgoing = None
        self.task = None
        self.ready = self.retiring = self.stopping = self.unreachable = False
        self.done = 0
        self.init_error = None

    def describe(self):
        if self.pid is None:
            return 'pool worker thread %s' % self.name
        return 'pool worker %s (pid %d)' % (self.name, self.pid)


class _Batch(object):
    """Tasks of one job, produced lazily (the chunks of a map)."""
    __slots__ = ('sink', 'tasks')

    def __init__(self, sink, tasks):
        self.sink = sink
        self.tasks = tasks


def _chunked_tasks(sink, mapper, func, iterable, chunksize):
    it = iter(iterable)
    for i in itertools.count():
        chunk = tuple(itertools.islice(it, chunksize))
        if not chunk:
            return
        yield (sink, i, mapper, ((func, chunk),), {}, False)


def _explain_pickling_error(exc, func, args, kwds, first_index=None):
    """The pickling error of a task, naming where the culprit sits (for a
    chunk of a map, the index of the item in the iterable)."""
    from . import reduction
    if func in (mapstar, starmapstar) and len(args) == 1:
        func, items = args[0]
        if first_index is None:
            names = ['item %d of the chunk' % j for j in range(len(items))]
        else:
            names = ['iterable[%d]' % (first_index + j) for j in range(len(items))]
        parts = [('func', func)] + list(zip(names, items))
    elif func is process_chunk and len(args) == 2:
        parts = [('fn', args[0]), ('args', args[1])]
    else:
        parts = [('func', func), ('args', args), ('kwds', kwds)]
    try:
        reduction.explain_pickling_error(exc, parts)
    except Exception as explained:
        return explained
    return exc


def _report_callback_error(what):
    try:
        import traceback
        sys.stderr.write('Exception in %s:\n' % what)
        traceback.print_exc()
    except Exception:
        pass


class _PoolCore(object):
    """Everything the handler thread uses.  It never refers to the Pool, so
    an abandoned pool can be collected and its finalizer terminates this."""

    def __init__(self, ctx, make_process, processes, initializer, initargs,
                 maxtasks, wrap_exception, threads, pool_list, executor=False,
                 lost_error=None):
        self._ctx = ctx
        self._make_process = make_process
        self._processes = processes
        self._initializer = initializer
        self._initargs = initargs
        self._maxtasks = maxtasks
        self._wrap_exception = wrap_exception
        self._threads = threads
        self._executor = executor
        # How an executor reports a lost worker (it breaks, as in Python 3).
        self._lost_error = lost_error
        self._pool_list = pool_list
        self._workers = []
        self._state = RUN
        self._abort_error = None
        self.broken_error = None
        self._failed_starts = 0
        self._give_up_after = max(MIN_FAILED_STARTS, processes) if not executor else 1

        pickler = context._reducer_module().ForkingPickler
        self._dumps, self._loads = pickler.dumps, pickler.loads

        from collections import deque
        self._lock = _compat.allocate_lock()
        self._sources = deque()
        self._outbox = deque()
        self._asleep = False
        self._wakeup_r, self._wakeup_w = _compat.pipe()
        _compat.set_blocking(self._wakeup_r, False)
        _compat.set_blocking(self._wakeup_w, False)

        # imap/imap_unordered consume the caller's iterable in a thread of
        # their own, so an iterable that blocks never delays results.
        self._feed_jobs = deque()
        self._feeding = 0
        self._fed_ahead = 0
        self._feed_cond = _compat.Condition(self._lock)
        self._feeder = None

        self._handler = None
        self._finished = _compat.Event()
        self._poller = None
        self._fd_roles = {}
        util.register_after_fork(self, _PoolCore._close_in_forked_child)

    # -- called from the caller's threads -----------------------------------

    def start(self):
        """Start the workers here (so start errors reach the caller), then
        the handler thread."""
        try:
            for _ in range(self._processes):
                self._add_worker(self._launch())
        except BaseException:
            self._kill_workers()
            self._close_fds()
            raise
        import threading
        self._handler = threading.Thread(target=self._run, name='mpspawn-pool-handler')
        self._handler.daemon = True
        self._handler.start()

    def submit(self, source, error_if_stopped):
        with self._lock:
            if self._state != RUN:
                raise error_if_stopped()
            self._sources.append(source)
            self._wake()

    def feed(self, sink, func, iterable, chunksize, error_if_stopped):
        """Queue an imap job: the feeder thread turns ``iterable`` into tasks."""
        with self._lock:
            if self._state != RUN:
                raise error_if_stopped()
            self._feed_jobs.append((sink, func, iterable, chunksize))
            self._feeding += 1
            self._feed_cond.notify()
            if self._feeder is None:
                import threading
                feeder = threading.Thread(target=self._feed_loop,
                                          name='mpspawn-pool-feeder')
                feeder.daemon = True
                feeder.start()  # it waits for the lock we hold
                self._feeder = feeder

    def close(self):
        """Finish the queued work, then stop the workers."""
        with self._lock:
            if self._state == RUN:
                self._state = CLOSE
                self._feed_cond.notify_all()
                self._wake()

    def terminate(self, error=None):
        """Stop now: kill the workers, fail what is unfinished."""
        with self._lock:
            if self._state in (RUN, CLOSE):
                self._state = TERMINATE
                self._abort_error = error or PoolTerminatedError(
                    'the pool was terminated before this task finished')
            self._feed_cond.notify_all()
            self._wake()
        if self._handler is None:   # start() failed or never ran
            return
        self._join_helpers()

    def cancel_pending(self):
        """Cancel the tasks no worker has taken yet (executor shutdown)."""
        with self._lock:
            sinks = [src.sink if src.__class__ is _Batch else src[0]
                     for src in self._sources]
        for sink in sinks:
            sink._cancel()
        with self._lock:
            self._wake()

    def join(self):
        if self._handler is None:
            return
        self._join_helpers()
        # Thread workers told to stop by terminate() finish their task first.
        for w in list(self._workers):
            if w.inbox is not None:
                w.process.join()

    def _join_helpers(self):
        import threading
        me = threading.current_thread()
        if self._handler is not me:
            self._finished.wait()
            self._handler.join()
        feeder = self._feeder
        if feeder is not None and feeder is not me:
            feeder.join()

    def _wake(self):
        # The caller holds self._lock.
        if self._asleep and self._wakeup_w is not None:
            self._asleep = False
            try:
                os.write(self._wakeup_w, b'!')
            except OSError:
                pass    # full: a wake-up is pending anyway

    def _post(self, worker, message):
        """How a thread worker hands a message to the handler."""
        with self._lock:
            self._outbox.append((worker, message))
            self._wake()

    # -- the feeder thread ------------------------------------------------------

    def _feed_loop(self):
        while True:
            with self._lock:
                while not self._feed_jobs and self._state == RUN:
                    self._feed_cond.wait()
                if self._state in (TERMINATE, BROKEN):
                    jobs = list(self._feed_jobs)
                    self._feed_jobs.clear()
                    self._feeding -= len(jobs)
                    error = self._abort_error
                    break
                if not self._feed_jobs:
                    return
                job = self._feed_jobs.popleft()
            try:
                self._feed_one(*job)
            finally:
                with self._lock:
                    self._feeding -= 1
                    self._wake()
        for job in jobs:
            job[0]._abort(error)

    def _feed_one(self, sink, func, iterable, chunksize):
        if chunksize == 1:
            items = iterable
        else:
            items = _chunks(iterable, chunksize)
        i = -1
        try:
            for i, item in enumerate(items):
                if chunksize == 1:
                    task = (sink, i, func, (item,), {}, True)
                else:
                    task = (sink, i, mapstar, ((func, item),), {}, True)
                with self._lock:
                    if self._fed_ahead >= FEED_AHEAD:
                        while (self._fed_ahead > FEED_AHEAD // 2 and
                               self._state in (RUN, CLOSE)):
                            self._feed_cond.wait()
                    if self._state not in (RUN, CLOSE):
                        error = self._abort_error
                        break
                    self._fed_ahead += 1
                    self._sources.append(task)
                    self._wake()
            else:
                sink._set_length(i + 1)
                return
        except Exception as exc:
            # As in Python 3: the error takes the place of the next item.
            sink._set(i + 1, (False, exc))
            sink._set_length(i + 2)
            return
        sink._abort(error)

    # -- the handler thread ---------------------------------------------------

    def _run(self):
        import select
        try:
            self._poller = select.poll()
            self._poller.register(self._wakeup_r, select.POLLIN)
            for w in self._workers:
                self._watch(w)
            self._loop()
            if self._state != CLOSE:
                self._abort_all(self._abort_error)
                self._kill_workers()
        except BaseException as exc:
            # A bug here must not leave callers waiting forever.
            _report_callback_error('the pool handler thread')
            self._abort_error = ProcessError('the pool handler failed: %r' % (exc,))
            with self._lock:
                self._state = BROKEN
            try:
                self._abort_all(self._abort_error)
                self._kill_workers()
            except BaseException:
                _report_callback_error('the pool handler thread')
        finally:
            self._close_fds()
            with self._lock:
                self._feed_cond.notify_all()
            self._finished.set()

    def _loop(self):
        import select
        poll = self._poller.poll
        while True:
            if self._outbox:
                self._handle_posts()
            state = self._state
            if state in (TERMINATE, BROKEN):
                return
            self._maintain()
            self._dispatch()
            if self._state == CLOSE and self._stop_when_done():
                return
            with self._lock:
                sleep = (not self._outbox and self._state == state and
                         not (self._sources and self._idle_worker()))
                self._asleep = sleep
            try:
                events = poll(None if sleep else 0)
            except (select.error, OSError) as exc:
                if _compat.is_eintr(exc):
                    continue
                raise
            self._asleep = False
            for fd, event in events:
                if fd == self._wakeup_r:
                    self._drain_wakeups()
                    continue
                entry = self._fd_roles.get(fd)
                if entry is None:
                    continue    # its worker was forgotten earlier in this batch
                w, role = entry
                if role == 'results':
                    self._read(w)
                elif role == 'tasks':
                    self._write_some(w)
                else:
                    self._reap(w)

    def _drain_wakeups(self):
        try:
            while os.read(self._wakeup_r, 4096):
                pass
        except OSError:
            pass

    def _idle_worker(self):
        for w in self._workers:
            if w.task is None and not (w.retiring or w.stopping or w.unreachable):
                return w
        return None

    def _work_done(self):
        if self._sources or self._feeding:
            return False
        for w in self._workers:
            if w.task is not None:
                return False
        return True

    def _maintain(self):
        """Start workers until the pool has its size again."""
        if self._state == CLOSE and self._work_done():
            return
        while self._state in (RUN, CLOSE):
            live = sum(1 for w in self._workers
                       if not (w.retiring or w.stopping or w.unreachable))
            if live >= self._processes:
                return
            try:
                w = self._launch()
            except Exception as exc:
                self._failed_start(None, None, exc)
                continue
            self._add_worker(w)
            self._watch(w)

    def _dispatch(self):
        for w in self._workers:
            if w.task is not None or w.retiring or w.stopping or w.unreachable:
                continue
            while True:
                task = self._next_task()
                if task is None:
                    return
                if self._give(w, task):
                    break

    def _next_task(self):
        while True:
            with self._lock:
                if not self._sources:
                    return None
                source = self._sources[0]
                if source.__class__ is tuple:
                    self._sources.popleft()
                    if source[5]:
                        self._fed_ahead -= 1
                        if self._fed_ahead <= FEED_AHEAD // 2:
                            self._feed_cond.notify()
                    return source
            # Only this thread removes sources, so ``source`` stays first;
            # the caller's sequence is iterated without holding the lock.
            error = None
            try:
                task = next(source.tasks, None)
            except Exception as exc:
                task, error = None, exc
            if task is not None:
                return task
            with self._lock:
                self._sources.popleft()
            if error is not None:
                # As Python 3 would have it, the job fails (it then hangs).
                source.sink._abort(error)

    def _requeue(self, task):
        with self._lock:
            self._sources.appendleft(task[:5] + (False,))

    def _give(self, w, task):
        """Send ``task`` to ``w``; False if it was not sent (cancelled, or it
        could not be pickled: then its result says so)."""
        sink, i, func, args, kwds = task[:5]
        if not sink._claim():
            return False
        if w.inbox is not None:
            w.task = task
            w.inbox.put((func, args, kwds))
            return True
        try:
            data = self._dumps((func, args, kwds))
        except Exception as exc:
            chunksize = getattr(sink, '_chunksize', None)
            first = None if chunksize is None else i * chunksize
            self._complete(sink, i, (False, _explain_pickling_error(
                exc, func, args, kwds, first)))
            return False
        w.task = task
        self._send(w, data)
        return True

    def _send(self, w, data):
        if w.outgoing:
            w.outgoing.extend(_frame(data))
            return
        w.outgoing = _frame(data)
        self._write_some(w)

    def _write_some(self, w):
        """Write what ``w`` is owed without blocking; poll for the rest."""
        import select
        chunks = w.outgoing
        try:
            while chunks:
                n = os.write(w.task_fd, chunks[0])
                if n == len(chunks[0]):
                    chunks.pop(0)
                else:
                    chunks[0] = memoryview(chunks[0])[n:]   # no copy
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                if w.task_fd not in self._fd_roles:
                    self._fd_roles[w.task_fd] = (w, 'tasks')
                    self._poller.register(w.task_fd, select.POLLOUT)
                return
            # The worker is gone: its sentinel will say how.
            w.unreachable = True
            chunks[:] = []
        if w.task_fd in self._fd_roles:
            del self._fd_roles[w.task_fd]
            self._poller.unregister(w.task_fd)

    def _read(self, w):
        """Read one message of ``w``; False at end of file."""
        try:
            data = w.results.recv_bytes()
        except (EOFError, OSError, IOError):
            self._unwatch(w.results.fileno())
            w.unreachable = True
            return False
        try:
            message = self._loads(data)
        except Exception as exc:
            message = (False, MaybeEncodingError(
                exc, '<a result that could not be unpickled in the parent>'))
        self._handle_message(w, message)
        return True

    def _handle_posts(self):
        with self._lock:
            posts = list(self._outbox)
            self._outbox.clear()
        for w, message in posts:
            if message.__class__ is tuple and message[0] is _EXITED:
                w.process.join()
                self._forget(w)
                reason = message[1]
                how = 'it ended' if reason is None else 'it raised %r' % (reason,)
                self._after_exit(w, None, how)
            else:
                self._handle_message(w, message)

    def _handle_message(self, w, message):
        if not w.ready:
            if message is _READY:
                w.ready = True
                self._failed_starts = 0
            elif message.__class__ is tuple and len(message) == 2:
                w.init_error = message[1]
            return
        task = w.task
        if task is None:
            return
        w.task = None
        w.done += 1
        if self._maxtasks is not None and w.done >= self._maxtasks:
            w.retiring = True
        self._complete(task[0], task[1], message)

    def _complete(self, sink, i, outcome):
        try:
            sink._set(i, outcome)
        except Exception:
            _report_callback_error('a pool result callback')

    def _reap(self, w):
        """``w``'s sentinel fired: collect its last words and its exit code."""
        while w.results is not None and not w.unreachable and w.results.poll(0):
            if not self._read(w):
                break
        # An exiting process closes its descriptors a moment before it can
        # be reaped; one that closed them itself and lives on is useless:
        # never block on it.
        deadline = _compat.monotonic() + 1.0
        while w.process.exitcode is None:
            if _compat.monotonic() > deadline:
                w.process.kill()
                break
            import time
            time.sleep(0.001)
        w.process.join()
        exitcode = w.process.exitcode
        self._forget(w)
        self._after_exit(w, exitcode, 'it exited with ' + _exit_text(exitcode))

    def _after_exit(self, w, exitcode, how):
        if w.retiring or (w.stopping and w.task is None):
            return
        if not w.ready:
            if w.task is not None:
                self._requeue(w.task)
                w.task = None
            self._failed_start(w, exitcode, how)
            return
        if self._lost_error is not None:
            error = self._lost_error('%s: %s' % (w.describe(), how))
            if w.task is not None:
                sink, i = w.task[:2]
                w.task = None
                self._complete(sink, i, (False, error))
            self._break(error)
            return
        if w.task is not None:
            sink, i = w.task[:2]
            w.task = None
            error = WorkerLostError('%s died while running this task: %s'
                                    % (w.describe(), how), w.name, w.pid, exitcode)
            self._complete(sink, i, (False, error))

    def _failed_start(self, w, exitcode, how):
        self._failed_starts += 1
        if self._failed_starts < self._give_up_after:
            return
        if w is None:
            message = 'cannot start a pool worker: %r' % (how,)
            cause = how
        else:
            message = '%s ended before it was ready: %s' % (w.describe(), how)
            if self._failed_starts > 1:
                message = ('%d pool workers in a row ended before they were ready; '
                           'the last, %s' % (self._failed_starts, message))
            cause = w.init_error
            if cause is not None:
                message += '; its initializer raised %r' % (cause,)
            elif not self._threads and self._ctx.get_start_method() != 'fork':
                message += (" (under the '%s' start method a script that starts "
                            "a pool at import time needs the "
                            "\"if __name__ == '__main__':\" guard)"
                            % self._ctx.get_start_method())
        if self._lost_error is not None:
            error = self._lost_error(message)
        else:
            error = BrokenPoolError(message)
        if cause is not None:
            error.__cause__ = cause
        self._break(error)

    def _break(self, error):
        with self._lock:
            if self._state in (RUN, CLOSE):
                self._state = BROKEN
                self.broken_error = error
                self._abort_error = error
                self._feed_cond.notify_all()

    def _stop_when_done(self):
        """After close(): once all work is done, tell the workers to stop;
        True when none is left."""
        if not self._work_done():
            return False
        for w in self._workers:
            if not w.stopping:
                w.stopping = True
                self._tell_stop(w)
        return not self._workers

    def _tell_stop(self, w):
        if w.inbox is not None:
            w.inbox.put(None)
        elif not w.unreachable:
            self._send(w, self._dumps(None))

    def _abort_all(self, error):
        with self._lock:
            sources = list(self._sources)
            self._sources.clear()
            self._feed_cond.notify_all()
        sinks = []
        for w in self._workers:
            if w.task is not None:
                sinks.append(w.task[0])
                w.task = None
        sinks.extend(src.sink if src.__class__ is _Batch else src[0] for src in sources)
        for sink in sinks:
            try:
                sink._abort(error)
            except Exception:
                _report_callback_error('a pool result callback')

    def _kill_workers(self):
        """SIGTERM every worker process, SIGKILL it after a grace period, and
        reap it; thread workers are told to stop after their current task."""
        processes = []
        for w in list(self._workers):
            if w.inbox is not None:
                w.inbox.put(None)
                continue
            try:
                if w.process.exitcode is None:
                    w.process.terminate()
            except (OSError, ValueError):
                pass
            processes.append(w)
        deadline = _compat.monotonic() + TERMINATE_GRACE
        waiting = list(processes)
        while waiting:
            left = deadline - _compat.monotonic()
            if left <= 0:
                for w in waiting:
                    try:
                        w.process.kill()
                    except (OSError, ValueError):
                        pass
                break
            _compat.wait_fds([w.sentinel for w in waiting], left)
            waiting = [w for w in waiting if w.process.exitcode is None]
        for w in processes:
            w.process.join()
            self._forget(w)

    # -- workers ------------------------------------------------------------------

    def _launch(self):
        w = _Worker()
        if self._threads:
            w.inbox = _compat.make_thread_queue()
            proc = self._make_process(self._ctx, target=_thread_worker,
                                      args=(self._post, w, w.inbox,
                                            self._initializer, self._initargs))
            proc.daemon = True
            proc.start()
            w.process, w.name = proc, proc.name
            return w
        from .connection import Pipe
        task_reader, task_writer = Pipe(duplex=False)
        result_reader, result_writer = Pipe(duplex=False)
        try:
            proc = self._make_process(
                self._ctx, target=_process_worker,
                args=(task_reader, result_writer, self._initializer, self._initargs,
                      self._maxtasks, self._wrap_exception, self._executor))
            if not self._executor:
                proc.name = proc.name.replace('Process', 'PoolWorker')
                proc.daemon = True
            proc.start()
        except BaseException:
            task_writer.close()
            result_reader.close()
            raise
        finally:
            task_reader.close()
            result_writer.close()
        # Tasks are written without blocking, so a worker that is slow to read
        # (still starting, or stuck) never holds up the handler.
        w.task_writer = task_writer
        w.task_fd = task_writer.fileno()
        _compat.set_blocking(w.task_fd, False)
        w.process, w.name, w.pid = proc, proc.name, proc.pid
        w.results = result_reader
        w.sentinel = proc.sentinel
        w.outgoing = []
        return w

    def _add_worker(self, w):
        self._workers.append(w)
        self._pool_list.append(w.process)

    def _watch(self, w):
        import select
        if w.results is None:
            return
        for fd, role in ((w.results.fileno(), 'results'), (w.sentinel, 'sentinel')):
            self._fd_roles[fd] = (w, role)
            self._poller.register(fd, select.POLLIN)
        if w.outgoing:
            self._write_some(w)

    def _unwatch(self, fd):
        if self._fd_roles.pop(fd, None) is not None and self._poller is not None:
            try:
                self._poller.unregister(fd)
            except (KeyError, ValueError):
                pass

    def _forget(self, w):
        if w in self._workers:
            self._workers.remove(w)
        try:
            self._pool_list.remove(w.process)
        except ValueError:
            pass
        if w.inbox is not None:
            return
        for fd in (w.task_fd, w.sentinel):
            self._unwatch(fd)
        if not w.results.closed:
            self._unwatch(w.results.fileno())
        w.results.close()
        w.task_writer.close()
        w.outgoing = None
        try:
            w.process.close()
        except ValueError:
            pass

    def _close_fds(self):
        with self._lock:
            fds = (self._wakeup_r, self._wakeup_w)
            self._wakeup_r = self._wakeup_w = None
        for fd in fds:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _close_in_forked_child(self):
        """A forked child must not hold the pool's ends of other workers'
        pipes: a worker learns of its parent's death by end of file."""
        # The lock may have been held by another thread at fork time: no lock.
        for w in list(self._workers):
            if w.results is not None:
                w.results.close()
                w.task_writer.close()
        for fd in (self._wakeup_r, self._wakeup_w):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wakeup_r = self._wakeup_w = None


def _chunks(iterable, size):
    it = iter(iterable)
    while True:
        chunk = tuple(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


# -- the public classes ------------------------------------------------------------

def _default_context():
    return context._default_context.get_context()


class Pool(object):
    """A pool of worker processes (Python 3's multiprocessing.Pool)."""

    _wrap_exception = True
    _uses_threads = False

    @staticmethod
    def Process(ctx, *args, **kwds):
        return ctx.Process(*args, **kwds)

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None):
        self._pool = []
        self._state = INIT
        self._core = None
        self._pid = os.getpid()
        self._ctx = context or _default_context()
        self._cache = {}
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = initargs

        if processes is None:
            try:
                processes = self._ctx.cpu_count()
            except NotImplementedError:
                processes = 1
        if not isinstance(processes, _compat.integer_types) or isinstance(processes, bool):
            raise TypeError('processes must be an integer, not %s' % type(processes).__name__)
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if (not isinstance(maxtasksperchild, _compat.integer_types) or
                    maxtasksperchild <= 0):
                raise ValueError("maxtasksperchild must be a positive int or None")
        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be a callable')

        self._processes = processes
        self._core = _PoolCore(self._ctx, self.Process, processes, initializer,
                               tuple(initargs), maxtasksperchild, self._wrap_exception,
                               self._uses_threads, self._pool)
        self._core.start()
        # Collected or still running at exit: terminate (the handler thread
        # holds only the core, never the pool).
        self._terminate = util.Finalize(self, self._core.terminate, exitpriority=15)
        self._state = RUN

    def __repr__(self):
        cls = self.__class__
        return '<%s.%s state=%s pool_size=%d>' % (
            cls.__module__, cls.__name__, self._state, len(self._pool))

    def __reduce__(self):
        raise NotImplementedError(
            'pool objects cannot be passed between processes or pickled')

    def _not_running(self):
        core = self._core
        if self._state == RUN and core is not None and core.broken_error is not None:
            error = BrokenPoolError(str(core.broken_error))
            error.__cause__ = getattr(core.broken_error, '__cause__', None)
            return error
        return ValueError("Pool not running")

    def _check_running(self):
        if self._state != RUN or self._core.broken_error is not None:
            raise self._not_running()
        if self._pid != os.getpid():
            # Its handler thread and workers belong to the parent.
            raise RuntimeError('a pool cannot be used in a child process '
                               'forked after its creation')

    def _submit(self, source):
        self._core.submit(source, self._not_running)

    # -- the API ---------------------------------------------------------------

    def apply(self, func, args=(), kwds={}):
        """``func(*args, **kwds)`` in a worker; waits for the result."""
        return self.apply_async(func, args, kwds).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None):
        """Run ``func(*args, **kwds)`` in a worker; returns an AsyncResult."""
        self._check_running()
        result = ApplyResult(self, callback, error_callback)
        try:
            self._submit((result, 0, func, args, kwds, False))
        except BaseException:
            result._forget()
            raise
        return result

    def map(self, func, iterable, chunksize=None):
        """``list(map(func, iterable))`` computed by the workers in chunks."""
        return self._map_async(func, iterable, mapstar, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        """Like map(), with each item unpacked as the arguments of ``func``."""
        return self._map_async(func, iterable, starmapstar, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, mapstar, chunksize, callback, error_callback)

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        return self._map_async(func, iterable, starmapstar, chunksize, callback,
                               error_callback)

    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None,
                   error_callback=None):
        self._check_running()
        if not hasattr(iterable, '__len__'):
            iterable = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(iterable), self._processes * 4)
            if extra:
                chunksize += 1
        elif chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0!r}".format(chunksize))
        if len(iterable) == 0:
            chunksize = 0
        result = MapResult(self, chunksize, len(iterable), callback, error_callback)
        if chunksize:
            try:
                self._submit(_Batch(result, _chunked_tasks(result, mapper, func,
                                                           iterable, chunksize)))
            except BaseException:
                result._forget()
                raise
        return result

    def imap(self, func, iterable, chunksize=1):
        """An iterator over ``func(item)`` in order, computed as the workers go."""
        return self._iterate(IMapIterator, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        """Like imap(), in the order the results arrive."""
        return self._iterate(IMapUnorderedIterator, func, iterable, chunksize)

    def _iterate(self, iterator_class, func, iterable, chunksize):
        self._check_running()
        if chunksize != 1 and not chunksize >= 1:
            raise ValueError("Chunksize must be 1+, not {0!r}".format(chunksize))
        result = iterator_class(self)
        result._chunksize = chunksize
        self._feed(result, func, iterable, chunksize)
        if chunksize == 1:
            return result
        return (item for chunk in result for item in chunk)

    def _feed(self, result, func, iterable, chunksize):
        try:
            self._core.feed(result, func, iterable, chunksize, self._not_running)
        except BaseException:
            result._forget()
            raise

    def close(self):
        """No more tasks: the workers exit once the queued ones are done."""
        util.debug('closing pool')
        if self._state == RUN:
            self._state = CLOSE
            self._core.close()

    def terminate(self):
        """Stop the workers now; unfinished results fail with PoolTerminatedError."""
        util.debug('terminating pool')
        self._state = TERMINATE
        self._terminate()

    def join(self):
        """Wait for the workers to exit (after close() or terminate())."""
        util.debug('joining pool')
        if self._state == RUN:
            raise ValueError("Pool is still running")
        elif self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._core.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()


class ThreadPool(Pool):
    """A Pool whose workers are threads (tasks and results are not pickled)."""

    _wrap_exception = False
    _uses_threads = True

    @staticmethod
    def Process(ctx, *args, **kwds):
        from .dummy import Process
        return Process(*args, **kwds)

    def __init__(self, processes=None, initializer=None, initargs=()):
        Pool.__init__(self, processes, initializer, initargs)


# -- results ---------------------------------------------------------------------------

def _run_callback(callback, value, result):
    try:
        callback(value)
    except Exception:
        # Python 3 loses its result handler thread here and hangs; report it.
        _report_callback_error('callback %r of %r' % (callback, result))


class _PoolJob(object):
    """A job the pool tracks in its cache, by number, until its results are in."""

    def __init__(self, pool):
        self._pool = pool
        self._job = next(job_counter)
        self._cache = pool._cache
        self._cache[self._job] = self

    def _forget(self):
        self._cache.pop(self._job, None)
        self._pool = None

    def _claim(self):
        # Every task of a pool job is sent once it is dequeued (an executor's
        # work item may be cancelled first, and says so here).
        return True


class ApplyResult(_PoolJob):
    """The result of apply_async(): get(), wait(), ready(), successful()."""

    def __init__(self, pool, callback, error_callback):
        self._event = _compat.Event()
        self._callback = callback
        self._error_callback = error_callback
        _PoolJob.__init__(self, pool)

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._success

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value

    def _set(self, i, obj):
        self._success, self._value = obj
        if self._callback and self._success:
            _run_callback(self._callback, self._value, self)
        if self._error_callback and not self._success:
            _run_callback(self._error_callback, self._value, self)
        self._event.set()
        self._forget()

    def _abort(self, error):
        if not self.ready():
            self._set(0, (False, error))


AsyncResult = ApplyResult


class MapResult(ApplyResult):
    """The result of map_async()/starmap_async()."""

    def __init__(self, pool, chunksize, length, callback, error_callback):
        ApplyResult.__init__(self, pool, callback, error_callback=error_callback)
        self._success = True
        self._value = [None] * length
        self._chunksize = chunksize
        if chunksize <= 0:
            self._number_left = 0
            self._event.set()
            self._forget()
        else:
            self._number_left = length // chunksize + bool(length % chunksize)

    def _set(self, i, success_result):
        self._number_left -= 1
        success, result = success_result
        if success and self._success:
            self._value[i * self._chunksize:(i + 1) * self._chunksize] = result
            if self._number_left == 0:
                if self._callback:
                    _run_callback(self._callback, self._value, self)
                self._forget()
                self._event.set()
        else:
            if not success and self._success:
                # Only the first exception is kept.
                self._success = False
                self._value = result
            if self._number_left == 0:
                # Ready only once every chunk is accounted for.
                if self._error_callback:
                    _run_callback(self._error_callback, self._value, self)
                self._forget()
                self._event.set()

    def _abort(self, error):
        if self.ready():
            return
        self._number_left = 0
        if self._success:
            self._success = False
            self._value = error
        if self._error_callback:
            _run_callback(self._error_callback, self._value, self)
        self._forget()
        self._event.set()


class IMapIterator(_PoolJob):
    """The iterator returned by imap(); next(timeout) raises TimeoutError."""

    def __init__(self, pool):
        from collections import deque
        self._cond = _compat.Condition(_compat.Lock())
        self._items = deque()
        self._index = 0
        self._length = None
        self._unsorted = {}
        self._aborted = False
        _PoolJob.__init__(self, pool)

    def __iter__(self):
        return self

    def next(self, timeout=None):
        with self._cond:
            deadline = None if timeout is None else _compat.monotonic() + timeout
            while not self._items:
                if self._index == self._length:
                    self._pool = None
                    raise StopIteration
                if deadline is None:
                    self._cond.wait()
                else:
                    left = deadline - _compat.monotonic()
                    if left <= 0:
                        raise TimeoutError
                    self._cond.wait(left)
            success, value = self._items.popleft()
        if success:
            return value
        raise value

    __next__ = next

    def _set(self, i, obj):
        with self._cond:
            if self._aborted:
                return
            if self._index == i:
                self._items.append(obj)
                self._index += 1
                while self._index in self._unsorted:
                    obj = self._unsorted.pop(self._index)
                    self._items.append(obj)
                    self._index += 1
                self._cond.notify()
            else:
                self._unsorted[i] = obj
            if self._index == self._length:
                self._forget()

    def _set_length(self, length):
        with self._cond:
            if self._aborted:
                return
            self._length = length
            if self._index == self._length:
                self._cond.notify()
                self._forget()

    def _abort(self, error):
        """The error replaces the next undelivered item; iteration ends after it."""
        with self._cond:
            if self._aborted or self._index == self._length:
                return
            self._aborted = True
            self._unsorted.clear()
            self._items.append((False, error))
            self._index += 1
            self._length = self._index
            self._cond.notify()
            self._forget()


class IMapUnorderedIterator(IMapIterator):
    """The iterator returned by imap_unordered()."""

    def _set(self, i, obj):
        with self._cond:
            if self._aborted:
                return
            self._items.append(obj)
            self._index += 1
            self._cond.notify()
            if self._index == self._length:
                self._forget()
