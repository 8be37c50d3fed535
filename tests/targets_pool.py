"""Functions that pool and executor workers run in the tests.

A module of their own so that a spawned worker imports only this (not
pytest and the test modules) to find them.
"""
import os
import signal
import sys
import time

import mpspawn

# Set by the initializer in a worker.
initialized_with = None


def square(x):
    return x * x


def add(a, b):
    return a + b


def identity(x):
    return x


def pid_of_worker(_=None):
    return os.getpid()


def name_of_worker(_=None):
    return mpspawn.current_process().name


def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


def raise_value_error(message):
    raise ValueError(message)


def fail_on(x, bad):
    if x == bad:
        raise ValueError('bad item %r' % (x,))
    return x * x


def record_init(*args):
    global initialized_with
    initialized_with = args


def read_init(_=None):
    return initialized_with


def init_appends_then_fails(path):
    """Leave a trace of each attempt, then fail (the pool must give up)."""
    with open(path, 'a') as f:
        f.write('x')
    raise ValueError('initializer failed on purpose')


def init_fails():
    raise ValueError('initializer failed on purpose')


def return_unpicklable(_=None):
    return lambda: None


class ExceptionThatCannotBeUnpickled(Exception):
    def __init__(self, a, b):
        Exception.__init__(self, '%s-%s' % (a, b))


def raise_unloadable(_=None):
    raise ExceptionThatCannotBeUnpickled(1, 2)


def kill_self(signum=signal.SIGKILL):
    os.kill(os.getpid(), signum)
    time.sleep(30)


def os_exit(code):
    sys.stdout.flush()
    os._exit(code)


def sys_exit(code):
    sys.exit(code)


def write_pid_then_sleep(path, seconds):
    """Announce this worker's pid through ``path``, then sleep."""
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(str(os.getpid()))
    os.rename(tmp, path)
    time.sleep(seconds)
    return os.getpid()


def wait_for_file(path, timeout=30):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RuntimeError('%s never appeared' % path)
        time.sleep(0.01)
    return True


def nested_pool_map(n):
    """An executor worker may have children of its own (it is not daemonic)."""
    ctx = mpspawn.get_context('fork')
    p = ctx.Process(target=os.getpid)
    p.start()
    p.join()
    return p.exitcode + n


def try_pool_in_forked_child(pool, conn):
    try:
        pool.apply(square, (1,))
        conn.send('no error')
    except RuntimeError as exc:
        conn.send('RuntimeError: %s' % exc)
    conn.close()


def ignore_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def close_fds_and_sleep(seconds):
    """Close every descriptor above stderr (the pool's pipes and sentinel
    among them), then stay alive."""
    os.closerange(3, 4096)
    time.sleep(seconds)


def write_file_after(path, seconds):
    time.sleep(seconds)
    with open(path, 'w') as f:
        f.write('done')
    return path
