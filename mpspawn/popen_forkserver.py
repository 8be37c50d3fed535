"""The forkserver start method: the fork server forks the child, which then
reads its preparation data and the pickled process object from a pipe, as a
spawned child does.

Descriptors the pickle refers to travel through the server
(``duplicate_for_child`` returns an index into the list the child receives).
The child's pid and, later, its exit code arrive on the status pipe, which
is also the sentinel.
"""
import errno
import os

from . import forkserver, popen_fork, spawn, util, _compat
from .popen_spawn_posix import pickle_for_child

__all__ = ['Popen']


class _DupFd(object):
    """A descriptor the child receives from the fork server, by position."""

    def __init__(self, ind):
        self.ind = ind

    def detach(self):
        return forkserver.get_inherited_fds()[self.ind]


class Popen(popen_fork.Popen):
    method = 'forkserver'
    DupFd = _DupFd

    def __init__(self, process_obj):
        self._fds = []
        super(Popen, self).__init__(process_obj)

    def duplicate_for_child(self, fd):
        """Send ``fd`` to the child; its position in what the child receives."""
        self._fds.append(fd)
        return len(self._fds) - 1

    def _launch(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name)
        payload = pickle_for_child(self, prep_data, process_obj)
        self.sentinel, data_w = forkserver.connect_to_new_process(self._fds)
        # data_w stays open while we live: the child's parent_process()
        # watches the other end.
        self.finalizer = util.Finalize(self, util.close_fds, (self.sentinel, data_w))
        try:
            forkserver._write_all(data_w, payload)
        except OSError as exc:
            # The child is gone already, or was never forked: the status
            # pipe tells which.
            if exc.errno != errno.EPIPE:
                raise
        try:
            self.pid = forkserver.read_signed(self.sentinel)
        except EOFError:
            self.close()
            raise RuntimeError('the fork server did not start the process '
                               '(its error output, if any, is above)')

    def poll(self, flag=os.WNOHANG):
        if self.returncode is None:
            if not _compat.wait_fds([self.sentinel], 0 if flag == os.WNOHANG else None):
                return None
            try:
                self.returncode = forkserver.read_signed(self.sentinel)
            except (OSError, EOFError):
                # The fork server itself was killed: the exit code is lost.
                self.returncode = 255
        return self.returncode
