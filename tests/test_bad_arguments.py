"""Bad arguments across the API raise what Python 3 raises.

Conformance tests: on 2.7 against mpspawn, on Python 3 against the standard
library.  Unknown start methods, negative and non-numeric timeouts, Pool
sizes, non-callable targets, bad typecodes, and operations on closed
queues, pipes, processes, pools and listeners.  Negative timeouts are not
errors in Python 3: they mean "do not wait".
"""
import errno
import threading

import pytest

import mpspawn
from mpspawn import connection, managers, queues, synchronize

import support
import targets

BrokenBarrierError = getattr(threading, 'BrokenBarrierError', None) or \
    getattr(synchronize, 'BrokenBarrierError', None)


@pytest.fixture
def sctx():
    """Errors that do not depend on the start method: one context."""
    return mpspawn.get_context(support.NON_FORK_METHODS[0])


# -- start methods ------------------------------------------------------------------

@pytest.mark.parametrize('name', ['nope', 'Spawn', '', 5])
def test_unknown_start_method(name):
    with pytest.raises(ValueError):
        mpspawn.get_context(name)


def test_set_unknown_start_method_changes_nothing():
    before = mpspawn.get_start_method(allow_none=True)
    with pytest.raises(ValueError):
        mpspawn.set_start_method('nope', force=True)
    assert mpspawn.get_start_method(allow_none=True) == before


# -- Process -------------------------------------------------------------------------

def test_process_constructor_arguments(sctx):
    with pytest.raises(TypeError):
        sctx.Process(target=targets.noop, args=5)
    with pytest.raises(TypeError):
        sctx.Process(target=targets.noop, kwargs=5)
    with pytest.raises(AssertionError):
        sctx.Process(group=1)
    with pytest.raises(AssertionError):
        sctx.Process().name = 5


def test_non_callable_target_fails_in_the_child(ctx):
    """Python 3 checks nothing at start(): the child raises TypeError and
    ends with exit code 1."""
    with pytest.raises(TypeError):
        ctx.Process(target=5).run()
    p = ctx.Process(target=5)
    p.start()
    p.join(60)
    assert p.exitcode == 1


def test_operations_on_a_closed_process(ctx):
    p = ctx.Process(target=targets.noop)
    p.start()
    p.join(60)
    p.close()
    for method in ('start', 'is_alive', 'join', 'terminate', 'kill'):
        with pytest.raises(ValueError):
            getattr(p, method)()
    for attribute in ('pid', 'ident', 'exitcode', 'sentinel'):
        with pytest.raises(ValueError):
            getattr(p, attribute)
    p.close()       # closing again is harmless


def test_close_of_a_running_process(sctx):
    p = sctx.Process(target=targets.sleep, args=(30,))
    p.start()
    try:
        with pytest.raises(ValueError):
            p.close()
        assert p.is_alive()
    finally:
        p.kill()
        p.join(30)
    p.close()


def test_misuse_before_and_after_start(sctx):
    p = sctx.Process(target=targets.noop)
    with pytest.raises(ValueError):
        p.sentinel
    with pytest.raises(AssertionError):
        p.join()
    p.start()
    try:
        with pytest.raises(AssertionError):
            p.start()
        with pytest.raises(AssertionError):
            p.daemon = True
    finally:
        p.join(60)


def test_join_timeouts(sctx):
    p = sctx.Process(target=targets.sleep, args=(30,))
    p.start()
    try:
        assert p.join(-1) is None           # does not wait
        assert p.exitcode is None
        with pytest.raises(TypeError):
            p.join('x')
    finally:
        p.kill()
        p.join(30)


# -- Pool -------------------------------------------------------------------------------

@pytest.mark.parametrize('processes', [0, -1])
def test_pool_size_below_one(sctx, processes):
    with pytest.raises(ValueError):
        sctx.Pool(processes)


def test_pool_bad_arguments(sctx):
    with pytest.raises(TypeError):
        sctx.Pool('x')
    with pytest.raises(ValueError):
        sctx.Pool(1, maxtasksperchild=0)
    with pytest.raises(TypeError):
        sctx.Pool(1, initializer=5)


def test_pool_non_callable_function_and_closed_pool(sctx):
    pool = sctx.Pool(1)
    try:
        with pytest.raises(TypeError):
            pool.apply(5)
        with pytest.raises(TypeError):
            pool.map(5, [1, 2])
        with pytest.raises(ValueError):
            list(pool.imap(abs, [1], chunksize=0))
        with pytest.raises(ValueError):
            pool.join()                     # still running
        pool.close()
        with pytest.raises(ValueError):
            pool.apply(abs, (1,))
        with pytest.raises(ValueError):
            pool.map_async(abs, [1])
    finally:
        pool.terminate()
        pool.join()


# -- shared ctypes ------------------------------------------------------------------------

@pytest.mark.parametrize('typecode', ['z', 'zz', 5, object])
def test_bad_typecodes(sctx, typecode):
    with pytest.raises(TypeError):
        sctx.Value(typecode, 1)
    with pytest.raises(TypeError):
        sctx.Array(typecode, 3)
    with pytest.raises(TypeError):
        sctx.RawValue(typecode, 1)
    with pytest.raises(TypeError):
        sctx.RawArray(typecode, 3)


def test_bad_values_sizes_and_locks(sctx):
    with pytest.raises(ValueError):
        sctx.Array('i', -1)
    with pytest.raises(ValueError):
        sctx.RawArray('i', -1)
    with pytest.raises(TypeError):
        sctx.Array('i', 'x')
    with pytest.raises(TypeError):
        sctx.Array('i', 2.5)
    with pytest.raises(TypeError):
        sctx.Value('i', 'x')
    with pytest.raises(TypeError):
        sctx.Array('i', ['x'])
    with pytest.raises(AttributeError):
        sctx.Value('i', 1, lock=5)
    with pytest.raises(AttributeError):
        sctx.Array('i', [1], lock=5)


# -- synchronisation objects ----------------------------------------------------------

def test_semaphore_initial_values(sctx):
    with pytest.raises(TypeError):
        sctx.Semaphore('x')
    with pytest.raises(TypeError):
        sctx.Semaphore(1.5)
    with pytest.raises(OverflowError):
        sctx.Semaphore(2 ** 31)
    for make in (sctx.Semaphore, sctx.BoundedSemaphore):
        with pytest.raises(OSError) as info:
            make(-1)
        assert info.value.errno == errno.EINVAL


def test_release_too_often(sctx):
    with pytest.raises(ValueError):
        sctx.Lock().release()
    with pytest.raises(ValueError):
        sctx.BoundedSemaphore(1).release()
    with pytest.raises(AssertionError):
        sctx.RLock().release()
    with pytest.raises(AssertionError):
        sctx.Condition().wait(0.01)
    with pytest.raises(AssertionError):
        sctx.Condition().notify()


def test_lock_timeouts(sctx):
    lock = sctx.Lock()
    assert lock.acquire(timeout=-1) is True         # free: taken at once
    assert lock.acquire(timeout=-1) is False        # held: no wait
    with pytest.raises(TypeError):
        lock.acquire(timeout='x')
    lock.release()


def test_event_condition_barrier_timeouts(sctx):
    event = sctx.Event()
    assert event.wait(-1) is False
    with pytest.raises(TypeError):
        event.wait('x')
    cond = sctx.Condition()
    with cond:
        assert cond.wait(-1) is False
        with pytest.raises(TypeError):
            cond.wait('x')
    assert sctx.Barrier(1).wait(-1) == 0
    with pytest.raises(BrokenBarrierError):
        sctx.Barrier(2).wait(-1)


# -- queues -------------------------------------------------------------------------------

def test_queue_bad_sizes(sctx):
    with pytest.raises(TypeError):
        sctx.Queue('x')
    with pytest.raises(TypeError):
        sctx.Queue(1.5)


def test_queue_timeouts(sctx):
    q = sctx.Queue()
    with pytest.raises(queues.Empty):
        q.get(timeout=-1)
    with pytest.raises(TypeError):
        q.get(timeout='x')
    with pytest.raises(TypeError):
        q.put(1, timeout='x')
    q.put(1, timeout=-1)            # room: no wait needed
    assert q.get(timeout=10) == 1
    full = sctx.Queue(1)
    full.put(1)
    with pytest.raises(queues.Full):
        full.put(2, timeout=-1)
    assert full.get(timeout=10) == 1


def test_operations_on_closed_queues(sctx):
    q = sctx.Queue()
    with pytest.raises(AssertionError):
        q.join_thread()             # not closed yet
    q.close()
    for call in (lambda: q.put(1), q.get, q.get_nowait, lambda: q.put_nowait(1)):
        with pytest.raises(ValueError):
            call()
    q.close()
    q.join_thread()
    jq = sctx.JoinableQueue()
    with pytest.raises(ValueError):
        jq.task_done()
    jq.close()
    with pytest.raises(ValueError):
        jq.put(1)
    sq = sctx.SimpleQueue()
    sq.close()
    for call in (sq.get, lambda: sq.put(1), sq.empty):
        with pytest.raises(OSError):
            call()


# -- connections ---------------------------------------------------------------------------

def test_connection_timeouts_and_lengths(sctx):
    a, b = sctx.Pipe()
    try:
        assert a.poll(-1) is False
        with pytest.raises(TypeError):
            a.poll('x')
        assert connection.wait([a], -1) == []
        with pytest.raises(TypeError):
            connection.wait([a], 'x')
        with pytest.raises(ValueError):
            a.recv_bytes(-1)
        with pytest.raises(ValueError):
            a.send_bytes(b'abc', 5)
        with pytest.raises(ValueError):
            a.send_bytes(b'abc', 0, -1)
        with pytest.raises(ValueError):
            a.send_bytes(b'abc', 1, 5)
    finally:
        a.close()
        b.close()


def test_operations_on_closed_connections(sctx):
    a, b = sctx.Pipe()
    a.close()
    for call in (lambda: a.send(1), a.recv, a.poll, a.fileno, lambda: a.send_bytes(b'x'),
                 a.recv_bytes):
        with pytest.raises(OSError):
            call()
    a.close()
    with pytest.raises(EOFError):
        b.recv()
    with pytest.raises(OSError) as info:
        b.send(1)
    assert info.value.errno == errno.EPIPE
    b.close()
    reader, writer = sctx.Pipe(duplex=False)
    try:
        with pytest.raises(OSError):
            reader.send(1)
        with pytest.raises(OSError):
            writer.recv()
        with pytest.raises(OSError):
            writer.poll()
    finally:
        reader.close()
        writer.close()


def test_listener_and_client_arguments(tmpdir):
    with pytest.raises(TypeError):
        connection.Listener(authkey=u'text')
    with pytest.raises(ValueError):
        connection.Listener(family='AF_BAD')
    with pytest.raises(TypeError):
        connection.Listener(address=5)
    listener = connection.Listener(authkey=b'key')
    with pytest.raises(TypeError):
        connection.Client(listener.address, authkey=u'text')
    listener.close()
    with pytest.raises(OSError):
        listener.accept()
    with pytest.raises(EnvironmentError) as info:
        connection.Client(str(tmpdir.join('nobody-listens')))
    assert info.value.errno == errno.ENOENT


# -- managers -----------------------------------------------------------------------------

def test_manager_misuse(sctx):
    with pytest.raises(AssertionError):
        managers.SyncManager(ctx=sctx).dict()       # not started
    manager = sctx.Manager()
    try:
        with pytest.raises(mpspawn.ProcessError):
            manager.start()
    finally:
        manager.shutdown()
    with pytest.raises(AssertionError):
        manager.dict()                              # shut down
