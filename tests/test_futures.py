"""mpspawn.futures: concurrent.futures with Python 3's ProcessPoolExecutor.

Conformance: on Python 3 ``mpspawn.futures`` is ``concurrent.futures``; on
2.7 it is the ``futures`` backport plus mpspawn's ProcessPoolExecutor.
"""
import os
import signal

import pytest

import mpspawn
import support
import targets_pool as tp

futures = pytest.importorskip('mpspawn.futures')

T = 60


def BrokenProcessPool():
    # concurrent.futures.process is imported by ProcessPoolExecutor itself.
    futures.ProcessPoolExecutor
    return futures.process.BrokenProcessPool


@pytest.fixture
def executor(request, ctx):
    ex = futures.ProcessPoolExecutor(2, mp_context=ctx)
    yield ex
    ex.shutdown(wait=True, cancel_futures=True)
    request.node.funcargs.pop('executor', None)


def test_the_names_of_concurrent_futures():
    for name in ['FIRST_COMPLETED', 'FIRST_EXCEPTION', 'ALL_COMPLETED', 'CancelledError',
                 'TimeoutError', 'BrokenExecutor', 'InvalidStateError', 'Future',
                 'Executor', 'wait', 'as_completed', 'ProcessPoolExecutor',
                 'ThreadPoolExecutor']:
        assert hasattr(futures, name), name
    assert issubclass(BrokenProcessPool(), futures.BrokenExecutor)
    assert issubclass(futures.ProcessPoolExecutor, futures.Executor)
    with futures.ThreadPoolExecutor(2) as ex:
        assert ex.submit(tp.square, 3).result(timeout=T) == 9


def test_submodules_are_the_real_ones(ctx):
    from mpspawn.futures.process import BrokenProcessPool as imported
    from mpspawn.futures.thread import ThreadPoolExecutor
    assert imported is BrokenProcessPool()
    assert ThreadPoolExecutor is futures.ThreadPoolExecutor
    ex = futures.ProcessPoolExecutor(1, mp_context=ctx)
    try:
        with pytest.raises(imported):
            ex.submit(tp.kill_self, signal.SIGKILL).result(timeout=T)
    finally:
        ex.shutdown(wait=True)


def test_submit_result_and_exception(executor):
    future = executor.submit(tp.add, 2, b=3)
    assert future.result(timeout=T) == 5
    assert future.done() and not future.cancelled()
    failing = executor.submit(tp.raise_value_error, 'boom')
    with pytest.raises(ValueError) as info:
        failing.result(timeout=T)
    assert 'raise_value_error' in str(info.value.__cause__)
    assert isinstance(failing.exception(timeout=T), ValueError)


def test_wait_and_as_completed(executor):
    fs = [executor.submit(tp.square, i) for i in range(6)]
    done, not_done = futures.wait(fs, timeout=T)
    assert len(done) == 6 and not not_done
    assert sorted(f.result() for f in futures.as_completed(fs, timeout=T)) == \
        [i * i for i in range(6)]


def test_map_in_order_with_chunksize(executor):
    assert list(executor.map(tp.square, range(20))) == [i * i for i in range(20)]
    assert list(executor.map(tp.add, range(10), range(10), chunksize=3)) == \
        [2 * i for i in range(10)]
    assert list(executor.map(tp.square, [])) == []
    with pytest.raises(ValueError):
        executor.map(tp.square, range(3), chunksize=0)


def test_map_reraises(executor):
    results = executor.map(tp.fail_on, range(6), [3] * 6, chunksize=2)
    assert next(results) == 0
    with pytest.raises(ValueError):
        list(results)


def test_map_timeout(executor):
    results = executor.map(tp.sleep_then, [1.5], timeout=0.2)
    with pytest.raises(futures.TimeoutError):
        next(results)


def test_shutdown_refuses_new_work(ctx):
    ex = futures.ProcessPoolExecutor(2, mp_context=ctx)
    assert ex.submit(tp.square, 2).result(timeout=T) == 4
    ex.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        ex.submit(tp.square, 2)
    ex.shutdown()


def test_shutdown_without_wait_lets_queued_work_finish():
    ex = futures.ProcessPoolExecutor(1, mp_context=mpspawn.get_context('fork'))
    fs = [ex.submit(tp.square, i) for i in range(5)]
    ex.shutdown(wait=False)
    assert [f.result(timeout=T) for f in fs] == [0, 1, 4, 9, 16]
    ex.shutdown(wait=True)


def test_shutdown_cancel_futures():
    ex = futures.ProcessPoolExecutor(1, mp_context=mpspawn.get_context('fork'))
    running = ex.submit(tp.sleep_then, 1.0, 'done')
    queued = [ex.submit(tp.square, i) for i in range(20)]
    assert support.wait_until(running.running, timeout=T)
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.result(timeout=T) == 'done'
    assert any(f.cancelled() for f in queued)
    for f in queued:
        assert f.cancelled() or f.result(timeout=0) is not None


def test_context_manager(ctx):
    with futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        future = ex.submit(tp.square, 8)
    assert future.result(timeout=0) == 64


def test_initializer(ctx):
    with futures.ProcessPoolExecutor(2, mp_context=ctx, initializer=tp.record_init,
                                     initargs=('x', 1)) as ex:
        assert list(ex.map(tp.read_init, range(4))) == [('x', 1)] * 4


def test_failing_initializer_breaks_the_pool(ctx):
    ex = futures.ProcessPoolExecutor(2, mp_context=ctx, initializer=tp.init_fails)
    try:
        future = ex.submit(tp.square, 2)
        with pytest.raises(BrokenProcessPool()):
            future.result(timeout=T)
        assert support.wait_until(lambda: _refuses(ex), timeout=T)
    finally:
        ex.shutdown(wait=True)


def _refuses(ex):
    try:
        ex.submit(tp.square, 1).cancel()
    except BrokenProcessPool():
        return True
    return False


def test_killed_worker_breaks_the_pool(ctx):
    ex = futures.ProcessPoolExecutor(2, mp_context=ctx)
    try:
        assert ex.submit(tp.square, 2).result(timeout=T) == 4
        victim = ex.submit(tp.kill_self, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool()):
            victim.result(timeout=T)
        with pytest.raises(BrokenProcessPool()):
            ex.submit(tp.square, 1)
    finally:
        ex.shutdown(wait=True)


def test_base_exceptions_are_results(executor):
    with pytest.raises(SystemExit):
        executor.submit(tp.sys_exit, 5).result(timeout=T)
    assert executor.submit(tp.square, 3).result(timeout=T) == 9


def test_unpicklable_call_fails_its_future(executor):
    future = executor.submit(tp.identity, (i for i in range(3)))
    with pytest.raises(TypeError):
        future.result(timeout=T)
    assert executor.submit(tp.square, 3).result(timeout=T) == 9


def test_max_tasks_per_child(spawning_ctx):
    with futures.ProcessPoolExecutor(1, mp_context=spawning_ctx,
                                     max_tasks_per_child=1) as ex:
        pids = [ex.submit(tp.pid_of_worker).result(timeout=T) for _ in range(3)]
    assert len(set(pids)) == 3


def test_max_tasks_per_child_defaults_to_spawn():
    with futures.ProcessPoolExecutor(1, max_tasks_per_child=2) as ex:
        assert ex._mp_context.get_start_method() == 'spawn'
        assert ex.submit(tp.square, 2).result(timeout=T) == 4


def test_workers_may_have_children():
    with futures.ProcessPoolExecutor(1, mp_context=mpspawn.get_context('spawn')) as ex:
        assert ex.submit(tp.nested_pool_map, 1).result(timeout=T) == 1


@pytest.mark.parametrize('kwargs, error', [
    (dict(max_workers=0), ValueError),
    (dict(max_workers=-1), ValueError),
    (dict(initializer=5), TypeError),
    (dict(max_tasks_per_child=0), ValueError),
    (dict(max_tasks_per_child='1'), TypeError),
])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        futures.ProcessPoolExecutor(**kwargs)


def test_max_tasks_per_child_refuses_fork():
    with pytest.raises(ValueError):
        futures.ProcessPoolExecutor(1, mp_context=mpspawn.get_context('fork'),
                                    max_tasks_per_child=1)


# -- mpspawn only -------------------------------------------------------------------------

@pytest.mark.mpspawn_only
def test_broken_pool_names_the_exit_code(spawning_ctx):
    ex = futures.ProcessPoolExecutor(2, mp_context=spawning_ctx)
    try:
        victim = ex.submit(tp.os_exit, 13)
        with pytest.raises(BrokenProcessPool()) as info:
            victim.result(timeout=T)
        assert 'exit code 13' in str(info.value)
        with pytest.raises(BrokenProcessPool()) as info:
            ex.submit(tp.square, 1)
        assert 'exit code 13' in str(info.value)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.mpspawn_only
def test_killed_worker_fails_pending_futures_at_once():
    ex = futures.ProcessPoolExecutor(1, mp_context=mpspawn.get_context('fork'))
    try:
        victim = ex.submit(tp.kill_self, signal.SIGKILL)
        queued = [ex.submit(tp.square, i) for i in range(3)]
        for f in [victim] + queued:
            with pytest.raises(BrokenProcessPool(), match='SIGKILL'):
                f.result(timeout=T)
    finally:
        ex.shutdown(wait=True)


@pytest.mark.mpspawn_only
def test_missing_backport_says_how_to_install(tmpdir):
    script = support.write_file(str(tmpdir.join('nofutures.py')), '''
        import sys
        sys.modules['concurrent'] = None     # as if the backport were missing
        try:
            import mpspawn.futures
        except ImportError as exc:
            print('ImportError: %s' % exc)
        ''')
    result = support.run_python([script], timeout=T)
    assert 'pip install mpspawn[futures]' in result.out, result


EXIT_SCRIPT = '''
import sys
import mpspawn
import mpspawn.futures as futures
import targets_pool as tp

if __name__ == '__main__':
    ex = futures.ProcessPoolExecutor(1, mp_context=mpspawn.get_context(sys.argv[1]))
    ex.submit(tp.write_file_after, sys.argv[2], 0.5)
    print('leaving without shutdown')
'''


def test_exit_waits_for_submitted_work(tmpdir, start_method):
    script = support.write_file(str(tmpdir.join('leave.py')), EXIT_SCRIPT)
    flag = str(tmpdir.join('flag'))
    result = support.run_python([script, start_method, flag], timeout=T)
    assert result.returncode == 0, result
    assert os.path.exists(flag), result
