"""The forkserver start method with a preloaded module.

The fork server is a clean process started once, from a single thread.  Each
child is forked from it, so children start fast (no new interpreter) and
inherit no lock held by a thread of the parent.  Modules named in
``set_forkserver_preload`` are imported once, in the server, before the
first child: every child then has them already.

This script preloads ``preloaded_module`` (half a second to import) and
starts four children, which report where the module was imported.

    python examples/forkserver_preload.py

On Python 3.11 (where mpspawn is the standard library) the fork server does
not apply the parent's ``sys.path`` before preloading and ignores the
ImportError, so a module found only through the script's directory is not
preloaded there: put that directory on ``PYTHONPATH``.  mpspawn applies the
parent's ``sys.path``, ``sys.argv`` and working directory first, and reports
a module that fails to preload with a RuntimeWarning.
"""
from __future__ import print_function

import os
import sys
import time

import mpspawn as multiprocessing


def report(results):
    already = 'preloaded_module' in sys.modules
    import preloaded_module
    results.put((os.getpid(), already, preloaded_module.IMPORTED_BY_PID,
                 preloaded_module.lookup('key')))


def main():
    if 'forkserver' not in multiprocessing.get_all_start_methods():
        print('the forkserver start method is not available here')
        return 1
    ctx = multiprocessing.get_context('forkserver')
    ctx.set_forkserver_preload(['preloaded_module'])
    results = ctx.SimpleQueue()
    started = time.time()
    children = [ctx.Process(target=report, args=(results,)) for _ in range(4)]
    for child in children:
        child.start()
    answers = [results.get() for _ in children]
    for child in children:
        child.join()
    elapsed = time.time() - started
    importers = set(importer for _, _, importer, _ in answers)
    for pid, already, importer, value in sorted(answers):
        print('child %d: module already imported: %s; imported by pid %d; %s'
              % (pid, already, importer, value))
    print('4 children started and joined in %.2f s (including the server start)' % elapsed)
    if len(importers) == 1 and os.getpid() not in importers and \
            all(already for _, already, _, _ in answers):
        print('the module was imported once, in the fork server (pid %d)' % importers.pop())
        return 0
    print('UNEXPECTED: the module was imported by %s' % sorted(importers))
    return 1


if __name__ == '__main__':
    sys.exit(main())
