"""Conformance: Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event
and Barrier, within a process, between threads and across the boundary of
forked and spawned children.

Runs against mpspawn on 2.7 and against the standard library on Python 3.
"""
import functools
import gc
import os
import pickle
import signal
import subprocess
import sys
import threading
import time

import pytest

import mpspawn
import support
from support import start, join_ok, recv
import targets_sync
from targets_sync import BrokenBarrierError

DEADLINE = targets_sync.DEADLINE

needs_getvalue = pytest.mark.skipif(sys.platform == 'darwin',
                                    reason='sem_getvalue does not work on macOS')


def acquire_n(sem, n, timeout=DEADLINE):
    for _ in range(n):
        assert sem.acquire(True, timeout)


# -- Lock --------------------------------------------------------------------------

def test_lock_acquire_release_return_values(ctx):
    lock = ctx.Lock()
    assert lock.acquire() is True
    assert lock.acquire(False) is False
    assert lock.acquire(True, 0.05) is False
    assert lock.acquire(timeout=0) is False
    assert lock.release() is None
    assert lock.acquire(block=False) is True
    lock.release()


def test_lock_over_release_is_value_error(ctx):
    lock = ctx.Lock()
    with pytest.raises(ValueError):
        lock.release()
    lock.acquire()
    lock.release()
    with pytest.raises(ValueError):
        lock.release()


def test_lock_context_manager(ctx):
    lock = ctx.Lock()
    with lock as entered:
        assert entered is True
        assert not lock.acquire(False)
    assert lock.acquire(False)
    lock.release()
    with pytest.raises(KeyError):
        with lock:
            raise KeyError('inside')
    assert lock.acquire(False)
    lock.release()


def test_lock_repr(ctx):
    lock = ctx.Lock()
    assert repr(lock) == '<Lock(owner=None)>'
    lock.acquire()
    assert repr(lock) == '<Lock(owner=MainProcess)>'
    result = []
    thread = threading.Thread(target=lambda: result.append(repr(lock)), name='Peeker')
    thread.start()
    thread.join()
    assert result == ['<Lock(owner=SomeOtherThread)>']
    lock.release()


def test_lock_repr_in_thread(ctx):
    lock = ctx.Lock()
    result = []

    def body():
        with lock:
            result.append(repr(lock))
    thread = threading.Thread(target=body, name='Worker-7')
    thread.start()
    thread.join()
    assert result == ['<Lock(owner=MainProcess|Worker-7)>']


def test_lock_held_by_child_blocks_parent(ctx):
    lock = ctx.Lock()
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.acquire_and_hold, lock, w, 0.5)
    w.close()
    assert recv(r) == 'held'
    assert lock.acquire(False) is False
    assert repr(lock) == '<Lock(owner=SomeOtherProcess)>'
    assert lock.acquire(True, DEADLINE) is True
    lock.release()
    join_ok(p)
    r.close()


def test_lock_released_by_another_process(ctx):
    lock = ctx.Lock()
    lock.acquire()
    join_ok(start(ctx, targets_sync.release, lock))
    assert lock.acquire(False) is True
    lock.release()


def test_lock_timeout_in_child(ctx):
    lock = ctx.Lock()
    lock.acquire()
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.try_acquire, lock, 0.1, w)
    w.close()
    assert recv(r) is False
    join_ok(p)
    r.close()
    lock.release()
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.try_acquire, lock, DEADLINE, w)
    w.close()
    assert recv(r) is True
    join_ok(p)
    r.close()


def test_lock_mutual_exclusion_between_processes(ctx, tmpdir):
    lock = ctx.Lock()
    path = str(tmpdir.join('log'))
    procs = [start(ctx, targets_sync.log_critical_section, lock, path, str(i), 5)
             for i in range(3)]
    join_ok(*procs)
    with open(path) as f:
        lines = f.read().split('\n')[:-1]
    assert len(lines) == 3 * 5 * 2
    for enter, leave in zip(lines[::2], lines[1::2]):
        assert enter.startswith('enter ') and leave == 'leave ' + enter[6:]


def test_lock_between_threads(ctx):
    lock = ctx.Lock()
    counter = [0]

    def body():
        for _ in range(200):
            with lock:
                value = counter[0]
                time.sleep(0)
                counter[0] = value + 1
    threads = [threading.Thread(target=body) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter[0] == 800


# -- RLock --------------------------------------------------------------------------

def test_rlock_recursion_and_repr(ctx):
    rlock = ctx.RLock()
    assert repr(rlock) == '<RLock(None, 0)>'
    assert rlock.acquire() and rlock.acquire() and rlock.acquire(False)
    assert repr(rlock) == '<RLock(MainProcess, 3)>'
    rlock.release()
    rlock.release()
    assert repr(rlock) == '<RLock(MainProcess, 1)>'
    rlock.release()
    assert repr(rlock) == '<RLock(None, 0)>'


def test_rlock_release_unowned_is_assertion_error(ctx):
    rlock = ctx.RLock()
    with pytest.raises(AssertionError):
        rlock.release()
    rlock.acquire()
    errors = []

    def release_elsewhere():
        try:
            rlock.release()
        except AssertionError as exc:
            errors.append(exc)
    thread = threading.Thread(target=release_elsewhere)
    thread.start()
    thread.join()
    assert len(errors) == 1
    # Still ours after the failed release.
    assert repr(rlock) == '<RLock(MainProcess, 1)>'
    rlock.release()


def test_rlock_other_thread_blocks(ctx):
    rlock = ctx.RLock()
    rlock.acquire()
    result = []
    thread = threading.Thread(target=lambda: result.append(rlock.acquire(True, 0.05)))
    thread.start()
    thread.join()
    assert result == [False]
    assert repr(rlock) == '<RLock(MainProcess, 1)>'
    rlock.release()


def test_rlock_held_by_parent_blocks_child(ctx):
    rlock = ctx.RLock()
    rlock.acquire()
    rlock.acquire()
    r, w = ctx.Pipe(duplex=False)
    # A forked child must not think it inherited ownership.
    p = start(ctx, targets_sync.try_acquire, rlock, 0.1, w)
    w.close()
    assert recv(r) is False
    join_ok(p)
    rlock.release()
    rlock.release()
    r.close()


def test_rlock_release_in_child_that_does_not_own_it(ctx):
    rlock = ctx.RLock()
    rlock.acquire()
    p = start(ctx, targets_sync.release, rlock)
    p.join(DEADLINE)
    assert p.exitcode == 1          # AssertionError in the child
    assert repr(rlock) == '<RLock(MainProcess, 1)>'
    rlock.release()


# -- Semaphore and BoundedSemaphore -------------------------------------------------

@needs_getvalue
def test_semaphore_values_and_repr(ctx):
    sem = ctx.Semaphore(3)
    assert sem.get_value() == 3
    assert repr(sem) == '<Semaphore(value=3)>'
    acquire_n(sem, 3)
    assert sem.acquire(False) is False
    assert sem.acquire(True, 0.05) is False
    assert sem.get_value() == 0
    for _ in range(5):
        sem.release()          # an unbounded semaphore grows past its start
    assert sem.get_value() == 5
    assert ctx.Semaphore().get_value() == 1
    assert ctx.Semaphore(0).acquire(False) is False


def test_semaphore_negative_value(ctx):
    with pytest.raises((ValueError, OSError)):
        ctx.Semaphore(-1)


@needs_getvalue
def test_bounded_semaphore(ctx):
    sem = ctx.BoundedSemaphore(2)
    assert repr(sem) == '<BoundedSemaphore(value=2, maxvalue=2)>'
    with pytest.raises(ValueError):
        sem.release()
    acquire_n(sem, 2)
    assert repr(sem) == '<BoundedSemaphore(value=0, maxvalue=2)>'
    sem.release()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.get_value() == 2


@needs_getvalue
def test_semaphore_released_by_children(ctx):
    sem = ctx.Semaphore(0)
    procs = [start(ctx, targets_sync.semaphore_hand_back, sem, 3) for _ in range(3)]
    join_ok(*procs)
    assert sem.get_value() == 9
    acquire_n(sem, 9, timeout=0)


@needs_getvalue
def test_bounded_semaphore_over_release_in_child(ctx):
    sem = ctx.BoundedSemaphore(1)
    p = start(ctx, targets_sync.semaphore_hand_back, sem, 1)
    p.join(DEADLINE)
    assert p.exitcode == 1          # ValueError in the child
    assert sem.get_value() == 1


def test_semaphore_limits_concurrency(ctx, tmpdir):
    sem = ctx.Semaphore(2)
    lock = ctx.Lock()
    path = str(tmpdir.join('log'))
    procs = [start(ctx, targets_sync.count_concurrency, sem, lock, path, str(i))
             for i in range(5)]
    join_ok(*procs)
    with open(path) as f:
        events = f.read().split()
    assert len(events) == 10
    inside = peak = 0
    for event in events:
        inside += 1 if event[0] == '+' else -1
        peak = max(peak, inside)
    assert inside == 0
    assert peak <= 2


# -- Condition ---------------------------------------------------------------------

def test_condition_wait_requires_lock(ctx):
    cond = ctx.Condition()
    with pytest.raises(AssertionError):
        cond.wait(0.01)
    with pytest.raises(AssertionError):
        cond.notify()


def test_condition_wait_timeout_returns_false(ctx):
    cond = ctx.Condition(ctx.Lock())
    with cond:
        assert cond.wait(0.05) is False
        assert cond.wait(timeout=0) is False
    # The lock was taken back, then released by the with block.
    assert cond.acquire(False)
    cond.release()


def test_condition_wait_restores_rlock_depth(ctx):
    cond = ctx.Condition()
    cond.acquire()
    cond.acquire()
    assert cond.wait(0.01) is False
    assert repr(cond._lock) == '<RLock(MainProcess, 2)>'
    cond.release()
    cond.release()


def test_condition_repr(ctx):
    cond = ctx.Condition(ctx.Lock())
    assert repr(cond) == '<Condition(<Lock(owner=None)>, 0)>'


def test_condition_notify_and_notify_all_across_processes(ctx):
    cond = ctx.Condition()
    sleeping = ctx.Semaphore(0)
    woken = ctx.Semaphore(0)
    pipes = [ctx.Pipe(duplex=False) for _ in range(3)]
    procs = [start(ctx, targets_sync.condition_waiter, cond, sleeping, woken, w, DEADLINE)
             for r, w in pipes]
    for r, w in pipes:
        w.close()
    acquire_n(sleeping, 3)
    # Nobody wakes without a notification.
    assert woken.acquire(True, 0.1) is False
    with cond:
        cond.notify()
    assert woken.acquire(True, DEADLINE)
    assert woken.acquire(True, 0.1) is False
    with cond:
        cond.notify_all()
    acquire_n(woken, 2)
    assert [recv(r) for r, w in pipes] == [True, True, True]
    join_ok(*procs)
    for r, w in pipes:
        r.close()


def test_condition_notify_n(ctx):
    cond = ctx.Condition(ctx.Lock())
    sleeping = ctx.Semaphore(0)
    woken = ctx.Semaphore(0)
    pipes = [ctx.Pipe(duplex=False) for _ in range(3)]
    procs = [start(ctx, targets_sync.condition_waiter, cond, sleeping, woken, w, DEADLINE)
             for r, w in pipes]
    for r, w in pipes:
        w.close()
    acquire_n(sleeping, 3)
    with cond:
        cond.notify(2)
    acquire_n(woken, 2)
    assert woken.acquire(True, 0.1) is False
    with cond:
        cond.notify(5)
    acquire_n(woken, 1)
    join_ok(*procs)
    for r, w in pipes:
        r.close()


def test_condition_waiter_times_out_in_child(ctx):
    cond = ctx.Condition()
    sleeping = ctx.Semaphore(0)
    woken = ctx.Semaphore(0)
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.condition_waiter, cond, sleeping, woken, w, 0.1)
    w.close()
    assert recv(r) is False
    join_ok(p)
    # A notify after the timed-out waiter left wakes nobody and returns.
    with cond:
        cond.notify()
    r.close()


@needs_getvalue
def test_condition_wait_for_across_processes(ctx):
    cond = ctx.Condition()
    state = ctx.Semaphore(0)
    r, w = ctx.Pipe(duplex=False)
    waiter = start(ctx, targets_sync.condition_wait_for, cond, state, 3, w, DEADLINE)
    w.close()
    bumper = start(ctx, targets_sync.bump_and_notify, cond, state, 3, 0.02)
    assert recv(r) == (True, 3)
    join_ok(waiter, bumper)
    r.close()


@needs_getvalue
def test_condition_wait_for_timeout(ctx):
    cond = ctx.Condition()
    state = ctx.Semaphore(0)
    with cond:
        assert cond.wait_for(lambda: state.get_value() == 1, timeout=0.1) is False
        assert cond.wait_for(lambda: 'already', timeout=0) == 'already'
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.condition_wait_for, cond, state, 5, w, 0.2)
    w.close()
    assert recv(r) == (False, 0)
    join_ok(p)
    r.close()


def test_condition_between_threads(ctx):
    cond = ctx.Condition()
    ready = []

    def waiter():
        with cond:
            ready.append(cond.wait_for(lambda: len(ready) == 1 and ready[0] == 'go', DEADLINE))
    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    with cond:
        ready.append('go')
        cond.notify_all()
    thread.join(DEADLINE)
    assert ready == ['go', True]


# -- Event ---------------------------------------------------------------------------

def test_event_set_clear_wait(ctx):
    event = ctx.Event()
    assert event.is_set() is False
    assert event.wait(0.05) is False
    assert event.wait(0) is False
    event.set()
    assert event.is_set() is True
    assert event.wait() is True
    assert event.wait(0) is True
    event.set()
    event.clear()
    assert event.is_set() is False
    event.clear()
    assert event.wait(0.01) is False


def test_event_set_by_parent_wakes_children(ctx):
    event = ctx.Event()
    pipes = [ctx.Pipe(duplex=False) for _ in range(3)]
    procs = [start(ctx, targets_sync.event_waiter, event, w, DEADLINE) for r, w in pipes]
    for r, w in pipes:
        w.close()
    for r, w in pipes:
        assert recv(r) == 'waiting'
    event.set()
    assert [recv(r) for r, w in pipes] == [(True, True)] * 3
    join_ok(*procs)
    for r, w in pipes:
        r.close()


def test_event_set_by_child_wakes_parent(ctx):
    event = ctx.Event()
    p = start(ctx, targets_sync.event_setter, event, 0.1)
    assert event.wait(DEADLINE) is True
    join_ok(p)
    event.clear()
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.event_waiter, event, w, 0.1)
    w.close()
    assert recv(r) == 'waiting'
    assert recv(r) == (False, False)
    join_ok(p)
    r.close()


# -- Barrier ---------------------------------------------------------------------------

def test_barrier_across_processes_with_action(ctx):
    done = ctx.Semaphore(0)
    barrier = ctx.Barrier(3, action=functools.partial(targets_sync.semaphore_hand_back, done, 1))
    assert barrier.parties == 3 and barrier.n_waiting == 0 and not barrier.broken
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [start(ctx, targets_sync.barrier_rounds, barrier, 3, w) for r, w in pipes]
    for r, w in pipes:
        w.close()
    mine = [barrier.wait(DEADLINE) for _ in range(3)]
    theirs = [recv(r) for r, w in pipes]
    join_ok(*procs)
    for round_ in range(3):
        indices = sorted([mine[round_]] + [t[round_] for t in theirs])
        assert indices == [0, 1, 2]
    # The action ran once per round, in one process.
    acquire_n(done, 3, timeout=0)
    assert done.acquire(False) is False
    assert barrier.n_waiting == 0 and not barrier.broken
    for r, w in pipes:
        r.close()


def test_barrier_n_waiting_and_abort_reaches_children(ctx):
    barrier = ctx.Barrier(3)
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [start(ctx, targets_sync.barrier_waiter, barrier, w) for r, w in pipes]
    for r, w in pipes:
        w.close()
    assert support.wait_until(lambda: barrier.n_waiting == 2, timeout=DEADLINE)
    barrier.abort()
    assert barrier.broken
    assert [recv(r) for r, w in pipes] == [('broken', None)] * 2
    join_ok(*procs)
    with pytest.raises(BrokenBarrierError):
        barrier.wait(DEADLINE)
    barrier.reset()
    assert not barrier.broken
    for r, w in pipes:
        r.close()


def test_barrier_timeout_breaks_it_for_everyone(ctx):
    barrier = ctx.Barrier(3, timeout=0.2)
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.barrier_waiter, barrier, w, DEADLINE)
    w.close()
    assert support.wait_until(lambda: barrier.n_waiting == 1, timeout=DEADLINE)
    with pytest.raises(BrokenBarrierError):
        barrier.wait()              # the default timeout of 0.2 s runs out
    assert barrier.broken
    assert recv(r) == ('broken', None)
    join_ok(p)
    r.close()


def test_barrier_reset_while_children_wait(ctx):
    barrier = ctx.Barrier(2)
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.barrier_waiter, barrier, w, DEADLINE)
    w.close()
    assert support.wait_until(lambda: barrier.n_waiting == 1, timeout=DEADLINE)
    barrier.reset()
    assert recv(r) == ('broken', None)
    join_ok(p)
    assert not barrier.broken
    r.close()
    # Usable again after the reset.
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.barrier_waiter, barrier, w, DEADLINE)
    w.close()
    mine = barrier.wait(DEADLINE)
    assert sorted([mine, recv(r)[1]]) == [0, 1]
    join_ok(p)
    r.close()


def test_barrier_failing_action(ctx):
    barrier = ctx.Barrier(2, action=targets_sync.failing_action)
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.barrier_waiter, barrier, w, DEADLINE)
    w.close()
    assert support.wait_until(lambda: barrier.n_waiting == 1, timeout=DEADLINE)
    with pytest.raises(ValueError):
        barrier.wait(DEADLINE)
    assert recv(r) == ('broken', None)
    assert barrier.broken
    join_ok(p)
    r.close()


def test_barrier_single_party_and_threads(ctx):
    assert ctx.Barrier(1).wait() == 0
    barrier = ctx.Barrier(4)
    results = []
    threads = [threading.Thread(target=lambda: results.append(barrier.wait(DEADLINE)))
               for _ in range(3)]
    for t in threads:
        t.start()
    results.append(barrier.wait(DEADLINE))
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]


def test_barrier_repr(ctx):
    barrier = ctx.Barrier(2)
    assert repr(barrier).endswith(': waiters=0/2>')
    barrier.abort()
    assert repr(barrier).endswith(': broken>')


# -- sharing rules ------------------------------------------------------------------

@pytest.mark.parametrize('kind', ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore',
                                  'Condition', 'Event'])
def test_pickling_outside_spawning_is_refused(ctx, kind):
    obj = getattr(ctx, kind)()
    with pytest.raises(RuntimeError) as info:
        pickle.dumps(obj, 2)
    assert 'inheritance' in str(info.value)


@pytest.mark.skipif('spawn' not in support.ALL_START_METHODS, reason='no spawn')
def test_fork_context_lock_refused_by_spawn_child():
    lock = mpspawn.get_context('fork').Lock()
    p = mpspawn.get_context('spawn').Process(target=targets_sync.release, args=(lock,))
    with pytest.raises(RuntimeError) as info:
        p.start()
    assert 'A SemLock created in a fork context' in str(info.value)


def test_spawning_objects_work_in_forked_children(spawning_ctx):
    # A lock made for spawn can also be inherited by a forked child.
    lock = spawning_ctx.Lock()
    lock.acquire()
    fork = mpspawn.get_context('fork')
    join_ok(start(fork, targets_sync.release, lock))
    assert lock.acquire(False)
    lock.release()


@pytest.mark.mpspawn_only
def test_semaphore_dropped_by_parent_survives_for_starting_child(spawning_ctx):
    """A semaphore the parent drops right after start() is still there when
    the child (which has not opened it yet) comes to use it."""
    lock = spawning_ctx.Lock()
    name = lock._name
    r, w = spawning_ctx.Pipe(duplex=False)
    p = start(spawning_ctx, targets_sync.sleep_then_use, lock, w, 0.3)
    w.close()
    del lock
    gc.collect()
    assert recv(r) is True
    join_ok(p)
    r.close()
    # Released once the Process object is gone.
    del p
    gc.collect()
    assert support.wait_until(lambda: not os.path.exists('/dev/shm/sem.' + name[1:]))


@pytest.mark.mpspawn_only
def test_parent_exiting_right_after_start_leaves_semaphore_for_child(tmpdir):
    """The parent's exit unlinks its semaphores only after joining its
    children (Python 3 unlinks first: a child still starting then fails)."""
    script = support.write_file(str(tmpdir.join('early_exit.py')), '''
        import sys
        import mpspawn
        import targets_sync

        if __name__ == '__main__':
            ctx = mpspawn.get_context(sys.argv[1])
            lock = ctx.Lock()
            sys.stdout.write(lock._name + '\\n')
            r, w = ctx.Pipe(duplex=False)
            ctx.Process(target=targets_sync.sleep_then_use, args=(lock, w, 0.2)).start()
    ''')
    for method in support.NON_FORK_METHODS:
        result = support.run_python([script, method])
        assert result.returncode == 0 and result.err == '', result
        name = result.out.strip()
        assert not os.path.exists('/dev/shm/sem.' + name[1:])


@pytest.mark.mpspawn_only
def test_semaphore_names_are_short_private_and_unguessable():
    ctx = mpspawn.get_context('spawn')
    names = set()
    for _ in range(20):
        lock = ctx.Lock()
        names.add(lock._name)
        path = '/dev/shm/sem.' + lock._name[1:]
        assert os.stat(path).st_mode & 0o777 == 0o600
        del lock
    assert len(names) == 20
    for name in names:
        assert name.startswith('/mps-') and len(name) == 21 and len(name) <= 31


@pytest.mark.mpspawn_only
def test_fork_context_semaphores_have_no_name():
    before = support.shm_entries()
    locks = [mpspawn.get_context('fork').Lock() for _ in range(3)]
    assert all(lock._name is None for lock in locks)
    assert support.shm_entries() == before


@pytest.mark.mpspawn_only
@pytest.mark.skipif('spawn' not in support.ALL_START_METHODS, reason='no spawn')
def test_stdlib_multiprocessing_objects_refused_clearly(tmpdir):
    """2.7's own multiprocessing objects cannot reach a spawned child: a
    clear error at start() that says what to use instead."""
    script = support.write_file(str(tmpdir.join('foreign.py')), '''
        import multiprocessing
        import mpspawn
        import targets_sync

        def attempt(obj):
            ctx = mpspawn.get_context('spawn')
            p = ctx.Process(target=targets_sync.release, args=(obj,))
            try:
                p.start()
            except TypeError as exc:
                print('%s: TypeError: %s' % (type(obj).__name__, exc))
            else:
                p.join()
                print('%s: started' % type(obj).__name__)

        if __name__ == '__main__':
            for obj in (multiprocessing.Lock(), multiprocessing.RLock(),
                        multiprocessing.Semaphore(), multiprocessing.Condition(),
                        multiprocessing.Event(), multiprocessing.Queue(),
                        multiprocessing.JoinableQueue(),
                        multiprocessing.Value('i', 0)):
                attempt(obj)
            print('done')
    ''')
    result = support.run_python([script], cwd=str(tmpdir))
    assert result.returncode == 0, result
    lines = result.out.splitlines()
    assert lines[-1] == 'done', result
    assert len(lines) == 9, result
    for line in lines[:-1]:
        assert 'TypeError' in line and 'mpspawn' in line and "Python 2.7's own" in line, line
    assert 'args[0]' in lines[0]


# -- Ctrl-C -------------------------------------------------------------------------

BLOCKING_SCRIPT = '''
import signal
import sys
import mpspawn
from mpspawn._compat import monotonic

if __name__ == '__main__':
    ctx = mpspawn.get_context(sys.argv[1])
    what = sys.argv[2]
    if what == 'lock':
        lock = ctx.Lock()
        lock.acquire()
        block = lock.acquire
    elif what == 'rlock':
        rlock = ctx.RLock()
        import threading
        t = threading.Thread(target=rlock.acquire)
        t.start()
        t.join()
        block = rlock.acquire
    elif what == 'semaphore':
        block = ctx.Semaphore(0).acquire
    elif what == 'event':
        block = ctx.Event().wait
    elif what == 'condition':
        cond = ctx.Condition()
        cond.acquire()
        block = cond.wait
    elif what == 'barrier':
        block = ctx.Barrier(2).wait
    sys.stdout.write('blocked\\n')
    sys.stdout.flush()
    try:
        block()
    except KeyboardInterrupt:
        sys.stdout.write('interrupted %r\\n' % monotonic())
    else:
        sys.stdout.write('returned\\n')
    sys.stdout.flush()
'''


@pytest.mark.parametrize('what', ['lock', 'rlock', 'semaphore', 'event', 'condition',
                                  'barrier'])
def test_ctrl_c_interrupts_untimed_waits(start_method, what, tmpdir):
    """SIGINT reaches a main thread blocked without a timeout within 0.5 s."""
    from mpspawn._compat import monotonic
    script = support.write_file(str(tmpdir.join('block.py')), BLOCKING_SCRIPT)
    proc = subprocess.Popen([sys.executable, script, start_method, what],
                            env=support.child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=os.setsid)
    try:
        assert proc.stdout.readline() == b'blocked\n'
        time.sleep(0.3)     # let it reach the blocking call
        sent = monotonic()
        os.kill(proc.pid, signal.SIGINT)
        killer = threading.Timer(20, support.kill_session, (proc.pid,))
        killer.start()
        out, err = proc.communicate()
        killer.cancel()
    finally:
        support.kill_session(proc.pid)
        proc.wait()
    words = out.decode().split()
    assert words[:1] == ['interrupted'], (out, err)
    assert float(words[1]) - sent < 0.5, (out, err)
    assert proc.returncode == 0, err
