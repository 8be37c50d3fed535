"""Run the test suite: ``python tests/runtests.py [pytest arguments]``.

Spawned children re-run the parent's main module (as ``__mp_main__``).  Under
the ``pytest`` script, or ``python -m pytest`` on 2.7 (where pytest is a
plain module), that means importing pytest and its plugins again in every
spawned child, about 0.3-0.5 s each.  This launcher is the main module
instead: its top level does nothing, so children start as fast as a user's
would.
"""
import signal
import sys

if __name__ == '__main__':
    # A shell that starts a command in the background without job control
    # (CI scripts, `cmd &`) hands it SIGINT ignored, and every interpreter
    # below would keep it ignored.  The Ctrl-C tests act as a terminal does,
    # on programs started the usual way: give the tree Python's default.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
