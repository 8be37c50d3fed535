"""Conformance: mpspawn.dummy, the multiprocessing API backed by threads.

Runs against mpspawn on 2.7 and against the standard library on Python 3.
"""
import array
import threading
import time

import pytest

import mpspawn.dummy as dummy
from mpspawn.dummy import connection as dummy_connection

try:
    from threading import BrokenBarrierError
except ImportError:             # Python 2.7: mpspawn provides it
    from mpspawn._compat import BrokenBarrierError

try:
    import queue
except ImportError:             # Python 2.7
    import Queue as queue

DEADLINE = 30


def start(target, *args):
    p = dummy.Process(target=target, args=args)
    p.start()
    return p


# -- Process ------------------------------------------------------------------------

def test_process_lifecycle():
    gate = dummy.Event()
    results = []
    p = dummy.Process(target=lambda: results.append(gate.wait(DEADLINE)), name='worker')
    assert p.name == 'worker'
    assert p.exitcode is None and not p.is_alive()
    p.start()
    assert p.is_alive() and p.exitcode is None
    assert p in dummy.active_children()
    p.join(0.05)
    assert p.is_alive()
    gate.set()
    p.join(DEADLINE)
    assert not p.is_alive()
    assert p.exitcode == 0
    assert results == [True]
    assert p not in dummy.active_children()


def test_process_kwargs_daemon_and_current_process():
    seen = {}

    def work(a, b=None):
        seen['args'] = (a, b)
        seen['me'] = dummy.current_process()
    p = dummy.Process(target=work, args=(1,), kwargs={'b': 2})
    p.daemon = True
    p.start()
    p.join(DEADLINE)
    assert seen == {'args': (1, 2), 'me': p}
    assert p.daemon
    assert dummy.current_process() is threading.current_thread()


def test_process_subclass_run_and_join_timeout():
    class Worker(dummy.Process):
        def run(self):
            self.result = 'ran'
    w = Worker()
    w.start()
    w.join(DEADLINE)
    assert w.result == 'ran' and w.exitcode == 0


def test_process_misuse():
    p = dummy.Process(target=lambda: None)
    with pytest.raises(RuntimeError):
        p.join()
    p.start()
    with pytest.raises(RuntimeError):
        p.start()
    p.join(DEADLINE)


def test_freeze_support_and_manager():
    dummy.freeze_support()
    m = dummy.Manager()
    assert m is dummy
    ns = m.Namespace(a=1)
    ns.b = 2
    assert repr(ns) == 'Namespace(a=1, b=2)'
    assert m.dict(a=1) == {'a': 1} and m.list([1]) == [1]
    v = m.Value('i', 3)
    v.value += 1
    assert v.value == 4
    assert m.Array('i', [1, 2]) == array.array('i', [1, 2])
    m.shutdown()


# -- queues ------------------------------------------------------------------------

def test_queue_between_threads():
    q = dummy.Queue()
    producers = [start(lambda i=i: [q.put((i, n)) for n in range(50)]) for i in range(3)]
    got = [q.get(timeout=DEADLINE) for _ in range(150)]
    for p in producers:
        p.join(DEADLINE)
    for i in range(3):
        assert [n for j, n in got if j == i] == list(range(50))
    assert q.empty()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.02)
    with pytest.raises(queue.Empty):
        q.get_nowait()


def test_bounded_queue_and_timeouts():
    q = dummy.Queue(1)
    q.put(1)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.02)
    releaser = start(lambda: (time.sleep(0.05), q.get()))
    q.put(3, timeout=DEADLINE)       # room made by the other thread
    releaser.join(DEADLINE)
    assert q.get_nowait() == 3


def test_joinable_queue():
    q = dummy.JoinableQueue()
    done = []

    def consume():
        while True:
            item = q.get(timeout=DEADLINE)
            if item is None:
                q.task_done()
                return
            done.append(item)
            q.task_done()
    p = start(consume)
    for i in range(10):
        q.put(i)
    q.put(None)
    p.join(DEADLINE)
    q.join()
    assert done == list(range(10))


# -- locks -------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['Lock', 'RLock'])
def test_lock_timeouts_between_threads(kind):
    lock = getattr(dummy, kind)()
    held, release = dummy.Event(), dummy.Event()

    def holder():
        with lock:
            held.set()
            release.wait(DEADLINE)
    p = start(holder)
    assert held.wait(DEADLINE)
    assert lock.acquire(True, 0.05) is False
    assert lock.acquire(False) is False
    release.set()
    assert lock.acquire(True, DEADLINE) is True
    lock.release()
    p.join(DEADLINE)


def test_lock_errors():
    lock = dummy.Lock()
    with pytest.raises(RuntimeError):
        lock.release()
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    rlock = dummy.RLock()
    with pytest.raises(RuntimeError):
        rlock.release()
    with rlock:
        with rlock:
            pass


def test_locks_exclude_threads():
    lock = dummy.Lock()
    counter = [0]

    def add():
        for _ in range(500):
            with lock:
                value = counter[0]
                time.sleep(0) if value % 50 == 0 else None
                counter[0] = value + 1
    threads = [start(add) for _ in range(4)]
    for t in threads:
        t.join(DEADLINE)
    assert counter[0] == 2000


def test_semaphores():
    sem = dummy.Semaphore(2)
    assert sem.acquire() and sem.acquire(timeout=1)
    assert sem.acquire(timeout=0.02) is False
    assert sem.acquire(False) is False
    start(lambda: (time.sleep(0.05), sem.release()))
    assert sem.acquire(timeout=DEADLINE)
    bounded = dummy.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        bounded.release()
    with bounded:
        assert bounded.acquire(False) is False


# -- Event, Condition, Barrier ---------------------------------------------------------

def test_event():
    event = dummy.Event()
    assert event.wait(0.02) is False
    start(lambda: (time.sleep(0.05), event.set()))
    assert event.wait(DEADLINE) is True
    assert event.is_set()
    event.clear()
    assert not event.is_set()


def test_condition_wait_for_and_notify():
    cond = dummy.Condition()
    items = []
    results = []

    def consumer():
        with cond:
            results.append(cond.wait_for(lambda: len(items) >= 3, DEADLINE))
    consumers = [start(consumer) for _ in range(3)]
    for i in range(3):
        with cond:
            items.append(i)
            cond.notify_all()
    for c in consumers:
        c.join(DEADLINE)
    assert results == [True] * 3
    with cond:
        assert cond.wait(0.02) is False
        assert cond.wait_for(lambda: False, 0.02) is False
    with pytest.raises(RuntimeError):
        cond.wait(0.01)
    with pytest.raises(RuntimeError):
        cond.notify()


def test_barrier():
    actions = []
    barrier = dummy.Barrier(3, action=lambda: actions.append('tripped'))
    indices = []
    threads = [start(lambda: indices.append(barrier.wait(DEADLINE))) for _ in range(3)]
    for t in threads:
        t.join(DEADLINE)
    assert sorted(indices) == [0, 1, 2]
    assert actions == ['tripped']
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken
    # Reusable: a second round.
    threads = [start(barrier.wait, DEADLINE) for _ in range(2)]
    assert barrier.wait(DEADLINE) in (0, 1, 2)
    for t in threads:
        t.join(DEADLINE)


def test_barrier_timeout_abort_reset():
    barrier = dummy.Barrier(2, timeout=0.05)
    with pytest.raises(BrokenBarrierError):
        barrier.wait()
    assert barrier.broken
    with pytest.raises(BrokenBarrierError):
        barrier.wait(DEADLINE)
    barrier.reset()
    assert not barrier.broken
    errors = []

    def waiter():
        try:
            barrier.wait(DEADLINE)
        except BrokenBarrierError:
            errors.append('broken')
    t = start(waiter)
    deadline = time.time() + DEADLINE
    while barrier.n_waiting < 1 and time.time() < deadline:
        time.sleep(0.005)
    barrier.abort()
    t.join(DEADLINE)
    assert errors == ['broken']


# -- Pipe, Listener, Client --------------------------------------------------------------

def test_pipe_passes_objects_as_they_are():
    a, b = dummy.Pipe()
    payload = {'unpicklable': lambda: 1}
    a.send(payload)
    assert b.poll(DEADLINE)
    assert b.recv() is payload
    b.send_bytes(b'bytes')
    assert a.recv_bytes() == b'bytes'
    assert a.poll() is False
    assert a.poll(0.02) is False
    start(lambda: (time.sleep(0.05), b.send('late')))
    assert a.poll(DEADLINE) is True
    assert a.recv() == 'late'
    with a, b:
        pass


def test_listener_and_client():
    with dummy_connection.Listener() as listener:
        replies = []

        def client():
            conn = dummy_connection.Client(listener.address)
            conn.send('hello')
            replies.append(conn.recv())
        t = start(client)
        server_side = listener.accept()
        assert server_side.recv() == 'hello'
        server_side.send('welcome')
        t.join(DEADLINE)
        assert replies == ['welcome']


def test_thread_pool():
    pytest.importorskip('mpspawn.pool')
    with dummy.Pool(2) as pool:
        assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
