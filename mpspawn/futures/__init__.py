"""concurrent.futures for Python 2.7, with Python 3's ProcessPoolExecutor.

    import mpspawn.futures as futures    # concurrent.futures on Python 3

Future, Executor, wait, as_completed, ThreadPoolExecutor and the exceptions
come from the ``futures`` backport (``pip install mpspawn[futures]``).
ProcessPoolExecutor is mpspawn's: it takes ``mp_context``, ``initializer``,
``initargs`` and ``max_tasks_per_child`` as in Python 3, runs on mpspawn's
start methods, and a worker that dies makes it broken (BrokenProcessPool,
naming the worker's exit code) instead of hanging.

On Python 3 ``mpspawn.futures`` is ``concurrent.futures`` itself and this
package is never imported.
"""
from __future__ import absolute_import

import sys

try:
    import concurrent.futures as _backport
    from concurrent.futures import _base
except ImportError as _error:
    raise ImportError(
        "mpspawn.futures needs the 'futures' backport of concurrent.futures on "
        "Python 2.7: pip install mpspawn[futures] (%s)" % (_error,))

from concurrent.futures import (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED,
                                CancelledError, TimeoutError, Future, Executor,
                                wait, as_completed, ThreadPoolExecutor)
from concurrent.futures import thread

from .process import ProcessPoolExecutor, BrokenExecutor

# ``import mpspawn.futures.thread`` is the backport's module, as on Python 3.
sys.modules[__name__ + '.thread'] = thread

try:
    InvalidStateError = _base.InvalidStateError
except AttributeError:
    class InvalidStateError(_base.Error):
        """The operation is not allowed in this state (Python 3.8's name; the
        backport's Future never raises it)."""

__all__ = ['FIRST_COMPLETED', 'FIRST_EXCEPTION', 'ALL_COMPLETED', 'CancelledError',
           'TimeoutError', 'BrokenExecutor', 'InvalidStateError', 'Future',
           'Executor', 'wait', 'as_completed', 'ProcessPoolExecutor',
           'ThreadPoolExecutor']

del _backport
