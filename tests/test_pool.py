"""Pool and ThreadPool: Python 3's API (conformance, every start method) and,
for mpspawn only, what Python 3 gets wrong: a worker that dies while running
a task, workers that die while starting, callbacks that raise.
"""
import gc
import os
import pickle
import signal

import pytest

import mpspawn
import support
import targets_pool as tp
from mpspawn.pool import MaybeEncodingError, ThreadPool

# Generous bound on every blocking call (a hang fails here, not at the
# 120 s suite timeout).
T = 60


@pytest.fixture
def pool(request, ctx):
    p = ctx.Pool(2)
    yield p
    p.terminate()
    p.join()
    # pytest holds fixture values until the test's teardown ends, and Python
    # 3's pool closes its pipes only when it is collected.
    request.node.funcargs.pop('pool', None)


@pytest.fixture
def fork_pool(request):
    """For what happens in the parent alone (callbacks, iteration, timeouts):
    the start method does not matter, fork is the quickest."""
    p = mpspawn.get_context('fork').Pool(2)
    yield p
    p.terminate()
    p.join()
    request.node.funcargs.pop('fork_pool', None)


def pid_gone(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    # A zombie is gone for our purposes only once reaped.
    info = support.process_info(pid)
    return info is None


# -- apply, map, starmap -------------------------------------------------------------

def test_apply_and_apply_async(pool):
    assert pool.apply(tp.square, (7,)) == 49
    assert pool.apply(tp.add, (), {'a': 1, 'b': 2}) == 3
    result = pool.apply_async(tp.add, (40, 2))
    assert result.get(timeout=T) == 42
    assert result.ready()
    assert result.successful()


def test_map_starmap_and_chunksize(pool):
    assert pool.map(tp.square, range(50)) == [x * x for x in range(50)]
    assert pool.map(tp.square, range(50), chunksize=7) == [x * x for x in range(50)]
    assert pool.map(tp.square, (x for x in range(5))) == [0, 1, 4, 9, 16]
    assert pool.map(tp.square, []) == []
    assert pool.starmap(tp.add, [(1, 2), (3, 4), (5, 6)], chunksize=2) == [3, 7, 11]
    assert pool.starmap_async(tp.add, [(1, 1)]).get(timeout=T) == [2]
    assert pool.map_async(tp.square, range(3)).get(timeout=T) == [0, 1, 4]


def test_large_arguments_and_results(pool):
    big = b'x' * (3 << 20)
    assert pool.apply(tp.identity, (big,)) == big
    assert pool.map(len, [big, big[:10], big], chunksize=1) == [3 << 20, 10, 3 << 20]
    assert [len(b) for b in pool.imap(tp.identity, [big] * 3)] == [3 << 20] * 3


def test_callbacks(fork_pool):
    seen = []
    result = fork_pool.map_async(tp.square, range(10), callback=seen.append)
    assert result.get(timeout=T) == [x * x for x in range(10)]
    assert seen == [[x * x for x in range(10)]]

    seen, errors = [], []
    result = fork_pool.apply_async(tp.square, (3,), callback=seen.append,
                              error_callback=errors.append)
    assert result.get(timeout=T) == 9
    result = fork_pool.apply_async(tp.raise_value_error, ('nope',), callback=seen.append,
                              error_callback=errors.append)
    with pytest.raises(ValueError):
        result.get(timeout=T)
    assert not result.successful()
    assert seen == [9]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)

    errors = []
    result = fork_pool.starmap_async(tp.fail_on, [(i, 3) for i in range(6)], chunksize=1,
                                error_callback=errors.append)
    with pytest.raises(ValueError):
        result.get(timeout=T)
    assert [str(e) for e in errors] == ['bad item 3']


def test_exception_carries_remote_traceback(pool):
    with pytest.raises(ValueError) as info:
        pool.apply(tp.raise_value_error, ('boom',))
    assert info.value.args == ('boom',)
    cause = info.value.__cause__
    assert type(cause).__name__ == 'RemoteTraceback'
    assert 'raise_value_error' in str(cause)
    assert 'ValueError: boom' in str(cause)


def test_map_reraises_the_failing_item(fork_pool):
    with pytest.raises(ValueError) as info:
        fork_pool.starmap(tp.fail_on, [(i, 5) for i in range(10)], chunksize=2)
    assert str(info.value) == 'bad item 5'


# -- imap ---------------------------------------------------------------------------------

def test_imap_keeps_order(pool):
    assert list(pool.imap(tp.square, range(30))) == [x * x for x in range(30)]
    assert list(pool.imap(tp.square, range(30), chunksize=4)) == [x * x for x in range(30)]
    assert list(pool.imap(tp.square, iter([]))) == []


def test_imap_unordered_delivers_everything(pool):
    assert sorted(pool.imap_unordered(tp.square, range(30))) == [x * x for x in range(30)]
    assert sorted(pool.imap_unordered(tp.square, range(30), chunksize=7)) == \
        [x * x for x in range(30)]


def test_imap_unordered_yields_fast_results_first(fork_pool):
    it = fork_pool.imap_unordered(tp.sleep_then, [1.0, 0])
    assert it.next(timeout=T) is None
    # The slow one is still running.
    with pytest.raises(mpspawn.TimeoutError):
        it.next(timeout=0.05)
    assert it.next(timeout=T) is None
    with pytest.raises(StopIteration):
        it.next(timeout=T)


def test_imap_next_timeout(fork_pool):
    it = fork_pool.imap(tp.sleep_then, [30])
    with pytest.raises(mpspawn.TimeoutError):
        it.next(timeout=0.1)


def squares_then_error():
    for i in range(3):
        yield i
    raise ZeroDivisionError('the iterable broke')


def test_imap_iterable_error_takes_its_place(fork_pool):
    got = []
    it = fork_pool.imap(tp.square, squares_then_error())
    with pytest.raises(ZeroDivisionError):
        for value in it:
            got.append(value)
    assert got == [0, 1, 4]
    with pytest.raises(StopIteration):
        it.next(timeout=T)


def test_imap_bad_chunksize(fork_pool):
    with pytest.raises(ValueError):
        fork_pool.imap(tp.square, range(3), chunksize=0)
    with pytest.raises(ValueError):
        fork_pool.imap_unordered(tp.square, range(3), chunksize=-1)


# -- AsyncResult --------------------------------------------------------------------

def test_get_timeout_wait_ready_successful(fork_pool):
    result = fork_pool.apply_async(tp.sleep_then, (30,))
    with pytest.raises(mpspawn.TimeoutError):
        result.get(timeout=0.1)
    assert result.wait(timeout=0.05) is None
    assert not result.ready()
    with pytest.raises(ValueError):
        result.successful()


# -- initializer, maxtasksperchild, workers -------------------------------------------

def test_initializer_and_initargs(ctx):
    with ctx.Pool(2, initializer=tp.record_init, initargs=(1, 'a')) as p:
        assert p.map(tp.read_init, range(6), chunksize=1) == [(1, 'a')] * 6


def test_maxtasksperchild_replaces_workers(ctx):
    with ctx.Pool(2, maxtasksperchild=1) as p:
        pids = p.map(tp.pid_of_worker, range(4), chunksize=1)
        assert len(set(pids)) == 4


def test_workers_are_named_and_daemonic(pool, ctx):
    names = set(pool.map(tp.name_of_worker, range(4), chunksize=1))
    assert all('PoolWorker' in name for name in names), names
    assert len(pool._pool) == 2
    assert all(p.daemon for p in pool._pool)


def test_default_size_is_cpu_count():
    p = mpspawn.Pool()
    try:
        assert p._processes == mpspawn.cpu_count()
    finally:
        p.terminate()
        p.join()


# -- life cycle ------------------------------------------------------------------------

def test_context_manager_terminates(ctx):
    with ctx.Pool(2) as p:
        assert p.apply(tp.square, (2,)) == 4
        pids = [w.pid for w in p._pool]
    assert support.wait_until(lambda: all(pid_gone(pid) for pid in pids), timeout=T)
    with pytest.raises(ValueError):
        p.apply(tp.square, (2,))


def test_close_then_join(ctx):
    p = ctx.Pool(2)
    result = p.map_async(tp.square, range(10), chunksize=1)
    pids = [w.pid for w in p._pool]
    p.close()
    with pytest.raises(ValueError, match='Pool not running'):
        p.apply_async(tp.square, (1,))
    with pytest.raises(ValueError):
        p.map(tp.square, [1])
    with pytest.raises(ValueError):
        p.imap(tp.square, [1])
    p.join()
    # Work queued before close() is finished.
    assert result.get(timeout=0) == [x * x for x in range(10)]
    assert all(pid_gone(pid) for pid in pids)
    p.join()


def test_join_before_close_is_an_error(pool):
    with pytest.raises(ValueError):
        pool.join()


def test_terminate_while_tasks_run(ctx):
    p = ctx.Pool(2)
    results = [p.apply_async(tp.sleep_then, (30,)) for _ in range(4)]
    assert p.apply_async(tp.square, (3,)) is not None
    pids = [w.pid for w in p._pool]
    start = support.monotonic()
    p.terminate()
    p.join()
    assert support.monotonic() - start < 20
    assert all(pid_gone(pid) for pid in pids)
    assert not any(r.ready() and r.successful() for r in results)


def test_collected_pool_is_terminated(ctx):
    p = ctx.Pool(2)
    assert p.apply(tp.square, (5,)) == 25
    pids = [w.pid for w in p._pool]
    del p
    gc.collect()
    assert support.wait_until(lambda: all(pid_gone(pid) for pid in pids), timeout=T)


@pytest.mark.parametrize('kwargs, error', [
    (dict(processes=0), ValueError),
    (dict(processes=-3), ValueError),
    (dict(initializer=3), TypeError),
    (dict(maxtasksperchild=0), ValueError),
    (dict(maxtasksperchild=-1), ValueError),
    (dict(maxtasksperchild='2'), ValueError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        mpspawn.Pool(**kwargs)


def test_zero_processes_message():
    with pytest.raises(ValueError, match='Number of processes must be at least 1'):
        mpspawn.Pool(0)


def test_pool_cannot_be_pickled():
    p = mpspawn.get_context('fork').Pool(1)
    try:
        with pytest.raises(NotImplementedError):
            pickle.dumps(p)
    finally:
        p.terminate()
        p.join()


# -- what cannot be pickled ---------------------------------------------------------

def test_unpicklable_result_gives_maybe_encoding_error(pool):
    with pytest.raises(MaybeEncodingError) as info:
        pool.apply(tp.return_unpicklable)
    assert 'Error sending result' in str(info.value)
    # The worker is still fine.
    assert pool.apply(tp.square, (4,)) == 16


def test_unpicklable_argument_fails_that_task(pool):
    generator = (i for i in range(3))
    with pytest.raises(TypeError):
        pool.apply_async(tp.identity, (generator,)).get(timeout=T)
    with pytest.raises(TypeError):
        pool.map(tp.identity, [1, generator, 3])
    assert pool.apply(tp.square, (4,)) == 16


# -- __main__ under spawn -------------------------------------------------------------

SCRIPT = '''
import sys
import mpspawn as multiprocessing

def cube(x):
    return x * x * x

if __name__ == '__main__':
    pool = multiprocessing.get_context(sys.argv[1]).Pool(2)
    print(sum(pool.map(cube, range(100))))
    print(sorted(pool.imap_unordered(cube, range(4))))
    pool.close()
    pool.join()
'''


def test_map_over_a_function_of_the_script(tmpdir, spawning_ctx):
    script = support.write_file(str(tmpdir.join('cubes.py')), SCRIPT)
    result = support.run_python([script, spawning_ctx.get_start_method()],
                                cwd=str(tmpdir), timeout=T)
    assert result.returncode == 0, result
    assert result.out.split('\n')[:2] == [str(sum(x ** 3 for x in range(100))),
                                          '[0, 1, 8, 27]'], result


# -- ThreadPool -------------------------------------------------------------------------

def test_threadpool_api():
    with ThreadPool(3) as p:
        local = []
        # Threads share memory: nothing is pickled.
        p.map(local.append, range(5))
        assert sorted(local) == list(range(5))
        assert p.apply(lambda x: x + 1, (1,)) == 2
        error = ValueError('same object')
        with pytest.raises(ValueError) as info:
            p.apply(tp.raise_value_error, (error,))
        assert info.value.args[0] is error
        assert list(p.imap(tp.square, range(10), chunksize=3)) == [x * x for x in range(10)]
        assert p.starmap(tp.add, [(1, 2)]) == [3]


def test_threadpool_initializer_and_close():
    seen = []
    p = ThreadPool(2, initializer=seen.append, initargs=('ready',))
    assert p.map(tp.square, range(10)) == [x * x for x in range(10)]
    p.close()
    p.join()
    assert seen == ['ready', 'ready']


def test_dummy_pool_is_threadpool():
    import mpspawn.dummy
    p = mpspawn.dummy.Pool(2)
    try:
        assert isinstance(p, ThreadPool)
        assert p.map(tp.square, [3]) == [9]
    finally:
        p.terminate()
        p.join()


# -- mpspawn only: a worker dies ------------------------------------------------------

@pytest.mark.mpspawn_only
def test_worker_killed_mid_task_names_it(ctx):
    from mpspawn.pool import WorkerLostError
    with ctx.Pool(2) as p:
        result = p.apply_async(tp.kill_self, (signal.SIGKILL,))
        with pytest.raises(WorkerLostError) as info:
            result.get(timeout=T)
        error = info.value
        assert error.exitcode == -signal.SIGKILL
        assert 'SIGKILL' in str(error) and '-9' in str(error)
        assert str(error.pid) in str(error)
        assert error.worker_name in str(error)
        assert isinstance(error, mpspawn.ProcessError)
        # The pool replaced the worker and goes on.
        assert p.map(tp.square, range(6), chunksize=1) == [0, 1, 4, 9, 16, 25]
        assert len(p._pool) == 2


@pytest.mark.mpspawn_only
def test_worker_killed_from_outside(tmpdir, spawning_ctx):
    from mpspawn.pool import WorkerLostError
    flag = str(tmpdir.join('pid'))
    p = spawning_ctx.Pool(2)
    try:
        result = p.apply_async(tp.write_pid_then_sleep, (flag, 30))
        tp.wait_for_file(flag, timeout=T)
        with open(flag) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(WorkerLostError) as info:
            result.get(timeout=T)
        assert 'pid %d' % pid in str(info.value)
    finally:
        p.terminate()
        p.join()


@pytest.mark.mpspawn_only
def test_map_fails_when_a_worker_os_exits(ctx):
    from mpspawn.pool import WorkerLostError
    p = ctx.Pool(2)
    with pytest.raises(WorkerLostError, match='exit code 3'):
        p.map(tp.os_exit, [3], chunksize=1)
    with pytest.raises(WorkerLostError, match='exit code 7'):
        p.apply(tp.sys_exit, (7,))
    assert p.apply(tp.square, (6,)) == 36
    p.close()
    p.join()


@pytest.mark.mpspawn_only
def test_imap_item_of_a_lost_worker_fails_alone():
    from mpspawn.pool import WorkerLostError
    with mpspawn.get_context('fork').Pool(2) as p:
        it = p.imap(tp.square, [1, 2])
        assert list(it) == [1, 4]
        it = p.imap(tp.os_exit, [5])
        with pytest.raises(WorkerLostError):
            it.next(timeout=T)
        with pytest.raises(StopIteration):
            it.next(timeout=T)


@pytest.mark.mpspawn_only
def test_failing_initializer_gives_up(tmpdir, ctx):
    from mpspawn.pool import BrokenPoolError
    trace = str(tmpdir.join('attempts'))
    p = ctx.Pool(2, initializer=tp.init_appends_then_fails, initargs=(trace,))
    try:
        with pytest.raises(BrokenPoolError) as info:
            p.map(tp.square, range(10))
        assert isinstance(info.value.__cause__, ValueError)
        assert 'initializer failed on purpose' in str(info.value)
        with pytest.raises(BrokenPoolError):
            p.apply_async(tp.square, (1,))
    finally:
        p.terminate()
        p.join()
    with open(trace) as f:
        attempts = len(f.read())
    # Three failures in a row break the pool; replacements already starting
    # (at most one per worker slot) may fail too.  Never an endless respawn.
    assert 3 <= attempts <= 3 + 2


@pytest.mark.mpspawn_only
def test_broken_pool_closes_cleanly(ctx):
    from mpspawn.pool import BrokenPoolError
    p = ctx.Pool(1, initializer=tp.init_fails)
    with pytest.raises(BrokenPoolError):
        p.apply(tp.square, (1,))
    p.close()
    p.join()


NO_GUARD_SCRIPT = '''
import sys
import mpspawn as multiprocessing

def cube(x):
    return x * x * x

pool = multiprocessing.get_context(sys.argv[1]).Pool(2)
print(pool.map(cube, range(10)))
'''


@pytest.mark.mpspawn_only
def test_script_without_main_guard_fails_cleanly(tmpdir, spawning_ctx):
    script = support.write_file(str(tmpdir.join('noguard.py')), NO_GUARD_SCRIPT)
    result = support.run_python([script, spawning_ctx.get_start_method()],
                                cwd=str(tmpdir), timeout=T)
    assert result.returncode == 1, result
    assert 'BrokenPoolError' in result.err, result
    assert '__name__ == \'__main__\'' in result.err, result
    # Each failed worker says why once, the pool gives up after a few (and a
    # fork server that preloads __main__ reports it once more).
    assert 1 <= result.err.count('bootstrapping phase') <= 5, result


@pytest.mark.mpspawn_only
def test_terminate_fails_pending_results(ctx):
    from mpspawn.pool import PoolTerminatedError
    p = ctx.Pool(1)
    running = p.apply_async(tp.sleep_then, (30,))
    queued = p.map_async(tp.square, range(10))
    it = p.imap(tp.square, range(10))
    p.terminate()
    p.join()
    for result in (running, queued):
        with pytest.raises(PoolTerminatedError):
            result.get(timeout=T)
    with pytest.raises(PoolTerminatedError):
        for _ in range(11):
            it.next(timeout=T)


@pytest.mark.mpspawn_only
def test_callback_that_raises_is_reported(capfd):
    def bad_callback(value):
        raise RuntimeError('callback trouble')
    with mpspawn.get_context('fork').Pool(1) as p:
        result = p.apply_async(tp.square, (3,), callback=bad_callback)
        assert result.get(timeout=T) == 9
        assert p.apply(tp.square, (4,)) == 16
    assert 'callback trouble' in capfd.readouterr().err


@pytest.mark.mpspawn_only
def test_exception_that_cannot_be_unpickled(pool):
    with pytest.raises(MaybeEncodingError) as info:
        pool.apply(tp.raise_unloadable)
    assert 'ExceptionThatCannotBeUnpickled' in str(info.value)
    assert pool.apply(tp.square, (2,)) == 4


@pytest.mark.mpspawn_only
def test_pickling_error_names_the_item(fork_pool):
    generator = (i for i in range(3))
    with pytest.raises(TypeError) as info:
        fork_pool.map(tp.identity, [1, 2, 3, 4, 5, generator, 7], chunksize=4)
    assert 'iterable[5]' in str(info.value), info.value
    with pytest.raises(TypeError) as info:
        list(fork_pool.imap(tp.identity, [1, 2, 3, generator], chunksize=2))
    assert 'iterable[3]' in str(info.value), info.value


@pytest.mark.mpspawn_only
def test_threadpool_failing_initializer_gives_up():
    from mpspawn.pool import BrokenPoolError
    p = ThreadPool(2, initializer=tp.init_fails)
    try:
        with pytest.raises(BrokenPoolError):
            p.map(tp.square, range(3))
    finally:
        p.terminate()
        p.join()


@pytest.mark.mpspawn_only
def test_threadpool_task_raising_systemexit():
    from mpspawn.pool import WorkerLostError
    with ThreadPool(1) as p:
        with pytest.raises(WorkerLostError, match='SystemExit'):
            p.apply(tp.sys_exit, (4,))
        assert p.apply(tp.square, (3,)) == 9


class SequenceThatBreaks(object):
    """Has a length, but iterating it fails after three items."""

    def __len__(self):
        return 10

    def __iter__(self):
        for i in range(3):
            yield i
        raise RuntimeError('the sequence broke')


@pytest.mark.mpspawn_only
def test_map_over_a_sequence_that_breaks(fork_pool):
    # Python 3 waits forever for the chunks that never come.
    with pytest.raises(RuntimeError, match='the sequence broke'):
        fork_pool.map(tp.square, SequenceThatBreaks(), chunksize=1)
    assert fork_pool.map(tp.square, [2]) == [4]


@pytest.mark.mpspawn_only
def test_pool_used_in_a_forked_child_says_so():
    ctx = mpspawn.get_context('fork')
    with ctx.Pool(1) as p:
        reader, writer = ctx.Pipe(duplex=False)
        child = ctx.Process(target=tp.try_pool_in_forked_child, args=(p, writer))
        child.start()
        writer.close()
        assert reader.poll(T)
        assert reader.recv().startswith('RuntimeError: a pool cannot be used')
        child.join(T)
        reader.close()
        assert p.apply(tp.square, (3,)) == 9


@pytest.mark.mpspawn_only
def test_terminate_kills_workers_that_ignore_sigterm(spawning_ctx):
    p = spawning_ctx.Pool(2, initializer=tp.ignore_sigterm)
    assert p.map(tp.square, range(4), chunksize=1) == [0, 1, 4, 9]
    pids = [w.pid for w in p._pool]
    p.apply_async(tp.sleep_then, (30,))
    p.terminate()
    p.join()
    assert all(pid_gone(pid) for pid in pids)


@pytest.mark.mpspawn_only
def test_worker_that_closes_its_pipes_and_lives_on(spawning_ctx):
    # Under spawn its sentinel tells at once and it is killed; a fork server
    # reports the exit when the task ends.
    from mpspawn.pool import WorkerLostError
    with spawning_ctx.Pool(1) as p:
        with pytest.raises(WorkerLostError):
            p.apply(tp.close_fds_and_sleep, (3,))
        assert p.apply(tp.square, (5,)) == 25


EXIT_SCRIPT = '''
import sys
import mpspawn
import targets_pool as tp

if __name__ == '__main__':
    pool = mpspawn.get_context(sys.argv[1]).Pool(2)
    assert pool.apply(tp.square, (3,)) == 9
    pool.apply_async(tp.sleep_then, (60,))
    print('leaving without close')
'''


def test_exit_terminates_an_open_pool(tmpdir, start_method):
    script = support.write_file(str(tmpdir.join('leave.py')), EXIT_SCRIPT)
    result = support.run_python([script, start_method], timeout=30)
    assert result.returncode == 0, result
    assert 'leaving without close' in result.out


@pytest.mark.parametrize('end', ['close_join', 'terminate', 'terminate_join'])
def test_no_thread_left(end):
    import threading
    before = set(threading.enumerate())
    for make in (lambda: mpspawn.get_context('fork').Pool(2), lambda: ThreadPool(2)):
        p = make()
        assert list(p.imap(tp.square, range(5))) == [0, 1, 4, 9, 16]
        p.apply_async(tp.square, (1,)).get(timeout=T)
        if end == 'close_join':
            p.close()
            p.join()
        elif end == 'terminate':
            p.terminate()
        else:
            p.terminate()
            p.join()
        left = set(threading.enumerate()) - before
        if end == 'terminate' and isinstance(p, ThreadPool):
            # Python 3: terminate() does not wait for thread workers, join() does.
            p.join()
            left = set(threading.enumerate()) - before
        assert not left, left
