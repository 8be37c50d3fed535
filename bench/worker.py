"""Benchmark worker: runs ONE measurement group for ONE system and prints
its samples as JSON.

    python worker.py '{"group": "start_join", "impl": "mpspawn",
                       "method": "spawn", "repo": "/path/to/repo",
                       "params": {"samples": 20}}'

``impl`` is ``mpspawn`` (the package in ``repo``, on 2.7), ``stdlib`` (the
interpreter's own multiprocessing) or ``floor`` (no multiprocessing: the
interpreter's own costs).  The last line of output is

    BENCH-RESULT {"rows": {"start_join_imported": [0.021, ...], ...}}

or ``{"na": "reason"}`` when the system lacks the feature (a module that
does not exist yet, a start method that is not available), or
``{"error": "..."}`` when the measurement failed.  The measurements are in
measures.py.

This file is the *main script* of the worker process, so every spawned
child runs it again as ``__mp_main__`` (and compiles it: Python keeps no
bytecode for a main script).  It is kept this small so that start-up
figures measure the start method, not the size of the benchmark's own
script.
"""
import sys


def noop_in_main():
    """A target defined in the main script, for start_join_main."""


def main():
    import json
    import measures
    result = measures.run(json.loads(sys.argv[1]))
    sys.stdout.flush()
    sys.stdout.write('BENCH-RESULT %s\n' % json.dumps(result))
    sys.stdout.flush()


if __name__ == '__main__':
    main()
