"""Child-side functions for the synchronisation, heap and resource-tracker
tests (kept apart from the test modules so a spawned child never imports
pytest)."""
import os
import time

try:
    from threading import BrokenBarrierError
except ImportError:             # Python 2.7: mpspawn provides it
    from mpspawn._compat import BrokenBarrierError

# Every blocking call in a child has a deadline, so a bug fails a test
# instead of leaving a process behind.
DEADLINE = 30


def report(conn, value):
    conn.send(value)
    conn.close()


def try_acquire(lock, timeout, conn):
    """Report whether ``lock`` could be acquired within ``timeout``."""
    got = lock.acquire(True, timeout)
    if got:
        lock.release()
    report(conn, got)


def release(lock):
    lock.release()


def acquire_and_hold(lock, conn, seconds):
    """Take ``lock``, say so, keep it ``seconds``, give it back."""
    assert lock.acquire(True, DEADLINE)
    conn.send('held')
    time.sleep(seconds)
    lock.release()
    conn.close()


def sleep_then_use(lock, conn, seconds):
    """Use ``lock`` only after ``seconds`` (the parent has dropped it by then)."""
    time.sleep(seconds)
    got = lock.acquire(True, DEADLINE)
    lock.release()
    report(conn, got)


def log_critical_section(lock, path, tag, rounds):
    """Append 'enter' and 'leave' lines to ``path`` under ``lock``, with a
    pause between them that another process would fill if the lock failed."""
    for _ in range(rounds):
        with lock:
            _append(path, 'enter %s\n' % tag)
            time.sleep(0.005)
            _append(path, 'leave %s\n' % tag)


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode('ascii'))
    finally:
        os.close(fd)


def count_concurrency(sem, lock, path, tag):
    """Hold ``sem`` for a moment, logging when this holder entered and left."""
    assert sem.acquire(True, DEADLINE)
    try:
        with lock:
            _append(path, '+%s\n' % tag)
        time.sleep(0.05)
        with lock:
            _append(path, '-%s\n' % tag)
    finally:
        sem.release()


def semaphore_hand_back(sem, times):
    for _ in range(times):
        sem.release()


def condition_waiter(cond, sleeping, woken, conn, timeout):
    """Wait on ``cond``; ``sleeping`` is released once this waiter sleeps
    (the lock is only given up inside wait), ``woken`` once it is back."""
    with cond:
        sleeping.release()
        result = cond.wait(timeout)
        woken.release()
    report(conn, result)


def condition_wait_for(cond, state, wanted, conn, timeout):
    """Wait until the value of the semaphore ``state`` reaches ``wanted``."""
    with cond:
        result = cond.wait_for(lambda: state.get_value() == wanted, timeout)
        seen = state.get_value()
    report(conn, (bool(result), seen))


def bump_and_notify(cond, state, times, delay):
    for _ in range(times):
        time.sleep(delay)
        with cond:
            state.release()
            cond.notify_all()


def event_waiter(event, conn, timeout):
    conn.send('waiting')
    result = event.wait(timeout)
    report(conn, (result, event.is_set()))


def event_setter(event, delay):
    time.sleep(delay)
    event.set()


def barrier_waiter(barrier, conn, timeout=DEADLINE):
    """Report ('ok', index) or ('broken', None) from one barrier wait."""
    try:
        index = barrier.wait(timeout)
    except BrokenBarrierError:
        report(conn, ('broken', None))
    else:
        report(conn, ('ok', index))


def barrier_rounds(barrier, rounds, conn):
    """Pass the barrier ``rounds`` times; report the indices seen."""
    indices = []
    try:
        for _ in range(rounds):
            indices.append(barrier.wait(DEADLINE))
    except BrokenBarrierError:
        indices.append('broken')
    report(conn, indices)


def failing_action():
    raise ValueError('the barrier action failed')


def write_bytes(wrapper, data):
    """Write ``data`` at the start of a heap block (BufferWrapper)."""
    view = wrapper.create_memoryview()
    view[:len(data)] = data


def read_bytes(wrapper, size, conn):
    report(conn, wrapper.create_memoryview()[:size].tobytes())


def sleep_then_read(wrapper, size, conn, seconds):
    time.sleep(seconds)
    read_bytes(wrapper, size, conn)
