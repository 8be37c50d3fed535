"""Driver: repeat a cycle many times and sample what the parent holds.

Usage: python drive_soak.py WHAT COUNT
WHAT: spawn_cycles, forkserver_cycles, pool_cycles, lock_cycles,
      concurrent_children (COUNT rounds of 64 children alive at once).

Ten times along the way (and before the first cycle) it prints
``CHECKPOINT {cycle, fds, threads, shm, rss_kib, seconds}``: open
descriptors, threads, our /dev/shm entries and the resident set size of the
parent, and the time since the start.
"""
import gc
import sys

import mpspawn

import robust_support as rs
import robust_targets as targets

CONCURRENT = 64


def spawn_cycle(ctx):
    p = ctx.Process(target=targets.noop)
    p.start()
    p.join()
    if p.exitcode != 0:
        raise AssertionError('child exit code %r' % p.exitcode)


def pool_cycle(ctx):
    pool = ctx.Pool(2)
    if pool.map(targets.square, range(8)) != [x * x for x in range(8)]:
        raise AssertionError('wrong map result')
    pool.close()
    pool.join()


def lock_cycle(ctx):
    lock = ctx.Lock()
    lock.acquire()
    lock.release()


def concurrent_round(ctx):
    ready, results = ctx.Queue(), ctx.Queue()
    event = ctx.Event()
    children = [ctx.Process(target=targets.wait_for_event, args=(ready, event, results))
                for _ in range(CONCURRENT)]
    for p in children:
        p.start()
    started = set(ready.get(timeout=120) for _ in children)
    event.set()
    finished = set(results.get(timeout=120) for _ in children)
    for p in children:
        p.join(60)
    codes = [p.exitcode for p in children]
    if started != finished or len(started) != CONCURRENT or set(codes) != set([0]):
        raise AssertionError('%d started, %d finished, exit codes %r'
                             % (len(started), len(finished), sorted(set(codes))))


CYCLES = {
    'spawn_cycles': ('spawn', spawn_cycle),
    'forkserver_cycles': ('forkserver', spawn_cycle),
    'pool_cycles': ('spawn', pool_cycle),
    'lock_cycles': ('spawn', lock_cycle),
    'concurrent_children': ('spawn', concurrent_round),
}


def sample(cycle, start, threads_at_start=1):
    gc.collect()
    # A thread that Python has joined may still be leaving the kernel.
    deadline = rs.monotonic() + 1.0
    threads = rs.thread_count()
    while threads > threads_at_start and rs.monotonic() < deadline:
        rs.time.sleep(0.01)
        threads = rs.thread_count()
    rs.emit('CHECKPOINT', {'cycle': cycle, 'fds': rs.open_fd_count(),
                           'threads': threads, 'shm': len(rs.shm_entries()),
                           'rss_kib': rs.rss_kib(), 'seconds': round(rs.monotonic() - start, 3)})


def main():
    what, count = sys.argv[1], int(sys.argv[2])
    method, cycle = CYCLES[what]
    ctx = mpspawn.get_context(method)
    start = rs.monotonic()
    threads_at_start = rs.thread_count()
    sample(0, start, threads_at_start)
    step = max(1, count // 10)
    for i in range(1, count + 1):
        cycle(ctx)
        if i % step == 0 or i == count:
            sample(i, start, threads_at_start)
            rs.progress('%s: %d/%d cycles' % (what, i, count))


if __name__ == '__main__':
    main()
