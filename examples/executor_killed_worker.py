"""ProcessPoolExecutor when a worker process is killed.

A worker that dies abruptly (the OOM killer, SIGKILL, a crash in a C
extension, ``os._exit``) takes its task with it.  The executor notices at
once, fails every pending future with ``BrokenProcessPool`` (the message
names the worker and its exit code) and refuses new work; the program
handles the error and carries on with a new executor.  Nothing hangs.

On 2.7 this needs the ``futures`` backport (``pip install mpspawn[futures]``);
on Python 3 ``mpspawn.futures`` is ``concurrent.futures``.

    python examples/executor_killed_worker.py            # spawn
    python examples/executor_killed_worker.py forkserver
"""
from __future__ import print_function

import os
import signal
import sys

import mpspawn as multiprocessing
import mpspawn.futures as futures

# BrokenProcessPool (mpspawn.futures.process; concurrent.futures.process on
# Python 3) derives from BrokenExecutor, which both packages export.
BrokenExecutor = futures.BrokenExecutor


def double(x):
    return 2 * x


def crash():
    """Simulate the OOM killer: the worker dies without a word."""
    os.kill(os.getpid(), signal.SIGKILL)


def main(method):
    ctx = multiprocessing.get_context(method)
    with futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as executor:
        print('results:', list(executor.map(double, range(5))))
        doomed = executor.submit(crash)
        try:
            doomed.result(timeout=60)
        except BrokenExecutor as exc:
            print('the task failed with %s: %s' % (type(exc).__name__, exc))
        try:
            executor.submit(double, 1)
        except BrokenExecutor as exc:
            print('the broken executor refuses new work (%s)' % type(exc).__name__)
        else:
            print('UNEXPECTED: the broken executor accepted new work')
            return 1
    with futures.ProcessPoolExecutor(max_workers=2, mp_context=ctx) as executor:
        print('a new executor works:', executor.submit(double, 21).result(timeout=60))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'spawn'))
