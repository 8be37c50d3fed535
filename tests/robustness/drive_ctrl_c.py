"""Driver: block the main thread in a call that waits for a long time, and
report when Ctrl-C (SIGINT) turns into KeyboardInterrupt.

Usage: python drive_ctrl_c.py METHOD WHAT
WHAT: pool_map, queue_get, join, manager_call.

Prints ``BLOCKED`` just before the call and ``INTERRUPTED {at}`` (the
monotonic clock, which the test shares) when KeyboardInterrupt arrives; then
lets the exception end the script as a user's program would, through the
library's exit handling.
"""
import sys

import mpspawn

import robust_support as rs
import robust_targets as targets


def main():
    method, what = sys.argv[1], sys.argv[2]
    ctx = mpspawn.get_context(method)
    if what == 'pool_map':
        with ctx.Pool(2) as pool:
            pool.map(targets.square, range(4))      # the workers are up
            _block(pool.map, targets.sleep, [30] * 4)
    elif what == 'queue_get':
        q = ctx.Queue()
        _block(q.get)
    elif what == 'join':
        p = ctx.Process(target=targets.sleep, args=(4,))
        p.start()
        _block(p.join)
    elif what == 'manager_call':
        with ctx.Manager() as manager:
            q = manager.Queue()
            _block(q.get)


def _block(func, *args):
    rs.emit('BLOCKED', {'at': rs.monotonic()})
    try:
        func(*args)
    except KeyboardInterrupt:
        rs.emit('INTERRUPTED', {'at': rs.monotonic()})
        raise
    rs.emit('RETURNED', {'at': rs.monotonic()})


if __name__ == '__main__':
    main()
