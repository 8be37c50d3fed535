"""Child-side functions and registered types for the manager tests (kept
apart from the test modules so a spawned child never imports pytest)."""
import os
import time

import mpspawn
from mpspawn.managers import BaseManager, BaseProxy

try:
    from threading import BrokenBarrierError
except ImportError:             # Python 2.7: mpspawn provides it
    from mpspawn._compat import BrokenBarrierError

try:
    import queue
except ImportError:             # Python 2.7
    import Queue as queue

# Every blocking call in a child has a deadline, so a bug fails a test
# instead of leaving a process behind.
DEADLINE = 30


def report(conn, value):
    conn.send(value)
    conn.close()


# -- SyncManager types used from children -----------------------------------------------

def fill_containers(d, l, ns, conn):
    d['child'] = os.getpid()
    d.update(x=1, y=2)
    l.append('from child')
    l.extend([1, 2])
    ns.seen = sorted(d.keys())
    ns.total = len(l)
    report(conn, (d['x'], l[0], 'child' in d))


def add_under_lock(lock, value, counts, key, times):
    for _ in range(times):
        with lock:
            # A read-modify-write that loses updates without the lock.
            value.value = value.value + 1
            counts[key] = counts.get(key, 0) + 1


def try_acquire(lock, timeout, conn):
    got = lock.acquire(True, timeout)
    if got:
        lock.release()
    report(conn, got)


def hold_lock(lock, conn, release_event):
    lock.acquire()
    conn.send('held')
    release_event.wait(DEADLINE)
    lock.release()
    conn.close()


def produce(q, items):
    for item in items:
        q.put(item)


def consume_joinable(q, results):
    while True:
        item = q.get(timeout=DEADLINE)
        if item is None:
            q.task_done()
            break
        results.append(item * 10)
        q.task_done()


def wait_event(event, started, conn):
    started.set()
    report(conn, event.wait(DEADLINE))


def barrier_wait(barrier, conn):
    try:
        report(conn, ('index', barrier.wait(DEADLINE)))
    except BrokenBarrierError:
        report(conn, ('broken', None))


def condition_wait_for(cond, ns, conn):
    with cond:
        ns.waiting = True
        cond.notify_all()
        ok = cond.wait_for(lambda: getattr(ns, 'ready', False), DEADLINE)
    report(conn, ok)


def semaphore_slots(sem, active, peak, lock, conn):
    """Hold one of ``sem``'s slots a moment, tracking how many are held."""
    assert sem.acquire(timeout=DEADLINE)
    try:
        with lock:
            active.value += 1
            if active.value > peak.value:
                peak.value = active.value
        time.sleep(0.05)
        with lock:
            active.value -= 1
    finally:
        sem.release()
    report(conn, True)


def bump_value_and_array(value, array):
    value.value = value.value * 2
    array[0] = 100
    array[len(array) - 1] = -1


def iterate_dict(d, conn):
    report(conn, sorted(d))


def use_anonymous_list(l, conn):
    """Use a proxy the parent kept no reference to, after a while."""
    time.sleep(0.3)
    l.append('child')
    report(conn, l._getvalue())


def touch_proxy(proxy, conn):
    report(conn, len(proxy))


def square(x):
    return x * x


# -- custom types --------------------------------------------------------------------

class Counter(object):
    def __init__(self, start=0):
        self.count = start

    def increment(self, by=1):
        self.count += by
        return self.count

    def get(self):
        return self.count

    def _hidden(self):
        return 'hidden'

    def fail(self, message):
        raise ValueError(message)

    def unpicklable(self):
        return lambda: 'cannot be sent'


class Registry(object):
    """Hands out shared Counters (method_to_typeid)."""

    def __init__(self):
        self.counters = {}

    def counter(self, name):
        return self.counters.setdefault(name, Counter())

    def names(self):
        return sorted(self.counters)


class CounterProxy(BaseProxy):
    _exposed_ = ('increment', 'get')

    def increment(self, by=1):
        return self._callmethod('increment', (by,))

    def get(self):
        return self._callmethod('get')

    def doubled(self):
        """Runs here, in the client."""
        return 2 * self.get()


def make_counter(start=0):
    return Counter(start)


def broken_factory():
    raise RuntimeError('the factory of a shared object failed')


class CustomManager(BaseManager):
    pass


CustomManager.register('Counter', make_counter, CounterProxy)
CustomManager.register('AutoCounter', make_counter)
CustomManager.register('Registry', Registry, exposed=('counter', 'names'),
                       method_to_typeid={'counter': 'SharedCounter'})
# The type of objects returned by Registry.counter (no callable: the object
# is the method's result).
CustomManager.register('SharedCounter', proxytype=CounterProxy, create_method=False)
CustomManager.register('Broken', broken_factory)


def use_counter(counter, conn):
    counter.increment(5)
    report(conn, counter.doubled())


def use_registry(registry, conn):
    shared = registry.counter('from-child')
    shared.increment(7)
    report(conn, (shared.get(), registry.names()))


# -- initializers -------------------------------------------------------------------------

_initialized_with = None


def remember(value):
    global _initialized_with
    _initialized_with = value


def initialized_with():
    return Counter(_initialized_with)


def failing_initializer():
    raise RuntimeError('initializer failed on purpose')


class InitManager(BaseManager):
    pass


InitManager.register('initialized', initialized_with, exposed=('get',))


# -- a manager over TCP ------------------------------------------------------------------

_remote_queue = None


def get_remote_queue():
    global _remote_queue
    if _remote_queue is None:
        _remote_queue = queue.Queue()
    return _remote_queue


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue', callable=get_remote_queue)


def serve_queue_manager(authkey, conn):
    """Serve a QueueManager on a free TCP port until terminated."""
    manager = QueueManager(address=('127.0.0.1', 0), authkey=authkey)
    server = manager.get_server()
    conn.send(server.address)
    conn.close()
    server.serve_forever()


def put_through_remote(address, authkey, items):
    manager = QueueManager(address=address, authkey=authkey)
    manager.connect()
    q = manager.get_queue()
    for item in items:
        q.put(item)


def connect_with(address, authkey, conn):
    """Report what connecting to ``address`` with ``authkey`` gives."""
    try:
        QueueManager(address=address, authkey=authkey).connect()
    except mpspawn.AuthenticationError as exc:
        report(conn, ('AuthenticationError', str(exc)))
    else:
        report(conn, ('connected', None))


# -- a script whose parent dies ------------------------------------------------------------

ORPHAN_SCRIPT = r'''
import os, signal, sys
import mpspawn

if __name__ == '__main__':
    ctx = mpspawn.get_context(sys.argv[1])
    manager = ctx.Manager()
    d = manager.dict(alive=True)
    (server,) = mpspawn.active_children()
    sys.stdout.write('%d\n' % server.pid)
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
'''
