"""mpspawn: Python 3's multiprocessing, with the spawn and forkserver start
methods, for Python 2.7.

    import mpspawn as multiprocessing
    multiprocessing.set_start_method('spawn')

On Python 2.7 the package is a complete implementation of Python 3's
multiprocessing API.  On Python 3 it *is* the standard library:
``mpspawn.X is multiprocessing.X`` for every public name and submodule, so
code keeps working after migration.
"""
import sys

from . import _compat

__version__ = '0.1.0'

if _compat.PY2:
    from . import context

    # The module-level API is the default context's methods, as in Python 3.
    __all__ = [name for name in dir(context._default_context)
               if not name.startswith('_')]
    globals().update((name, getattr(context._default_context, name))
                     for name in __all__)
    SUBDEBUG = 5
    SUBWARNING = 25
    __all__ += ['SUBDEBUG', 'SUBWARNING']

    # Pickles made by a spawned child name its main module __mp_main__.
    if '__main__' in sys.modules:
        sys.modules['__mp_main__'] = sys.modules['__main__']
else:
    _compat.become_stdlib(globals(), __name__)
