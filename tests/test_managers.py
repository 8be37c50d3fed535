"""Conformance: managers (SyncManager types, custom registrations, remote
managers over TCP, shutdown), used from forked and spawned children.

Runs against mpspawn on 2.7 and against the standard library on Python 3.
"""
import gc
import os
import threading

import pytest

import mpspawn
import support
from support import start, join_ok, recv
import targets_managers as tm
from mpspawn import managers
from targets_managers import BrokenBarrierError, queue

DEADLINE = tm.DEADLINE


def run_child(ctx, target, *args):
    """Start ``target(*args, conn)``, return what it reports."""
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, target, *(args + (w,)))
    w.close()
    try:
        return recv(r)
    finally:
        r.close()
        join_ok(p)


@pytest.fixture
def manager(ctx):
    m = ctx.Manager()
    try:
        yield m
    finally:
        m.shutdown()
        # Drops the server's Process object (and its descriptors) at once:
        # pytest keeps the manager until the end of the session.
        m.join(DEADLINE)


# -- containers ---------------------------------------------------------------------------

def test_dict_list_namespace_from_child(ctx, manager):
    d = manager.dict(parent=1)
    l = manager.list(['from parent'])
    ns = manager.Namespace(name='shared')
    answer = run_child(ctx, tm.fill_containers, d, l, ns)
    assert answer == (1, 'from parent', True)
    assert d['child'] != os.getpid()
    assert d.copy() == {'parent': 1, 'child': d['child'], 'x': 1, 'y': 2}
    assert l[:] == ['from parent', 'from child', 1, 2]
    assert ns.seen == ['child', 'parent', 'x', 'y']
    assert ns.total == 4
    assert ns.name == 'shared'


def test_dict_proxy_api(manager):
    d = manager.dict({'a': 1})
    d['b'] = 2
    assert len(d) == 2 and 'a' in d and 'z' not in d
    assert sorted(d) == ['a', 'b']
    assert sorted(d.keys()) == ['a', 'b']
    assert sorted(d.items()) == [('a', 1), ('b', 2)]
    assert d.get('z', 0) == 0
    assert d.setdefault('c', 3) == 3
    assert d.pop('c') == 3
    del d['b']
    with pytest.raises(KeyError):
        d['b']
    assert d._getvalue() == {'a': 1}
    assert str(d) == "{'a': 1}"
    d.clear()
    assert len(d) == 0 and not d


def test_list_proxy_api(manager):
    l = manager.list(range(5))
    l.append(5)
    l += [6]
    l.insert(0, -1)
    assert l[0] == -1 and l[-1] == 6
    assert l[1:3] == [0, 1]
    l[1:3] = ['a', 'b']
    assert l[:4] == [-1, 'a', 'b', 2]
    del l[1:3]
    assert l.index(2) == 1 and l.count(2) == 1 and 3 in l
    assert l.pop() == 6
    l.reverse()
    assert l._getvalue() == [5, 4, 3, 2, -1]
    l.sort()
    assert list(l) == [-1, 2, 3, 4, 5]
    l *= 2
    assert len(l) == 10
    with pytest.raises(IndexError):
        l[100]


def test_namespace_attribute_semantics(ctx, manager):
    ns = manager.Namespace(a=1)
    ns.b = 2
    assert (ns.a, ns.b) == (1, 2)
    del ns.a
    with pytest.raises(AttributeError):
        ns.a
    # Names starting with an underscore belong to the proxy, not the referent.
    ns._local = 'here only'
    assert ns._local == 'here only'
    assert '_local' not in repr(ns._getvalue())
    assert 'b=2' in str(ns)


def test_big_values_round_trip(manager):
    d = manager.dict()
    big = b'x' * (3 * 1024 * 1024 + 17)
    d['big'] = big
    assert d['big'] == big
    d['small'] = 1
    assert d['small'] == 1


def test_unpicklable_argument_leaves_proxy_usable(manager):
    d = manager.dict()
    with pytest.raises(Exception):
        d['f'] = lambda: 'not picklable'
    d['ok'] = 1
    assert d.copy() == {'ok': 1}


def test_proxies_from_many_threads(manager):
    d = manager.dict(count=0)
    lock = manager.Lock()
    errors = []

    def work():
        try:
            for _ in range(50):
                with lock:
                    d['count'] = d['count'] + 1
        except Exception as exc:     # reported below
            errors.append(exc)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert errors == []
    assert d['count'] == 200


def test_nested_proxies(manager):
    outer = manager.list()
    inner = manager.dict()
    outer.append(inner)
    outer[0]['key'] = 'value'
    assert inner['key'] == 'value'


# -- Value and Array ------------------------------------------------------------------------

def test_value_and_array_from_child(ctx, manager):
    value = manager.Value('i', 21)
    array = manager.Array('i', [1, 2, 3, 4])
    assert value.value == 21 and value.get() == 21
    assert len(array) == 4 and array[1] == 2
    p = start(ctx, tm.bump_value_and_array, value, array)
    join_ok(p)
    assert value.value == 42
    assert array[:] == make_array('i', [100, 2, 3, -1])
    value.set(7)
    assert value.value == 7


def make_array(typecode, items):
    import array
    return array.array(typecode, items)


# -- locks ------------------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore'])
def test_lock_types_exclude_children(ctx, manager, kind):
    lock = getattr(manager, kind)()
    value = manager.Value('i', 0)
    counts = manager.dict()
    procs = [start(ctx, tm.add_under_lock, lock, value, counts, i, 25) for i in range(3)]
    join_ok(*procs)
    assert value.value == 75
    assert counts.copy() == {0: 25, 1: 25, 2: 25}


@pytest.mark.parametrize('kind', ['Lock', 'RLock'])
def test_lock_timeout_against_child(ctx, manager, kind):
    lock = getattr(manager, kind)()
    release = manager.Event()
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, tm.hold_lock, lock, w, release)
    w.close()
    assert recv(r) == 'held'
    assert lock.acquire(True, 0.1) is False
    assert lock.acquire(False) is False
    assert run_child(ctx, tm.try_acquire, lock, 0.1) is False
    release.set()
    p.join(DEADLINE)
    r.close()
    assert lock.acquire(True, DEADLINE) is True
    lock.release()


def test_rlock_is_reentrant(manager):
    rlock = manager.RLock()
    with rlock:
        assert rlock.acquire(timeout=1)
        rlock.release()


def test_semaphore_bounds(ctx, manager):
    sem = manager.Semaphore(2)
    active = manager.Value('i', 0)
    peak = manager.Value('i', 0)
    guard = manager.Lock()
    rs, procs = [], []
    for _ in range(4):
        r, w = ctx.Pipe(duplex=False)
        procs.append(start(ctx, tm.semaphore_slots, sem, active, peak, guard, w))
        w.close()
        rs.append(r)
    assert [recv(r) for r in rs] == [True] * 4
    join_ok(*procs)
    for r in rs:
        r.close()
    assert 1 <= peak.value <= 2
    bounded = manager.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        bounded.release()


# -- queues --------------------------------------------------------------------------------

def test_queue_between_children(ctx, manager):
    q = manager.Queue()
    procs = [start(ctx, tm.produce, q, [(i, n) for n in range(10)]) for i in range(2)]
    got = [q.get(timeout=DEADLINE) for _ in range(20)]
    join_ok(*procs)
    assert sorted(got) == sorted((i, n) for i in range(2) for n in range(10))
    for i in range(2):
        assert [n for j, n in got if j == i] == list(range(10))
    assert q.empty() and q.qsize() == 0
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get_nowait()


def test_bounded_queue_full(manager):
    q = manager.Queue(1)
    q.put(1)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put(2, timeout=0.05)
    with pytest.raises(queue.Full):
        q.put_nowait(2)


def test_joinable_queue(ctx, manager):
    q = manager.JoinableQueue()
    results = manager.list()
    p = start(ctx, tm.consume_joinable, q, results)
    for i in range(5):
        q.put(i)
    q.put(None)
    join_ok(p)
    q.join()            # the child called task_done for all six
    assert sorted(results) == [0, 10, 20, 30, 40]


# -- Event, Condition, Barrier --------------------------------------------------------------

def test_event_wakes_children(ctx, manager):
    event = manager.Event()
    started = manager.Event()
    assert event.wait(0.05) is False and not event.is_set()
    pipes, procs = [], []
    for _ in range(2):
        r, w = ctx.Pipe(duplex=False)
        procs.append(start(ctx, tm.wait_event, event, started, w))
        w.close()
        pipes.append(r)
    assert started.wait(DEADLINE)
    event.set()
    assert [recv(r) for r in pipes] == [True, True]
    join_ok(*procs)
    for r in pipes:
        r.close()
    assert event.is_set()
    event.clear()
    assert not event.is_set()


def test_condition_wait_for_with_child(ctx, manager):
    cond = manager.Condition()
    ns = manager.Namespace(waiting=False, ready=False)
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, tm.condition_wait_for, cond, ns, w)
    w.close()
    with cond:
        assert cond.wait_for(lambda: ns.waiting, DEADLINE)
        ns.ready = True
        cond.notify_all()
    assert recv(r) is True
    join_ok(p)
    r.close()


def test_condition_wait_timeout_returns_false(manager):
    cond = manager.Condition(manager.Lock())
    with cond:
        assert cond.wait(0.05) is False
        assert cond.wait_for(lambda: False, 0.05) is False
        assert cond.wait_for(lambda: 'truthy', 0.05) == 'truthy'
    with pytest.raises(RuntimeError):
        cond.notify()


def test_barrier_with_children(ctx, manager):
    barrier = manager.Barrier(3)
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken
    pipes, procs = [], []
    for _ in range(2):
        r, w = ctx.Pipe(duplex=False)
        procs.append(start(ctx, tm.barrier_wait, barrier, w))
        w.close()
        pipes.append(r)
    mine = barrier.wait(DEADLINE)
    theirs = [recv(r) for r in pipes]
    join_ok(*procs)
    for r in pipes:
        r.close()
    assert sorted([mine] + [index for kind, index in theirs]) == [0, 1, 2]


def test_barrier_timeout_abort_reset(ctx, manager):
    barrier = manager.Barrier(2)
    with pytest.raises(BrokenBarrierError):
        barrier.wait(0.1)
    assert barrier.broken
    assert run_child(ctx, tm.barrier_wait, barrier) == ('broken', None)
    barrier.reset()
    assert not barrier.broken
    barrier.abort()
    assert barrier.broken


# -- Pool ------------------------------------------------------------------------------

def test_pool_in_the_manager(manager):
    pool = manager.Pool(2)
    try:
        assert pool.map(tm.square, range(5)) == [0, 1, 4, 9, 16]
        result = pool.apply_async(tm.square, (7,))
        assert result.get(DEADLINE) == 49
        assert result.successful()
        assert pool.starmap(max, [(1, 2), (4, 3)]) == [2, 4]
        assert list(pool.imap(tm.square, range(4))) == [0, 1, 4, 9]
        assert sorted(pool.imap_unordered(tm.square, range(4))) == [0, 1, 4, 9]
        assert pool.map_async(tm.square, [3]).get(DEADLINE) == [9]
    finally:
        pool.close()
        pool.join()


# -- references ---------------------------------------------------------------------------

def test_referents_are_freed(manager):
    base = manager._number_of_objects()
    d = manager.dict()
    l = manager.list([d])
    assert manager._number_of_objects() == base + 2
    del d, l
    gc.collect()
    assert manager._number_of_objects() == base


@pytest.mark.parametrize('passes', [1, 2])
def test_references_given_back_by_children(ctx, manager, passes):
    base = manager._number_of_objects()
    d = manager.dict(a=1)
    for _ in range(passes):
        assert run_child(ctx, tm.touch_proxy, d) == 1
    assert manager._number_of_objects() == base + 1
    del d
    gc.collect()
    assert manager._number_of_objects() == base


def test_proxy_through_a_shared_queue(ctx, manager):
    q = manager.Queue()
    d = manager.dict(a=1, b=2)
    q.put(d)
    received = q.get(timeout=DEADLINE)
    received['c'] = 3
    assert d['c'] == 3
    del received
    assert run_child(ctx, tm.touch_proxy, d) == 3


def test_deepcopy_gives_the_value(manager):
    import copy
    d = manager.dict(a=[1])
    assert copy.deepcopy(d) == {'a': [1]}


# -- custom registrations -----------------------------------------------------------------

def test_custom_types_and_proxies(ctx):
    with tm.CustomManager(ctx=ctx) as m:
        counter = m.Counter(10)
        assert isinstance(counter, tm.CounterProxy)
        assert counter.increment() == 11 and counter.doubled() == 22
        registry = m.Registry()
        first = registry.counter('a')
        assert isinstance(first, tm.CounterProxy)
        first.increment(3)
        assert registry.counter('a').get() == 3
        assert run_child(ctx, tm.use_counter, counter) == 32
        assert counter.get() == 16
        assert registry.names() == ['a']


def test_autoproxy_exposes_public_methods(ctx):
    with tm.CustomManager(ctx=ctx) as m:
        auto = m.AutoCounter(1)
        assert auto.increment(2) == 3
        assert not hasattr(auto, '_hidden')
        with pytest.raises(managers.RemoteError) as info:
            auto._callmethod('_hidden')
        assert 'Traceback (most recent call last)' in str(info.value)
        assert '_hidden' in str(info.value)


def test_exceptions_of_methods_are_reraised(ctx):
    with tm.CustomManager(ctx=ctx) as m:
        auto = m.AutoCounter()
        with pytest.raises(ValueError) as info:
            auto.fail('raised in the server')
        assert 'raised in the server' in str(info.value)
        with pytest.raises(managers.RemoteError) as info:
            auto.unpicklable()
        assert 'Unserializable message' in str(info.value)
        assert auto.increment() == 1


def test_remote_error_carries_the_remote_traceback(ctx):
    with tm.CustomManager(ctx=ctx) as m:
        with pytest.raises(managers.RemoteError) as info:
            m.Broken()
        text = str(info.value)
        assert 'Traceback (most recent call last)' in text
        assert 'broken_factory' in text
        assert 'the factory of a shared object failed' in text


def test_initializer_runs_in_the_server(ctx):
    m = tm.InitManager(ctx=ctx)
    m.start(tm.remember, ('initialized!',))
    try:
        assert m.initialized().get() == 'initialized!'
    finally:
        m.shutdown()


def test_bad_initializer(ctx):
    before = set(mpspawn.active_children())
    m = tm.InitManager(ctx=ctx)
    with pytest.raises(TypeError):
        m.start(initializer='not callable')
    with pytest.raises(EOFError):
        m.start(tm.failing_initializer)
    assert support.wait_until(lambda: set(mpspawn.active_children()) <= before)


# -- lifecycle -----------------------------------------------------------------------------

def new_children(before):
    return set(mpspawn.active_children()) - before


def test_shutdown_and_with_form(ctx):
    before = set(mpspawn.active_children())
    with ctx.Manager() as m:
        (server,) = new_children(before)
        d = m.dict(a=1)
        assert d['a'] == 1
    assert not server.is_alive()
    assert not new_children(before)
    with pytest.raises(Exception):
        d['a']
    with pytest.raises(mpspawn.ProcessError):
        m.start()
    m.shutdown()      # a second shutdown does nothing


def test_shutdown_removes_the_socket_file(ctx):
    m = ctx.Manager()
    address = m.address
    assert os.path.exists(address)      # the default family is AF_UNIX
    m.shutdown()
    assert not os.path.exists(address)
    m.join(DEADLINE)


def test_start_twice_refused(ctx):
    m = ctx.Manager()
    try:
        with pytest.raises(mpspawn.ProcessError):
            m.start()
    finally:
        m.shutdown()
    m.join(DEADLINE)


def test_garbage_collected_manager_stops_its_server(ctx):
    before = set(mpspawn.active_children())
    m = ctx.Manager()
    (server,) = new_children(before)
    assert server.is_alive()
    del m
    gc.collect()
    server.join(DEADLINE)
    assert not server.is_alive()


def test_connect_to_a_started_manager(manager):
    other = managers.SyncManager(address=manager.address,
                                 authkey=bytes(mpspawn.current_process().authkey))
    other.connect()
    assert other.address == manager.address
    d = other.dict(a=1)
    assert d['a'] == 1
    del d


# -- a manager over TCP ----------------------------------------------------------------

@pytest.fixture
def remote_server(spawning_ctx):
    """A QueueManager served on TCP by a spawned child."""
    authkey = b'remote secret'
    r, w = spawning_ctx.Pipe(duplex=False)
    p = start(spawning_ctx, tm.serve_queue_manager, authkey, w)
    w.close()
    address = recv(r)
    r.close()
    yield spawning_ctx, address, authkey
    p.terminate()
    p.join(DEADLINE)


def test_remote_manager_over_tcp(remote_server):
    ctx, address, authkey = remote_server
    assert address[0] == '127.0.0.1' and address[1] > 0
    m = tm.QueueManager(address=address, authkey=authkey)
    m.connect()
    q = m.get_queue()
    p = start(ctx, tm.put_through_remote, address, authkey, ['a', 'b', 'c'])
    join_ok(p)
    assert [q.get(timeout=DEADLINE) for _ in range(3)] == ['a', 'b', 'c']
    del q


def test_wrong_authkey_is_refused(remote_server):
    ctx, address, authkey = remote_server
    with pytest.raises(mpspawn.AuthenticationError):
        tm.QueueManager(address=address, authkey=b'wrong key').connect()
    assert run_child(ctx, tm.connect_with, address, b'wrong key')[0] == 'AuthenticationError'
    assert run_child(ctx, tm.connect_with, address, authkey) == ('connected', None)


def test_server_in_a_thread(spawning_ctx):
    authkey = b'thread secret'
    m = tm.QueueManager(address=('127.0.0.1', 0), authkey=authkey)
    server = m.get_server()
    def serve():
        try:
            server.serve_forever()
        except SystemExit:          # how serve_forever() ends
            pass
    thread = threading.Thread(target=serve)
    thread.daemon = True
    thread.start()
    try:
        p = start(spawning_ctx, tm.put_through_remote, server.address, authkey, [1, 2])
        join_ok(p)
        client = tm.QueueManager(address=server.address, authkey=authkey)
        client.connect()
        q = client.get_queue()
        assert [q.get(timeout=DEADLINE) for _ in range(2)] == [1, 2]
        del q
        gc.collect()
    finally:
        assert support.wait_until(lambda: getattr(server, 'stop_event', None) is not None)
        server.stop_event.set()
        thread.join(DEADLINE)
        server.listener.close()
    assert not thread.is_alive()


# -- beyond Python 3 ---------------------------------------------------------------

@pytest.mark.mpspawn_only
def test_anonymous_proxy_survives_for_spawned_child(spawning_ctx):
    # Python 3 frees the list as soon as start() drops its arguments, and
    # the child fails with a KeyError: mpspawn hands the child a reference.
    with spawning_ctx.Manager() as m:
        base = m._number_of_objects()
        answer = run_child(spawning_ctx, tm.use_anonymous_list, m.list(['parent']))
        assert answer == ['parent', 'child']
        assert support.wait_until(lambda: m._number_of_objects() == base)


@pytest.mark.mpspawn_only
def test_method_to_typeid_in_a_child(spawning_ctx):
    # Python 3 fails in the child: the proxy for the returned object is
    # looked up in a manager object the child does not have.
    with tm.CustomManager(ctx=spawning_ctx) as m:
        registry = m.Registry()
        registry.counter('a')
        shared, names = run_child(spawning_ctx, tm.use_registry, registry)
        assert shared == 7
        assert names == ['a', 'from-child']
        assert registry.counter('from-child').get() == 7


@pytest.mark.mpspawn_only
def test_iterating_a_dict_proxy_in_a_child(spawning_ctx):
    # Python 3 fails in the child: the proxy made for the iterator looks
    # for a manager object the child does not have.
    with spawning_ctx.Manager() as m:
        d = m.dict(b=2, a=1)
        assert run_child(spawning_ctx, tm.iterate_dict, d) == ['a', 'b']


@pytest.mark.mpspawn_only
@pytest.mark.parametrize('method', support.ALL_START_METHODS)
def test_server_exits_when_its_parent_dies(method):
    import shutil
    import tempfile
    # A killed parent cannot remove its temp files: give it its own temp dir
    # (short: socket paths are limited to about 100 bytes).
    tmp = tempfile.mkdtemp(prefix='orphan-', dir='/tmp')
    try:
        script = support.write_file(os.path.join(tmp, 'orphan.py'), tm.ORPHAN_SCRIPT)
        # run_python returns only when stdout is closed: by the server exiting.
        result = support.run_python([script, method], timeout=60, env={'TMPDIR': tmp})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert result.returncode == -9, result
    pid = int(result.out.split()[0])
    assert support.wait_until(lambda: support.process_info(pid) is None
                              or support.process_info(pid)[1] == 'Z', timeout=10)


@pytest.mark.mpspawn_only
def test_unknown_serializer_is_named():
    with pytest.raises(ValueError) as info:
        managers.BaseManager(serializer='json')
    assert 'json' in str(info.value)
