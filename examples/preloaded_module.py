"""A module that is expensive to import, for examples/forkserver_preload.py.

Importing it takes a while (think of a large application package, numpy or
a template cache).  It records which process imported it.
"""
import os
import time

IMPORTED_BY_PID = os.getpid()
IMPORT_SECONDS = 0.5

time.sleep(IMPORT_SECONDS)       # the expensive part


def lookup(key):
    return '%s -> %s' % (key, key.upper())
