"""Queues shared between processes: Queue, JoinableQueue and SimpleQueue.

Python 3's design: a pipe carries framed pickles, a lock per direction keeps
the frames of concurrent readers or writers apart, and a bounded semaphore
counts the items (it bounds ``maxsize`` and answers ``qsize``).  ``put``
never blocks on a full pipe: what the pipe cannot take at once is left to a
feeder thread.

Differences that matter to a user:

* ``put`` pickles the item in the caller's thread, with the context's
  reducer.  An unpicklable item raises there, naming where the culprit sits,
  and nothing enters the queue (Python 3 fails later, in the feeder thread).
  The item is also copied as it is at the moment of ``put``.
* A small item goes into the pipe from ``put`` itself while the pipe has
  room (one write, no thread).  The first time it has not, the feeder thread
  starts, and from then on every item goes through it, in batches: items of
  one thread keep their order only if no item can overtake one that is
  waiting in the feeder's buffer or in its hands.
* ``get`` blocks in read(), poll() or the C semaphore, so Ctrl-C interrupts
  it at once; the feeder thread blocks every signal so it never swallows one.
"""
import errno
import os
import select
import struct
import weakref

from . import connection, context, reduction, _compat
from .resource_sharer import _resource_sharer as _sharer
from .util import debug, info, Finalize, register_after_fork, is_exiting

__all__ = ['Queue', 'SimpleQueue', 'JoinableQueue']

_std_queue = _compat.queue_module()
Empty = _std_queue.Empty
Full = _std_queue.Full

# The pipe carries frames: a 4-byte big-endian length (-1 then 8 bytes for
# huge items), the pickle, and for small items zero padding up to
# _MIN_FRAME bytes.  As no frame is shorter than _MIN_FRAME, a reader can
# always read that much without taking any of the next item, so a small
# item costs one read instead of two (the pipe is private to the queue).
_MIN_FRAME = 128
_HEADER = struct.Struct('!i')
_BIG_HEADER = struct.Struct('!Q')
_SMALL_FRAME = struct.Struct('!i%ds' % (_MIN_FRAME - _HEADER.size))
_SMALL_PAYLOAD = _MIN_FRAME - _HEADER.size
_unpack_header = _HEADER.unpack_from
_read = os.read
_write = os.write
_plain_dumps = _compat.pickle.dumps
# Pickled without ever consulting ForkingPickler's reducers.
_SCALAR_TYPES = frozenset([type(None), bool, int, float, bytes, _compat.text_type] +
                          list(_compat.integer_types))
# The feeder joins small frames into one write up to this many bytes; bigger
# items go out as they are, without a copy.
_BATCH_BYTES = 1 << 18
# Items of this size or more are read into one preallocated buffer, and
# byte strings this long are written without being copied into a pickle.
_BIG_BYTES = 1 << 16
_LE_INT = struct.Struct('<i')
_MAX_BINSTRING = 0x7fffffff
_SEPARATE_WRITE = 1 << 16
# A get() with a timeout that has started reading an item gives up once no
# byte of it arrives for this long after the deadline: its writer died half
# way through the item (the queue does not know its writers, so a stall is
# the only sign).  The queue is corrupt then, as Python 3 warns.
_STALL_LIMIT = 5.0
# put() writes a frame itself when the pipe takes it whole or not at all.
_DIRECT_LIMIT = getattr(select, 'PIPE_BUF', 512) - _HEADER.size


def _forking_pickler():
    reducer = context._reducer     # set through ctx.reducer
    return (reduction if reducer is None else reducer).ForkingPickler


def _dumps(obj):
    return _dumps_or_explain(_forking_pickler().dumps, obj)


def _dumps_or_explain(dumps, obj):
    """``dumps(obj)``; an error says where the unpicklable part is."""
    mark = _sharer.mark()
    try:
        return dumps(obj)
    except Exception as exc:
        _explain_pickling_error(exc, obj, mark)


def _explain_pickling_error(exc, obj, mark):
    """Raise ``exc`` naming where the unpicklable part of ``obj`` is; the
    descriptors of connections pickled before the failure are let go."""
    try:
        reduction.explain_pickling_error(exc, [('obj', obj)])
    finally:
        _sharer.discard_since(mark)


def _read_exact(fd, size, chunks=None, deadline=None):
    """connection.read_exact; with a ``deadline``, OSError if the bytes stop
    coming (see _STALL_LIMIT)."""
    stall_check = None if deadline is None else (lambda: _wait_for_rest(fd, deadline))
    return connection.read_exact(fd, size, chunks, stall_check)


def _wait_for_rest(fd, deadline):
    wait = max(0.0, deadline - _compat.monotonic()) + _STALL_LIMIT
    if not _compat.wait_fds([fd], wait):
        raise OSError('queue item incomplete: none of its remaining bytes arrived '
                      'for %.0f seconds (was its writer killed while putting it?); '
                      'the queue is corrupt' % _STALL_LIMIT)


def _recv_message(fd, deadline=None):
    """The next item's pickle from the pipe ``fd`` (the caller holds the
    read lock); with a ``deadline``, a stalled item raises OSError."""
    try:
        first = _read(fd, _MIN_FRAME)
    except OSError as exc:
        if exc.errno != errno.EINTR:
            raise
        first = b''
    return _complete_message(fd, first, deadline)


def _complete_message(fd, first, deadline=None):
    """The pickle of the frame whose first bytes ``first`` were read."""
    if len(first) != _MIN_FRAME:
        if first:
            first = _read_exact(fd, _MIN_FRAME - len(first), [first], deadline)
        else:
            first = _read_exact(fd, _MIN_FRAME, None, deadline)
    size, = _unpack_header(first)
    if 0 <= size <= _SMALL_PAYLOAD:
        return first[4:4 + size]
    if size == -1:
        size, = _BIG_HEADER.unpack_from(first, 4)
        head = first[12:]
    elif size < 0:
        raise OSError('bad message length')
    else:
        head = first[4:]
    if size >= _BIG_BYTES:
        return _read_big(fd, head, size, deadline)
    return _read_exact(fd, size - len(head), [head], deadline)


class _BytesPickle(object):
    """The protocol 2 pickle of a large byte string, held as the string
    between the opcodes around it: the string (immutable) is not copied
    until the pipe takes it."""

    __slots__ = ('parts', 'size')

    def __init__(self, data):
        prefix = b'\x80\x02T' + _LE_INT.pack(len(data))     # PROTO 2, BINSTRING
        self.parts = (prefix, data, b'.')                      # STOP
        self.size = len(prefix) + len(data) + 1

    def __len__(self):
        return self.size


def _read_big(fd, head, size, deadline=None):
    """The rest of a large frame whose first bytes are ``head``, read
    straight into one buffer (a bytearray)."""
    import _io
    buf = bytearray(size)
    buf[:len(head)] = head
    view = memoryview(buf)
    pos = len(head)
    reader = _io.FileIO(fd, 'rb', closefd=False)
    while pos < size:
        if deadline is not None:
            _wait_for_rest(fd, deadline)
        try:
            n = reader.readinto(view[pos:])
        except (IOError, OSError) as exc:
            if _compat.is_eintr(exc):
                continue
            raise
        if not n:
            raise OSError('got end of file during message')
        pos += n
    return buf


def _frame(data):
    """``data`` as one frame (a small one as a single string)."""
    size = len(data)
    if size <= _SMALL_PAYLOAD:
        return [_SMALL_FRAME.pack(size, data)]
    if size > 0x7fffffff:
        return [_HEADER.pack(-1) + _BIG_HEADER.pack(size), data]
    return [_HEADER.pack(size), data]


def _context_or_default(ctx):
    return ctx if ctx is not None else context._default_context.get_context()


# -- Queue -----------------------------------------------------------------------

class Queue(object):
    """A process-shared FIFO queue with Python 3's multiprocessing.Queue API."""

    def __init__(self, maxsize=0, ctx=None):
        ctx = _context_or_default(ctx)
        if maxsize <= 0:
            from .synchronize import SEM_VALUE_MAX as maxsize
        self._maxsize = maxsize
        self._reader, self._writer = connection.Pipe(duplex=False)
        self._rlock = ctx.Lock()
        self._opid = os.getpid()
        self._wlock = ctx.Lock()
        self._sem = ctx.BoundedSemaphore(maxsize)
        # Every process writes without blocking (see _send), so the shared
        # write end is non-blocking.
        _set_nonblocking(self._writer.fileno())
        # Set by concurrent.futures-style users that expect the reader to vanish.
        self._ignore_epipe = False
        self._reset()
        register_after_fork(self, Queue._after_fork)

    def __getstate__(self):
        context.assert_spawning(self)
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer,
                self._rlock, self._wlock, self._sem, self._opid)

    def __setstate__(self, state):
        (self._ignore_epipe, self._maxsize, self._reader, self._writer,
         self._rlock, self._wlock, self._sem, self._opid) = state
        self._reset()

    def _after_fork(self):
        debug('Queue._after_fork()')
        # The feeder thread and its buffer stayed in the parent.
        self._reset()

    def _reset(self):
        self._feeder = None
        self._start_lock = _compat.allocate_lock()
        self._jointhread = None
        self._joincancelled = False
        self._closed = False
        self._close = None
        self._poll = self._reader.poll
        self._reader_fd = self._reader.fileno()
        self._writer_fd = self._writer.fileno()
        pickler = _forking_pickler()
        self._dumps = pickler.dumps
        self._loads = pickler.loads
        # Pickles without persistent ids need no ForkingPickler to load.
        self._plain_loads = _compat.pickle.loads if pickler is reduction.ForkingPickler else None

    def _check_open(self):
        if self._closed:
            raise ValueError('Queue %r is closed' % (self,))

    def put(self, obj, block=True, timeout=None):
        """Put ``obj`` on the queue, waiting up to ``timeout`` seconds (forever
        if None) for a free slot if ``block``; Full if there is none."""
        if self._closed:
            self._check_open()
        if type(obj) in _SCALAR_TYPES and self._plain_loads is not None:
            # No reducer applies to these: the same bytes, without the overhead.
            if type(obj) is bytes and _BIG_BYTES <= len(obj) < _MAX_BINSTRING:
                data = _BytesPickle(obj)
            else:
                data = _plain_dumps(obj, _compat.PICKLE_PROTOCOL)
        else:
            mark = _sharer._next_key
            try:
                data = self._dumps(obj)
            except Exception as exc:
                _explain_pickling_error(exc, obj, mark)
        if not self._sem.acquire(block, timeout):
            raise Full
        # _send's common case, inline: a small item, no feeder thread yet.
        size = len(data)
        if (size <= _SMALL_PAYLOAD and self._feeder is None
                and self._wlock.acquire(False)):
            try:
                written = _write(self._writer_fd, _SMALL_FRAME.pack(size, data))
            except OSError:
                written = 0
            finally:
                self._wlock.release()
            if written:
                return
        self._send(data)

    def _send(self, data):
        """Write ``data`` now if that cannot block, else leave it to the
        feeder thread.  A small frame (up to PIPE_BUF) is written whole or
        not at all.  Once the feeder thread exists everything goes through
        it: a direct write could overtake an item of the same thread that
        the feeder holds (seen with two producer threads when the check
        looked at its buffer and busy flag instead)."""
        feeder = self._feeder
        size = len(data)
        if size <= _DIRECT_LIMIT and feeder is None:
            if size <= _SMALL_PAYLOAD:
                frame = _SMALL_FRAME.pack(size, data)
            else:
                frame = _HEADER.pack(size) + data
            wlock = self._wlock
            if wlock.acquire(False):
                try:
                    written = os.write(self._writer_fd, frame)
                except OSError:
                    written = 0     # full (EAGAIN), or an error the feeder reports
                finally:
                    wlock.release()
                if written:     # all of it: up to PIPE_BUF bytes go whole or not at all
                    return
        (feeder or self._start_thread()).push(data)

    def get(self, block=True, timeout=None):
        """Remove and return an item, waiting up to ``timeout`` seconds
        (forever if None) if ``block``; Empty if there is none."""
        if self._closed:
            self._check_open()
        if block and timeout is None:
            rlock = self._rlock
            rlock.acquire()
            try:
                # _recv_message's common case, inline: a small item.
                try:
                    first = _read(self._reader_fd, _MIN_FRAME)
                except OSError:
                    first = b''     # EINTR; another error comes again below
                if len(first) == _MIN_FRAME:
                    size, = _unpack_header(first)
                    if 0 <= size <= _SMALL_PAYLOAD:
                        res = first[4:4 + size]
                    else:
                        res = _complete_message(self._reader_fd, first)
                else:
                    res = _complete_message(self._reader_fd, first)
            finally:
                rlock.release()
            self._sem.release()
        else:
            if block:
                deadline = _compat.monotonic() + timeout
            if not self._rlock.acquire(block, timeout):
                raise Empty
            try:
                if block:
                    if not self._poll(deadline - _compat.monotonic()):
                        raise Empty
                elif not self._poll():
                    raise Empty
                res = _recv_message(self._reader_fd,
                                    deadline if block else _compat.monotonic())
                self._sem.release()
            finally:
                self._rlock.release()
        # Unpickled after the lock is released: other readers need not wait.
        if self._plain_loads is not None:
            # reduction.ForkingPickler.loads's common case, inline.
            if len(res) < 4096 and b'Q' not in res and b'P' not in res:
                return self._plain_loads(res)
            return self._loads(res)     # takes the bytearray of a big item
        if type(res) is bytearray:
            res = bytes(res)
        return self._loads(res)

    def qsize(self):
        """The approximate number of items (NotImplementedError on macOS,
        whose sem_getvalue is broken, as in Python 3)."""
        return self._maxsize - self._sem._semlock._get_value()

    def empty(self):
        return not self._poll()

    def full(self):
        return self._sem._semlock._is_zero()

    def get_nowait(self):
        return self.get(False)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def close(self):
        """No more items from this process; the feeder thread writes what is
        buffered, then closes the pipe."""
        self._closed = True
        close = self._close
        if close:
            self._close = None
            close()

    def join_thread(self):
        """Wait for the feeder thread (after close()) to flush the buffer."""
        debug('Queue.join_thread()')
        assert self._closed, 'Queue %r not closed' % (self,)
        if self._jointhread:
            self._jointhread()

    def cancel_join_thread(self):
        """Do not wait for the feeder thread at exit (buffered items may be lost)."""
        debug('Queue.cancel_join_thread()')
        self._joincancelled = True
        try:
            self._jointhread.cancel()
        except AttributeError:
            pass

    def _start_thread(self):
        with self._start_lock:
            if self._feeder is not None:
                return self._feeder
            debug('Queue._start_thread()')
            feeder = _Feeder(self._writer, self._reader, self._wlock, self._sem,
                             self._ignore_epipe, self._on_queue_feeder_error)
            feeder.start()
            if not self._joincancelled:
                self._jointhread = Finalize(feeder.thread, Queue._finalize_join,
                                            [weakref.ref(feeder.thread)],
                                            exitpriority=-5)
            # Collected or at exit: the feeder flushes, then stops.
            self._close = Finalize(self, feeder.stop, exitpriority=10)
            self._feeder = feeder
            return feeder

    @staticmethod
    def _finalize_join(thread_ref):
        thread = thread_ref()
        if thread is not None:
            debug('joining queue thread')
            thread.join()
            debug('... queue thread joined')

    @staticmethod
    def _on_queue_feeder_error(e, obj):
        """Called in the feeder thread when writing to the pipe fails."""
        import traceback
        traceback.print_exc()


_SENTINEL = object()


class _Feeder(object):
    """The thread that writes a queue's pickled items to its pipe, with the
    buffer between ``put`` and that thread.

    The thread sleeps on a plain lock only when the buffer is empty; ``put``
    wakes it only then, so a busy queue costs ``put`` a deque append.
    """

    def __init__(self, writer, reader, wlock, sem, ignore_epipe, onerror):
        import collections
        self.buffer = collections.deque()
        self.idle = False
        self._flag_lock = _compat.allocate_lock()
        # Locked while no wake-up is pending; put() releases it to wake the thread.
        self._wakeup = _compat.allocate_lock()
        self._wakeup.acquire()
        self._writer = writer
        self._reader = reader
        self._wlock = wlock
        self._sem = sem
        self._ignore_epipe = ignore_epipe
        self._onerror = onerror
        self.thread = None

    def start(self):
        import threading
        self.thread = threading.Thread(target=self._run, name='QueueFeederThread')
        self.thread.daemon = True
        self.thread.start()

    def push(self, data):
        self.buffer.append(data)
        if self.idle:
            self._wake()

    def stop(self):
        debug('telling queue thread to quit')
        self.push(_SENTINEL)

    def _wake(self):
        with self._flag_lock:
            if self.idle:
                self.idle = False
                self._wakeup.release()

    def _sleep_until_work(self):
        # Announce the sleep before the last look at the buffer: a put()
        # that appends after that look sees the flag and wakes us.
        buffer = self.buffer
        self.idle = True
        if buffer:
            with self._flag_lock:
                woken = not self.idle
                self.idle = False
            if not woken:
                return
        self._wakeup.acquire()

    def _run(self):
        _compat.block_signals_in_thread()
        debug('starting thread to feed data to pipe')
        buffer = self.buffer
        popleft = buffer.popleft
        while True:
            if not buffer:
                self._sleep_until_work()
            batch = []
            size = 0
            stopping = False
            while buffer and size < _BATCH_BYTES:
                data = popleft()
                if data is _SENTINEL:
                    stopping = True
                    break
                batch.append(data)
                size += len(data)
            if batch and not self._write_batch(batch):
                return
            if stopping:
                debug('feeder thread got sentinel -- exiting')
                self._reader.close()
                self._writer.close()
                return

    def _write_batch(self, batch):
        """Write ``batch`` under the write lock; False if the thread must end."""
        try:
            fd = self._writer.fileno()
            self._wlock.acquire()
            try:
                # Every write to the pipe is made under the write lock, so
                # its holder may make the shared write end blocking: one
                # system call then writes a whole big item, the kernel
                # filling the pipe as readers drain it.
                _compat.set_blocking(fd, True)
                try:
                    _write_frames(fd, batch)
                finally:
                    _compat.set_blocking(fd, False)
            finally:
                self._wlock.release()
        except Exception as exc:
            if self._ignore_epipe and getattr(exc, 'errno', None) == errno.EPIPE:
                return False
            if is_exiting():
                info('error in queue thread: %s', exc)
                return False
            # The items are lost: they must not count as queued.
            for _ in batch:
                self._sem.release()
            self._onerror(exc, None)
        return True


def _write_frames(fd, items):
    """Write each of ``items`` as a frame, joining the small ones."""
    pending = []
    for data in items:
        if len(data) >= _SEPARATE_WRITE:
            header, data = _frame(data)
            pending.append(header)
            if type(data) is _BytesPickle:
                prefix, payload, suffix = data.parts
                pending.append(prefix)
                _write_all(fd, b''.join(pending))
                _write_all(fd, payload)
                pending = [suffix]
            else:
                _write_all(fd, b''.join(pending))
                _write_all(fd, data)
                pending = []
        else:
            pending.extend(_frame(data))
    if pending:
        _write_all(fd, b''.join(pending))


def _set_nonblocking(fd):
    _compat.set_blocking(fd, False)




def _wait_writable(fd):
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while True:
        try:
            return poller.poll()
        except (select.error, OSError) as exc:
            if not _compat.is_eintr(exc):
                raise


def _write_all(fd, data):
    """Write all of ``data`` to ``fd`` (waiting for room if it is non-blocking)."""
    view = None
    while data:
        try:
            n = os.write(fd, data)
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                _wait_writable(fd)
                continue
            raise
        if n == len(data):
            return
        if view is None:
            view = memoryview(data)
            data = view
        data = data[n:]


# -- JoinableQueue ----------------------------------------------------------------

class JoinableQueue(Queue):
    """A Queue whose join() waits until task_done() was called for every item."""

    def __init__(self, maxsize=0, ctx=None):
        ctx = _context_or_default(ctx)
        Queue.__init__(self, maxsize, ctx=ctx)
        self._unfinished_tasks = ctx.Semaphore(0)
        self._cond = ctx.Condition()

    def __getstate__(self):
        return Queue.__getstate__(self) + (self._cond, self._unfinished_tasks)

    def __setstate__(self, state):
        Queue.__setstate__(self, state[:-2])
        self._cond, self._unfinished_tasks = state[-2:]

    def put(self, obj, block=True, timeout=None):
        if self._closed:
            self._check_open()
        data = _dumps_or_explain(self._dumps, obj)
        if not self._sem.acquire(block, timeout):
            raise Full
        with self._cond:
            self._unfinished_tasks.release()
            self._send(data)

    def task_done(self):
        """One item taken with get() is finished."""
        with self._cond:
            if not self._unfinished_tasks.acquire(False):
                raise ValueError('task_done() called too many times')
            if self._unfinished_tasks._semlock._is_zero():
                self._cond.notify_all()

    def join(self):
        """Wait until every item put has been marked done."""
        with self._cond:
            if not self._unfinished_tasks._semlock._is_zero():
                self._cond.wait()


# -- SimpleQueue --------------------------------------------------------------------

class SimpleQueue(object):
    """A locked pipe: put() writes the pickle directly, no thread, no size."""

    def __init__(self, ctx=None):
        ctx = _context_or_default(ctx)
        self._reader, self._writer = connection.Pipe(duplex=False)
        self._rlock = ctx.Lock()
        self._wlock = ctx.Lock()
        self._poll = self._reader.poll

    def close(self):
        self._reader.close()
        self._writer.close()

    def empty(self):
        return not self._poll()

    def __getstate__(self):
        context.assert_spawning(self)
        return (self._reader, self._writer, self._rlock, self._wlock)

    def __setstate__(self, state):
        (self._reader, self._writer, self._rlock, self._wlock) = state
        self._poll = self._reader.poll

    def get(self):
        self._rlock.acquire()
        try:
            res = self._reader.recv_bytes()
        finally:
            self._rlock.release()
        return _forking_pickler().loads(res)

    def put(self, obj):
        data = _dumps(obj)
        self._wlock.acquire()
        try:
            self._writer.send_bytes(data)
        finally:
            self._wlock.release()
