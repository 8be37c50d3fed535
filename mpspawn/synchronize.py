"""Locks, semaphores, conditions, events and barriers shared between processes.

Every object here rests on POSIX semaphores driven by 2.7's C ``SemLock``:
acquire, release, timeouts and the retry after a signal all run in C with
the GIL released, and a pending Ctrl-C is raised as soon as the wait is
interrupted.  How the semaphore is made depends on the object's context:

* spawn and forkserver: a *named* semaphore (``/mps-`` and 16 random base32
  characters, well under macOS's 31-character limit), created exclusively
  with mode 0600 and adopted by the C object.  A spawned child opens it by
  name.  The creating process registers the name with the resource tracker
  and unlinks it when the object is collected or the process exits (after
  joining its children); while a child is being spawned with it, the
  child's Popen holds it too, so the name cannot vanish before the child
  has opened it.
* fork: 2.7's own anonymous semaphore.  Forked children inherit it; handing
  it to a spawned child is refused, as Python 3 does.

Condition, Event and Barrier are built from these semaphores only, never
from ``threading.Condition`` (whose untimed wait ignores Ctrl-C on 2.7 and
whose timed wait polls with sleeps).
"""
import errno
import os
import struct
import sys

from . import context, util, _compat

__all__ = ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Condition',
           'Event', 'Barrier', 'BrokenBarrierError']

RECURSIVE_MUTEX = _compat.SEM_RECURSIVE_MUTEX
SEMAPHORE = _compat.SEM_SEMAPHORE
# The C library's limit (32767 on macOS, INT_MAX on Linux).
SEM_VALUE_MAX = _compat.c_multiprocessing().SemLock.SEM_VALUE_MAX

BrokenBarrierError = _compat.BrokenBarrierError

_C_INT_MAX = 2 ** 31 - 1
_NAME_PREFIX = '/mps-'
_NAME_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567'
_NAME_ATTEMPTS = 100
# Below 0: util's exit function runs these after joining the children.
_UNLINK_EXIT_PRIORITY = -10


def _random_name():
    """A semaphore name nobody can guess (80 random bits)."""
    return _NAME_PREFIX + ''.join(_NAME_ALPHABET[b & 31]
                                  for b in bytearray(os.urandom(16)))


def _create_named_semaphore(kind, value, maxvalue):
    """(name, C SemLock) of a new named semaphore."""
    api = _compat.sem_api()
    for _ in range(_NAME_ATTEMPTS):
        name = _random_name()
        try:
            handle = api.create(name, value)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue
            raise
        try:
            return name, _compat.adopt_semaphore(handle, kind, maxvalue)
        except BaseException:
            api.close(handle)
            _unlink_quietly(name)
            raise
    raise OSError(errno.EEXIST, 'cannot find a free name for a semaphore')


def _unlink_quietly(name):
    try:
        _compat.sem_api().unlink(name)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def _release_name(name):
    """The creator dropped its semaphore: remove the name, tell the tracker."""
    from . import resource_tracker
    try:
        _unlink_quietly(name)
    finally:
        resource_tracker.unregister(name, 'semaphore')


def _context_or_default(ctx):
    if ctx is None:
        return context._default_context.get_context()
    return ctx


def _check_initial_value(value):
    """The exceptions Python 3 raises for a bad initial value (its C SemLock
    takes a C int and sem_open refuses the rest), with clearer messages."""
    if not isinstance(value, _compat.integer_types):
        raise TypeError("'%s' object cannot be interpreted as an integer"
                        % type(value).__name__)
    if value > _C_INT_MAX:
        raise OverflowError('semaphore initial value %d is too large for a C int' % value)
    if value < 0 or value > SEM_VALUE_MAX:
        raise OSError(errno.EINVAL, 'Invalid argument: a semaphore initial value must be '
                      'between 0 and %d, not %d' % (SEM_VALUE_MAX, value))


class SemLock(object):
    """Base of the semaphore-backed objects: wraps one C ``SemLock``."""

    def __init__(self, kind, value, maxvalue, ctx=None):
        ctx = _context_or_default(ctx)
        _check_initial_value(value)
        self._fork_only = ctx.get_start_method() == 'fork'
        if self._fork_only:
            self._name = None
            self._semlock = _compat.anonymous_semaphore(kind, value, maxvalue)
        else:
            self._name, self._semlock = _create_named_semaphore(kind, value, maxvalue)
            from . import resource_tracker
            try:
                resource_tracker.register(self._name, 'semaphore')
            except BaseException:
                _unlink_quietly(self._name)
                raise
            # At exit, only after the children have been joined: one that is
            # still starting has not opened the name yet (Python 3 unlinks
            # first, and such a child dies of FileNotFoundError).
            util.Finalize(self, _release_name, (self._name,),
                          exitpriority=_UNLINK_EXIT_PRIORITY)
        util.debug('created semlock %s', self._name or 'anonymous')
        self._bind_methods()
        util.register_after_fork(self, SemLock._after_fork)

    def _bind_methods(self):
        # The C object's own bound methods: no Python frame per call.
        self.acquire = self._semlock.acquire
        self.release = self._semlock.release

    @staticmethod
    def _after_fork(obj):
        # A forked child owns nothing: RLock counts start again from zero.
        obj._semlock._after_fork()

    def __enter__(self):
        return self._semlock.__enter__()

    def __exit__(self, *args):
        return self._semlock.__exit__(*args)

    def __getstate__(self):
        context.assert_spawning(self)
        if self._fork_only:
            raise RuntimeError(
                'A SemLock created in a fork context is being shared with a '
                'process in a spawn context. This is not supported. Please use '
                'the same context to create multiprocessing objects and Process.')
        context.keep_alive_for_child(self)
        semlock = self._semlock
        return (self._name, semlock.kind, semlock.maxvalue)

    def __setstate__(self, state):
        name, kind, maxvalue = state
        api = _compat.sem_api()
        handle = api.open(name)
        try:
            self._semlock = _compat.adopt_semaphore(handle, kind, maxvalue)
        except BaseException:
            api.close(handle)
            raise
        self._name = name
        self._fork_only = False
        util.debug('opened semlock %s', name)
        self._bind_methods()
        util.register_after_fork(self, SemLock._after_fork)


class Semaphore(SemLock):
    """A counter that blocks ``acquire`` at zero."""

    def __init__(self, value=1, ctx=None):
        SemLock.__init__(self, SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self):
        """The current count (NotImplementedError on macOS, whose
        sem_getvalue does not work, as in Python 3)."""
        if _compat.HAVE_BROKEN_SEM_GETVALUE:
            # 2.7's C SemLock raises it too when built there; say it plainly
            # whatever the build.
            raise NotImplementedError('sem_getvalue() does not work on this platform')
        return self._semlock._get_value()

    def _value_for_repr(self):
        try:
            return self._semlock._get_value()
        except Exception:
            return 'unknown'

    def __repr__(self):
        return '<%s(value=%s)>' % (type(self).__name__, self._value_for_repr())


class BoundedSemaphore(Semaphore):
    """A semaphore whose ``release`` past its initial value raises ValueError."""

    def __init__(self, value=1, ctx=None):
        SemLock.__init__(self, SEMAPHORE, value, value, ctx=ctx)

    def __repr__(self):
        return '<%s(value=%s, maxvalue=%s)>' % (
            type(self).__name__, self._value_for_repr(), self._semlock.maxvalue)


class Lock(SemLock):
    """A non-recursive lock; any thread or process may release it."""

    def __init__(self, ctx=None):
        SemLock.__init__(self, SEMAPHORE, 1, 1, ctx=ctx)

    def __repr__(self):
        semlock = self._semlock
        try:
            if semlock._is_mine():
                owner = util.thread_qualified_process_name()
            elif semlock._get_value() == 1:
                owner = 'None'
            elif semlock._count() > 0:
                owner = 'SomeOtherThread'
            else:
                owner = 'SomeOtherProcess'
        except Exception:
            owner = 'unknown'
        return '<%s(owner=%s)>' % (type(self).__name__, owner)


class RLock(SemLock):
    """A recursive lock, released only by the thread that holds it."""

    def __init__(self, ctx=None):
        SemLock.__init__(self, RECURSIVE_MUTEX, 1, 1, ctx=ctx)

    def __repr__(self):
        semlock = self._semlock
        try:
            if semlock._is_mine():
                owner, count = util.thread_qualified_process_name(), semlock._count()
            elif semlock._get_value() == 1:
                owner, count = 'None', 0
            elif semlock._count() > 0:
                owner, count = 'SomeOtherThread', 'nonzero'
            else:
                owner, count = 'SomeOtherProcess', 'nonzero'
        except Exception:
            owner, count = 'unknown', 'unknown'
        return '<%s(%s, %s)>' % (type(self).__name__, owner, count)


class Condition(object):
    """A condition variable over a Lock or RLock (an RLock by default).

    Three counting semaphores carry the protocol between processes: each
    waiter adds one to ``_sleepers`` before it sleeps and one to ``_woken``
    when it is done; ``notify`` hands out tokens on ``_wakeup`` and waits
    until every waiter it woke has left, so a notification is never lost to
    a waiter that arrives later.
    """

    def __init__(self, lock=None, ctx=None):
        ctx = _context_or_default(ctx)
        self._lock = lock or ctx.RLock()
        self._sleepers = ctx.Semaphore(0)
        self._woken = ctx.Semaphore(0)
        self._wakeup = ctx.Semaphore(0)
        self._bind_methods()

    def _bind_methods(self):
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __getstate__(self):
        context.assert_spawning(self)
        return (self._lock, self._sleepers, self._woken, self._wakeup)

    def __setstate__(self, state):
        self._lock, self._sleepers, self._woken, self._wakeup = state
        self._bind_methods()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __repr__(self):
        try:
            waiters = (self._sleepers._semlock._get_value() -
                       self._woken._semlock._get_value())
        except Exception:
            waiters = 'unknown'
        return '<%s(%s, %s)>' % (type(self).__name__, self._lock, waiters)

    def _check_owned(self, message):
        if not self._lock._semlock._is_mine():
            raise AssertionError(message)

    def wait(self, timeout=None):
        """Release the lock, sleep until notified (or ``timeout`` seconds
        pass), take the lock back; False if the time ran out."""
        self._check_owned('must acquire() condition before using wait()')
        self._sleepers.release()
        # Give up every level of a recursive lock, and take them all back.
        depth = self._lock._semlock._count()
        for _ in range(depth):
            self._lock.release()
        try:
            return self._wakeup.acquire(True, timeout)
        finally:
            self._woken.release()
            for _ in range(depth):
                self._lock.acquire()

    def notify(self, n=1):
        """Wake up to ``n`` waiters; returns once they are awake."""
        self._check_owned('lock is not owned')
        if self._wakeup.acquire(False):
            raise AssertionError('notify: a wake-up token was left over')
        # Waiters that timed out since the last notify are in both counts:
        # cancel them out.
        while self._woken.acquire(False):
            if not self._sleepers.acquire(False):
                raise AssertionError('notify: more waiters woke than slept')
        woken = 0
        while woken < n and self._sleepers.acquire(False):
            self._wakeup.release()
            woken += 1
        if woken:
            for _ in range(woken):
                self._woken.acquire()
            # A waiter that timed out just as we woke it left its token.
            while self._wakeup.acquire(False):
                pass

    def notify_all(self):
        self.notify(sys.maxsize)

    def wait_for(self, predicate, timeout=None):
        """Wait until ``predicate()`` is true (or ``timeout`` seconds pass);
        returns the last value of the predicate."""
        return util.wait_for_predicate(predicate, self.wait, timeout)


class Event(object):
    """A flag that processes can set, clear and wait for."""

    def __init__(self, ctx=None):
        ctx = _context_or_default(ctx)
        self._cond = ctx.Condition(ctx.Lock())
        # Value 1 while the flag is set, 0 while it is clear.
        self._flag = ctx.Semaphore(0)

    def _peek(self):
        # Called with the condition held.
        if self._flag.acquire(False):
            self._flag.release()
            return True
        return False

    def is_set(self):
        with self._cond:
            return self._peek()

    def set(self):
        with self._cond:
            if not self._peek():
                self._flag.release()
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self._flag.acquire(False)

    def wait(self, timeout=None):
        """Block until the flag is set (or ``timeout`` seconds pass);
        returns the flag."""
        with self._cond:
            if not self._peek():
                self._cond.wait(timeout)
            return self._peek()

    def __repr__(self):
        return '<%s at %#x %s>' % (type(self).__name__, id(self),
                                   'set' if self.is_set() else 'unset')


# Barrier states, kept in shared memory with the count of waiting parties.
_FILLING = 0
_DRAINING = 1
_RESETTING = -1
_BROKEN = -2
_BARRIER_LAYOUT = struct.Struct('ii')


class Barrier(object):
    """``threading.Barrier`` for processes: ``parties`` processes (or
    threads) meet in ``wait()``; ``action`` runs in the last to arrive."""

    def __init__(self, parties, action=None, timeout=None, ctx=None):
        ctx = _context_or_default(ctx)
        if parties < 1:
            raise ValueError('parties must be >= 1')
        from .heap import BufferWrapper
        wrapper = BufferWrapper(_BARRIER_LAYOUT.size)
        self.__setstate__((parties, action, timeout, ctx.Condition(), wrapper))
        self._set_shared(_FILLING, 0)

    def __getstate__(self):
        return (self._parties, self._action, self._timeout, self._cond, self._wrapper)

    def __setstate__(self, state):
        self._parties, self._action, self._timeout, self._cond, self._wrapper = state
        self._buffer, self._offset, _ = self._wrapper.buffer_region()

    # -- the shared (state, count) pair; read and written under self._cond --

    def _get_shared(self):
        return _BARRIER_LAYOUT.unpack_from(self._buffer, self._offset)

    def _set_shared(self, state, count):
        _BARRIER_LAYOUT.pack_into(self._buffer, self._offset, state, count)

    @property
    def _state(self):
        return self._get_shared()[0]

    @_state.setter
    def _state(self, value):
        self._set_shared(value, self._count)

    @property
    def _count(self):
        return self._get_shared()[1]

    @_count.setter
    def _count(self, value):
        self._set_shared(self._state, value)

    # -- the API --

    def wait(self, timeout=None):
        """Wait for all parties; returns this party's arrival index
        (0 .. parties-1).  BrokenBarrierError if the barrier breaks or the
        wait times out (which breaks it)."""
        if timeout is None:
            timeout = self._timeout
        with self._cond:
            self._wait_for_previous_round()
            index = self._count
            self._count = index + 1
            try:
                if index + 1 == self._parties:
                    self._trip()
                else:
                    self._wait_for_trip(timeout)
                return index
            finally:
                self._count -= 1
                self._open_next_round_if_last()

    def _wait_for_previous_round(self):
        while self._state in (_DRAINING, _RESETTING):
            self._cond.wait()
        if self._state == _BROKEN:
            raise BrokenBarrierError()

    def _trip(self):
        try:
            if self._action:
                self._action()
            self._state = _DRAINING
            self._cond.notify_all()
        except BaseException:
            self._break()
            raise

    def _wait_for_trip(self, timeout):
        if not self._cond.wait_for(lambda: self._state != _FILLING, timeout):
            self._break()
            raise BrokenBarrierError()
        if self._state < 0:
            raise BrokenBarrierError()

    def _open_next_round_if_last(self):
        if self._count == 0 and self._state in (_DRAINING, _RESETTING):
            self._state = _FILLING
            self._cond.notify_all()

    def reset(self):
        """Back to the empty state; current waiters get BrokenBarrierError."""
        with self._cond:
            if self._count > 0:
                if self._state in (_FILLING, _BROKEN):
                    # The last waiter to leave finishes the reset.
                    self._state = _RESETTING
            else:
                self._state = _FILLING
            self._cond.notify_all()

    def abort(self):
        """Break the barrier: current and future waiters get BrokenBarrierError."""
        with self._cond:
            self._break()

    def _break(self):
        self._state = _BROKEN
        self._cond.notify_all()

    @property
    def parties(self):
        return self._parties

    @property
    def n_waiting(self):
        """How many parties are waiting now."""
        state, count = self._get_shared()
        return count if state == _FILLING else 0

    @property
    def broken(self):
        return self._state == _BROKEN

    def __repr__(self):
        cls = type(self)
        if self.broken:
            return '<%s.%s at %#x: broken>' % (cls.__module__, cls.__name__, id(self))
        return '<%s.%s at %#x: waiters=%d/%d>' % (cls.__module__, cls.__name__, id(self),
                                                 self.n_waiting, self.parties)
