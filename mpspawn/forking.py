"""2.7's ``multiprocessing.forking`` names, resolved to mpspawn's
implementation, for code written against Python 2.7's multiprocessing.

``Popen`` starts a child with the default context's start method; the rest
are the pickling and preparation helpers 2.7 exposed here.
"""
import os
import sys

from . import context, reduction, spawn

__all__ = ['Popen', 'assert_spawning', 'exit', 'duplicate', 'close',
           'ForkingPickler']

assert_spawning = context.assert_spawning
ForkingPickler = reduction.ForkingPickler
exit = os._exit
close = os.close
get_preparation_data = spawn.get_preparation_data
prepare = spawn.prepare
freeze_support = spawn.freeze_support
set_executable = spawn.set_executable
is_forking = spawn.is_forking
old_main_modules = []


def duplicate(handle, target_process=None, inheritable=False):
    """A duplicate of the descriptor ``handle``."""
    return os.dup(handle)


class Popen(object):
    """``Popen(process_obj)`` starts the child with the default context's
    start method and returns that method's launcher object."""

    def __new__(cls, process_obj):
        return context._default_context.get_context().Process._Popen(process_obj)

    @staticmethod
    def thread_is_spawning():
        return context.get_spawning_popen() is not None


def main():
    """Run a spawned child from its command line (frozen executables)."""
    spawn.freeze_support()
    sys.exit(0)
