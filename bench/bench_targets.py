"""Functions that the benchmark's child processes run.

They live in their own importable module (not in the worker script) so
that "target in an imported module" costs only this import in a spawned
child.  The module is import-light on purpose: a spawned child imports it
while starting, and anything imported here would be counted as start-up
cost.  Cross-process time stamps use time.time(), a clock every process
on the machine shares.
"""
import os
import time


def noop():
    """Do nothing: start+join measures the cost of the process itself."""


def stamp(path):
    """Record the moment the target began, for 'time to first instruction'."""
    now = time.time()
    with open(path, 'w') as f:
        f.write(repr(now))


def double(x):
    """A trivial Pool.map item."""
    return x + x


def idle(ready_path, seconds=60.0):
    """Say "ready" through a file, then sleep until terminated."""
    with open(ready_path, 'w') as f:
        f.write('ready')
    time.sleep(seconds)


def consume(q_in, q_out):
    """Queue reader: after 'ready', count items (or payload bytes) until None."""
    q_out.put('ready')
    count = 0
    size = 0
    while True:
        item = q_in.get()
        if item is None:
            break
        count += 1
        if isinstance(item, bytes):
            size += len(item)
    q_out.put((count, size))


def echo(conn, cpus):
    """Pipe round trips: pinned to ``cpus``, send back whatever arrives
    until None."""
    if cpus is not None:
        set_affinity(cpus)
    conn.send('ready')
    while True:
        msg = conn.recv()
        if msg is None:
            break
        conn.send(msg)
    conn.close()


def increment(value, count, path):
    """Increment a shared Value under its lock; write (start, end) stamps."""
    lock = value.get_lock()
    start = time.time()
    for _ in range(count):
        with lock:
            value.value += 1
    end = time.time()
    with open(path, 'w') as f:
        f.write('%r %r' % (start, end))


# -- CPU affinity: os.sched_*affinity on Python 3, libc through ctypes on 2.7 --

_MASK_WORDS = 16  # room for 1024 CPUs


def _libc_mask():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    mask_type = ctypes.c_ulong * _MASK_WORDS
    return ctypes, libc, mask_type


def get_affinity():
    """The set of CPUs this process may run on, or None if unknown."""
    if hasattr(os, 'sched_getaffinity'):
        return set(os.sched_getaffinity(0))
    try:
        ctypes, libc, mask_type = _libc_mask()
        mask = mask_type()
        if libc.sched_getaffinity(0, ctypes.sizeof(mask), ctypes.byref(mask)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    return set(i for i in range(_MASK_WORDS * bits)
               if mask[i // bits] >> (i % bits) & 1)


def set_affinity(cpus):
    """Pin this process to the CPUs in ``cpus``."""
    cpus = sorted(cpus)
    if hasattr(os, 'sched_setaffinity'):
        os.sched_setaffinity(0, cpus)
        return
    ctypes, libc, mask_type = _libc_mask()
    bits = ctypes.sizeof(ctypes.c_ulong) * 8
    mask = mask_type()
    for cpu in cpus:
        mask[cpu // bits] |= 1 << (cpu % bits)
    if libc.sched_setaffinity(0, ctypes.sizeof(mask), ctypes.byref(mask)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
