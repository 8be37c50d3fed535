"""spawn on Windows, over 2.7's own Windows machinery.

Python 2.7 already spawns on Windows (``multiprocessing.forking.Popen``
runs a fresh interpreter and pickles the process object to it).  This thin
adapter gives that launcher the interface mpspawn's Process expects, so
``import mpspawn`` works there with ``spawn`` as the only start method.
It is not tested by this project's CI (which runs on Linux); objects that
need descriptor passing or named semaphores are POSIX-only.
"""
from . import context

__all__ = ['Popen']


class Popen(object):
    method = 'spawn'

    def __init__(self, process_obj):
        from multiprocessing import forking
        # Our objects (the authkey among them) pickle only while spawning.
        context.set_spawning_popen(self)
        try:
            self._popen = forking.Popen(process_obj)
        finally:
            context.set_spawning_popen(None)
        self.pid = self._popen.pid
        self.sentinel = int(self._popen._handle)
        self.returncode = None

    def duplicate_for_child(self, handle):
        raise NotImplementedError('passing handles to a child is not supported '
                                  'by mpspawn on Windows')

    def poll(self, flag=None):
        self.returncode = self._popen.poll()
        return self.returncode

    def wait(self, timeout=None):
        self.returncode = self._popen.wait(timeout)
        return self.returncode

    def terminate(self):
        self._popen.terminate()

    kill = terminate

    def close(self):
        pass
