"""Why a threaded 2.7 program needs spawn: fork copies locks, not threads.

A thread of the parent holds a lock at the moment a child is forked.  The
child gets a copy of the lock, still locked, but not the thread that would
release it: as soon as the child needs the lock it blocks forever.  Real
programs hit this with logging handlers, connection pools, caches, and C
libraries that run their own threads (OpenBLAS, gRPC).

Two cases, each tried with every available start method:

1. a logging handler busy in another thread (its lock is held while it
   writes a record to a slow disk or socket);
2. a lock of your own, held by a thread for a moment.

fork hangs on both under Python 2.7 (Python 3.7+ re-creates logging's locks
in a forked child, but no other lock); spawn and forkserver start a fresh
interpreter and work.  A child that hangs is detected with a timeout and
killed, so this script always finishes.

    python examples/fork_hazard.py
"""
from __future__ import print_function

import logging
import sys
import threading
import time

import mpspawn as multiprocessing

HANG_TIMEOUT = 2.0

log = logging.getLogger('example.app')
log.setLevel(logging.INFO)
log.propagate = False

# A cache shared by the threads of the application.
cache_lock = threading.Lock()
cache = {}


class SlowHandler(logging.Handler):
    """A handler that takes a while to write a record (a slow disk, a
    remote log server).  logging holds the handler's lock meanwhile."""

    def __init__(self, finish):
        logging.Handler.__init__(self)
        self.finish = finish
        self.entered = threading.Event()

    def emit(self, record):
        if getattr(record, 'slow', False):
            self.entered.set()
            self.finish.wait(10)


class SkipSlowRecords(logging.Filter):
    def filter(self, record):
        return not getattr(record, 'slow', False)


console = logging.StreamHandler(sys.stdout)
console.addFilter(SkipSlowRecords())
log.addHandler(console)


def child_logs():
    """The child's work in case 1: log a line."""
    log.info('  child: logged a line')


def child_uses_cache():
    """The child's work in case 2: read the shared cache."""
    with cache_lock:
        cache.get('answer')
    log.info('  child: read the cache')


def try_start(method, target):
    """Start a child with ``method``; report whether it finished."""
    ctx = multiprocessing.get_context(method)
    started = time.time()
    child = ctx.Process(target=target)
    child.start()
    child.join(HANG_TIMEOUT)
    if child.is_alive():
        child.kill()
        child.join()
        return 'HANG: still blocked on the copied lock after %.1f s (killed)' % HANG_TIMEOUT
    if child.exitcode != 0:
        return 'FAILED: exit code %s' % child.exitcode
    return 'ok: finished in %.0f ms' % ((time.time() - started) * 1000)


def case_logging(method):
    finish = threading.Event()
    handler = SlowHandler(finish)
    log.removeHandler(console)     # the slow handler first, then the console
    log.addHandler(handler)
    log.addHandler(console)
    writer = threading.Thread(target=log.warning, args=('a slow record',),
                              kwargs={'extra': {'slow': True}})
    writer.start()
    try:
        handler.entered.wait(5)        # the thread now holds the handler's lock
        return try_start(method, child_logs)
    finally:
        finish.set()
        writer.join()
        log.removeHandler(handler)


def case_own_lock(method):
    holding = threading.Event()
    finish = threading.Event()

    def hold_cache_lock():
        with cache_lock:
            holding.set()
            finish.wait(10)
    holder = threading.Thread(target=hold_cache_lock)
    holder.start()
    try:
        holding.wait(5)
        return try_start(method, child_uses_cache)
    finally:
        finish.set()
        holder.join()


def main():
    methods = multiprocessing.get_all_start_methods()
    results = {}
    for title, case in (('a thread is inside a logging handler', case_logging),
                        ('a thread holds a lock of the application', case_own_lock)):
        print('%s while a child is started:' % title)
        for method in methods:
            outcome = case(method)
            results[(case, method)] = outcome
            print('  %-10s %s' % (method, outcome))
            sys.stdout.flush()
    spawn_ok = all(results[(case, 'spawn')].startswith('ok')
                   for case in (case_logging, case_own_lock))
    print('spawn worked in every case' if spawn_ok else 'spawn FAILED')
    return 0 if spawn_ok else 1


if __name__ == '__main__':
    sys.exit(main())
