"""mpspawn.dummy: the multiprocessing API backed by threads (Python 3's
multiprocessing.dummy), for code that wants to switch between processes
and threads without other changes.

The synchronisation objects and the queue are the Python 3 threading ones
of ``_compat`` (timeouts, boolean waits, Barrier), and join() of a thread
Process sleeps until the thread ends instead of polling (with a timeout) or
ignoring Ctrl-C (without) as 2.7's Thread.join does.
"""
import sys
import threading
import weakref

from .connection import Pipe
from .._compat import (Lock, RLock, Semaphore, BoundedSemaphore, Condition,
                       Event, Barrier, thread_queue_class)

__all__ = [
    'Process', 'current_process', 'active_children', 'freeze_support',
    'Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Condition',
    'Event', 'Barrier', 'Queue', 'Manager', 'Pipe', 'Pool', 'JoinableQueue',
]

Queue = thread_queue_class()
JoinableQueue = Queue


class DummyProcess(threading.Thread):
    """A thread with the Process API (start, join, is_alive, exitcode)."""

    def __init__(self, group=None, target=None, name=None, args=(), kwargs={}):
        threading.Thread.__init__(self, group, target, name, args, kwargs)
        self._pid = None
        self._children = weakref.WeakKeyDictionary()
        self._start_called = False
        self._parent = current_process()
        self._finished = Event()

    def start(self):
        if self._parent is not current_process():
            raise RuntimeError(
                "Parent is {0!r} but current_process is {1!r}".format(
                    self._parent, current_process()))
        self._start_called = True
        if hasattr(self._parent, '_children'):
            self._parent._children[self] = None
        run = self.run

        def run_then_signal():
            try:
                run()
            finally:
                self._finished.set()
        # An instance attribute: it wraps a run() overridden in a subclass too.
        self.run = run_then_signal
        threading.Thread.start(self)

    def join(self, timeout=None):
        if self.ident is not None and self is not threading.current_thread():
            # Sleeps on a semaphore: no polling, and Ctrl-C interrupts it.
            if not self._finished.wait(timeout):
                return
            # run() is over; the thread is a moment away from its end.
        threading.Thread.join(self)

    @property
    def exitcode(self):
        if self._start_called and not self.is_alive():
            return 0
        return None


Process = DummyProcess
current_process = threading.current_thread
current_process()._children = weakref.WeakKeyDictionary()


def active_children():
    """The started threads of the current thread that are still running."""
    children = current_process()._children
    for p in list(children):
        if not p.is_alive():
            children.pop(p, None)
    return list(children)


def freeze_support():
    pass


# The same class as the manager's Namespace.
from ..managers import Namespace  # noqa: E402,F401


dict = dict
list = list


def Array(typecode, sequence, lock=True):
    import array
    return array.array(typecode, sequence)


class Value(object):
    """A value with a ``value`` attribute (no lock is needed between threads
    that only read and write it)."""

    def __init__(self, typecode, value, lock=True):
        self._typecode = typecode
        self._value = value

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value):
        self._value = value

    def __repr__(self):
        return '<%s(%r, %r)>' % (type(self).__name__, self._typecode, self._value)


def Manager():
    """This module: its types are already shared between threads."""
    return sys.modules[__name__]


def shutdown():
    pass


def Pool(processes=None, initializer=None, initargs=()):
    """A pool of worker threads (multiprocessing.pool.ThreadPool)."""
    from ..pool import ThreadPool
    return ThreadPool(processes, initializer, initargs)
