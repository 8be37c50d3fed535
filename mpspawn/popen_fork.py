"""The fork start method: the child is a copy of the parent made by fork().

Also the base of the other launchers: poll/wait/terminate/kill/close of a
child known by its pid and a sentinel descriptor that reaches end-of-file
when the child exits.
"""
import errno
import os
import signal

from . import util, _compat

__all__ = ['Popen']


class Popen(object):
    method = 'fork'

    def __init__(self, process_obj):
        util._flush_std_streams()
        self.returncode = None
        self.finalizer = None
        self._launch(process_obj)

    def duplicate_for_child(self, fd):
        return fd

    def poll(self, flag=os.WNOHANG):
        """The exit code if the child has ended, else None (without blocking
        unless ``flag`` is 0)."""
        if self.returncode is None:
            try:
                pid, status = _compat.waitpid(self.pid, flag)
            except OSError:
                # Reaped elsewhere (e.g. SIGCHLD set to SIG_IGN): unknown status.
                return None
            if pid == self.pid:
                self.returncode = _status_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            if timeout is not None:
                if not _compat.wait_fds([self.sentinel], timeout):
                    return None
            # Blocking waitpid returns EINTR on a signal; the retry loop lets
            # Python run the handler, so Ctrl-C interrupts a join() at once.
            return self.poll(os.WNOHANG if timeout == 0.0 else 0)
        return self.returncode

    def _send_signal(self, sig):
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
                if self.wait(timeout=0.1) is None:
                    raise

    def terminate(self):
        self._send_signal(signal.SIGTERM)

    def kill(self):
        self._send_signal(signal.SIGKILL)

    def _launch(self, process_obj):
        code = 1
        parent_r, child_w = _compat.pipe()
        child_r, parent_w = _compat.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(parent_r)
                os.close(parent_w)
                _compat.reseed_random_after_fork()
                code = process_obj._bootstrap(parent_sentinel=child_r)
            finally:
                os._exit(code)
        else:
            os.close(child_w)
            os.close(child_r)
            self.finalizer = util.Finalize(self, util.close_fds, (parent_r, parent_w))
            self.sentinel = parent_r

    def close(self):
        if self.finalizer is not None:
            self.finalizer()


def _status_to_exitcode(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return status
