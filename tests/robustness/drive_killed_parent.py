"""Driver: a parent with every kind of helper, waiting to be SIGKILLed.

Usage: python drive_killed_parent.py METHOD WITH_CHILDREN MARKER_DIR

The parent starts the resource tracker (a Lock, a Queue, a shared-memory
block it never unlinks), the fork server (forkserver), a Manager's server,
a Pool of two (one worker busy with a 60 s task), and with WITH_CHILDREN=1
two ordinary children (one daemonic) that outlive it and report through a
file in MARKER_DIR.  It prints ``READY {pids}`` and sleeps; the test kills
it and watches what remains.
"""
import os
import sys
import time

import mpspawn
from mpspawn import resource_tracker, shared_memory

import robust_support as rs
import robust_targets as targets


def main():
    method, with_children, marker_dir = sys.argv[1], sys.argv[2] == '1', sys.argv[3]
    ctx = mpspawn.get_context(method)
    lock, q = ctx.Lock(), ctx.Queue()
    block = shared_memory.SharedMemory(create=True, size=8192)
    value = ctx.Value('i', 7)
    manager = ctx.Manager()
    shared = manager.dict(a=1)
    pool = ctx.Pool(2)
    busy = pool.apply_async(targets.sleep, (60,))
    pool.apply(targets.square, (3,))
    children = []
    if with_children:
        for daemon in (False, True):
            path = os.path.join(marker_dir, 'child-daemon-%s.json' % daemon)
            p = ctx.Process(target=targets.outlive_parent, args=(lock, q, path), daemon=daemon)
            p.start()
            children.append(p)
    helpers = {'resource tracker': [resource_tracker._resource_tracker._pid],
               'manager server': [manager._process.pid],
               'pool worker': [w.pid for w in pool._pool]}
    if method == 'forkserver':
        from mpspawn import forkserver
        helpers['fork server'] = [forkserver._forkserver._forkserver_pid]
    time.sleep(0.3)     # the busy worker is inside its task
    rs.emit('READY', {'parent': os.getpid(), 'helpers': helpers,
                      'children': [p.pid for p in children],
                      'shm': sorted(rs.shm_entries())})
    time.sleep(120)
    del block, value, shared, busy


if __name__ == '__main__':
    main()
