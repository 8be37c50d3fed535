"""Functions and classes that child processes run in the tests.

They live in a small module of their own so that a spawned child imports
only this (not pytest and the test modules) to find them.
"""
import functools
import os
import signal
import sys
import time

import mpspawn


def noop(*args, **kwargs):
    pass


def exit_with(code):
    sys.exit(code)


def os_exit(code):
    os._exit(code)


def raise_error(message):
    raise ValueError(message)


def kill_self(signum):
    os.kill(os.getpid(), signum)
    time.sleep(10)


def sleep(seconds):
    time.sleep(seconds)


def send_back(conn, *args, **kwargs):
    """Send (args, kwargs) back through ``conn``."""
    conn.send((args, kwargs))
    conn.close()


def report_process(conn):
    """Send what the child knows about itself and its parent."""
    me = mpspawn.current_process()
    parent = mpspawn.parent_process()
    conn.send({
        'name': me.name,
        'pid': os.getpid(),
        'ident': me.ident,
        'daemon': me.daemon,
        'authkey': bytes(me.authkey),
        'parent_pid': parent.pid if parent is not None else None,
        'parent_name': parent.name if parent is not None else None,
        'parent_alive': parent.is_alive() if parent is not None else None,
        'start_method': mpspawn.get_start_method(),
        'sys_path': list(sys.path),
        'cwd': os.getcwd(),
        'argv': list(sys.argv),
        'optimize': sys.flags.optimize,
        'dont_write_bytecode': sys.flags.dont_write_bytecode,
        'log_level': mpspawn.get_logger().getEffectiveLevel(),
    })
    conn.close()


def watch_parent(conn, timeout):
    """Report whether the parent dies within ``timeout`` (parent_process().join)."""
    parent = mpspawn.parent_process()
    conn.send('ready')
    start = time.time()
    parent.join(timeout)
    conn.send((parent.is_alive(), time.time() - start))


def list_fds(conn):
    """Send {fd: (st_dev, st_ino)} of every descriptor the child holds."""
    result = {}
    for name in os.listdir('/proc/self/fd'):
        fd = int(name)
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        result[fd] = (st.st_dev, st.st_ino)
    conn.send(result)
    conn.close()


def echo_server(conn):
    """Echo messages back until None arrives."""
    while True:
        msg = conn.recv()
        if msg is None:
            break
        conn.send(msg)
    conn.close()


def send_bytes_back(conn, data):
    conn.send_bytes(data)
    conn.close()


class Worker(object):
    def __init__(self, value):
        self.value = value

    def method(self, conn, extra):
        conn.send(('method', self.value, extra))
        conn.close()

    @classmethod
    def class_method(cls, conn, extra):
        conn.send(('classmethod', cls.__name__, extra))
        conn.close()

    @staticmethod
    def static_method(conn, extra):
        conn.send(('staticmethod', extra))
        conn.close()


def add(a, b):
    return a + b


def call_and_send(conn, func, *args):
    conn.send(func(*args))
    conn.close()


PARTIAL_ADD = functools.partial(add, 10)


def apply_bound(bound):
    """Call a (partial of a) bound method received as an argument."""
    r, w = mpspawn.Pipe(duplex=False)
    bound(w, 'inner')
    w.close()
    result = r.recv()
    r.close()
    assert result == ('method', 'b', 'inner')
    return 'applied'


class DoublerMixin(object):
    """Mixed into each context's Process class: overrides run()."""

    def __init__(self, conn, value):
        super(DoublerMixin, self).__init__()
        self.conn = conn
        self.value = value

    def run(self):
        self.conn.send(('run', self.value * 2, type(self).__name__))
        self.conn.close()


def _define_doublers():
    for method in mpspawn.get_all_start_methods():
        base = mpspawn.get_context(method).Process
        cls = type('Doubler_' + method, (DoublerMixin, base), {'__module__': __name__})
        globals()[cls.__name__] = cls


_define_doublers()


def doubler_for(ctx):
    return globals()['Doubler_' + ctx.get_start_method()]


def ignore_sigterm_then_sleep(conn):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn.send('ready')
    time.sleep(30)


def try_start_grandchild(conn):
    """Report what happens when this (daemonic) child starts a child."""
    try:
        p = mpspawn.Process(target=noop)
        p.start()
        p.join()
        conn.send('started')
    except AssertionError as exc:
        conn.send('refused: %s' % exc)
    conn.close()
