"""Driver: spawn start-up time at a low and at a very high descriptor limit.

Usage: python drive_fd_limit.py ROUNDS PER_BATCH [fork-fallback]

Alternates batches of PER_BATCH spawn start+join cycles at the usual
default soft RLIMIT_NOFILE (1024) and at the highest limit this process may
set (the hard limit; as root the hard limit is first raised to
/proc/sys/fs/nr_open), so that load on the machine affects both alike.
With ``fork-fallback``, mpspawn's fork+exec fallback (which lists
/proc/self/fd) is used instead of posix_spawn with closefrom.  Prints
``RESULT {limits, median_ms}``.
"""
import resource
import sys

import mpspawn
from mpspawn import _compat

import robust_support as rs
import robust_targets as targets

DEFAULT_SOFT = 1024


def raise_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open('/proc/sys/fs/nr_open') as f:
            ceiling = int(f.read())
    except (IOError, OSError, ValueError):
        ceiling = hard
    if hard != resource.RLIM_INFINITY and ceiling > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, ceiling))
        except (ValueError, OSError):
            pass        # not privileged: the hard limit it is
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def timed_batch(ctx, count):
    times = []
    for _ in range(count):
        start = rs.monotonic()
        p = ctx.Process(target=targets.noop)
        p.start()
        p.join()
        times.append(rs.monotonic() - start)
        if p.exitcode != 0:
            raise AssertionError('exit code %r' % p.exitcode)
    return times


def median(values):
    values = sorted(values)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2.0


def main():
    rounds, per_batch = int(sys.argv[1]), int(sys.argv[2])
    if sys.argv[3:] == ['fork-fallback']:
        _compat._posix_spawn = False
    high = raise_hard_limit()
    if high == resource.RLIM_INFINITY:
        high = 1 << 20
    low = min(DEFAULT_SOFT, high)
    ctx = mpspawn.get_context('spawn')
    samples = {low: [], high: []}
    for limit in (low, high):                  # warm-up, not counted
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, high))
        timed_batch(ctx, 2)
    for i in range(rounds):
        for limit in ((low, high) if i % 2 == 0 else (high, low)):
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, high))
            samples[limit].extend(timed_batch(ctx, per_batch))
        rs.progress('round %d/%d' % (i + 1, rounds))
    rs.emit('RESULT', {'launcher': 'fork+exec fallback' if _compat._posix_spawn is False
                       else 'posix_spawn + closefrom',
                       'low': low, 'high': high,
                       'median_ms_low': 1000 * median(samples[low]),
                       'median_ms_high': 1000 * median(samples[high]),
                       'samples': len(samples[low])})


if __name__ == '__main__':
    main()
