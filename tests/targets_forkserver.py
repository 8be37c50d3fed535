"""What forkserver children run in tests/test_forkserver.py (kept apart so a
child imports only this module, not pytest)."""
import os
import sys

import mpspawn


def report_lineage(conn):
    """Send (pid, os.getppid(), parent_process().pid, inherited fds, the
    resource tracker pipe this child writes to)."""
    from mpspawn import forkserver, resource_tracker
    st = os.fstat(resource_tracker._resource_tracker._fd)
    conn.send((os.getpid(), os.getppid(), mpspawn.parent_process().pid,
               forkserver.get_inherited_fds() is not None, (st.st_dev, st.st_ino)))
    conn.close()


def ready_then_sleep(conn, seconds):
    import time
    conn.send('ready')
    conn.close()
    time.sleep(seconds)


def outlive_parent(conn, seconds):
    """Report our pid, wait for the parent to die, then live on a while."""
    import time
    conn.send(os.getpid())
    conn.close()
    mpspawn.parent_process().join(60)
    time.sleep(seconds)


def describe_fds(conn, *others):
    """Send {fd: what it refers to} for every descriptor of the child, and
    the close-on-exec flag of ``conn``'s and each other connection's."""
    import fcntl
    fds = {}
    for name in os.listdir('/proc/self/fd'):
        fd = int(name)
        try:
            st = os.fstat(fd)
            target = os.readlink('/proc/self/fd/' + name)
        except OSError:
            continue
        fds[fd] = (target, st.st_dev, st.st_ino)
    cloexec = [bool(fcntl.fcntl(c.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
               for c in (conn,) + others]
    conn.send((fds, cloexec))
    conn.close()


def write_index_to_each(conns):
    """Each connection of ``conns`` gets its own index."""
    for i, c in enumerate(conns):
        c.send(i)
        c.close()


def start_grandchild(conn, method):
    """Start a child of ``method`` from this child; report its exit code and
    which fork server this process used."""
    from mpspawn import forkserver
    ctx = mpspawn.get_context(method)
    p = ctx.Process(target=sys.exit, args=(5,))
    p.start()
    p.join()
    conn.send((p.exitcode, forkserver._forkserver._forkserver_pid, os.getpid()))
    conn.close()


def random_numbers(conn):
    import random
    conn.send(random.random())
    conn.close()


def wait_for_parent(conn):
    """Report our pid, then wait for the parent to die (at most a minute)."""
    conn.send(os.getpid())
    conn.close()
    mpspawn.parent_process().join(60)


def print_and_exit(text):
    sys.stdout.write(text)
