"""The spawn start method: a fresh interpreter, started holding only the
descriptors it needs, reads its preparation data and the pickled process
object from a pipe."""
import errno
import os

from . import context, reduction, spawn, util, _compat
from .popen_fork import Popen as _ForkPopen

__all__ = ['Popen']


class _DupFd(object):
    """A descriptor number as the child will see it."""

    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return self.fd


class Popen(_ForkPopen):
    method = 'spawn'
    DupFd = _DupFd

    def __init__(self, process_obj):
        self._fds = []
        super(Popen, self).__init__(process_obj)

    def duplicate_for_child(self, fd):
        """Hand ``fd`` to the child; the number it will have there."""
        self._fds.append(fd)
        return _compat.FIRST_CHILD_FD + len(self._fds) - 1

    def _launch(self, process_obj):
        from . import resource_tracker
        tracker_fd = resource_tracker.getfd()
        prep_data = spawn.get_preparation_data(process_obj._name)
        payload = pickle_for_child(self, prep_data, process_obj)

        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = _compat.pipe()
            child_r, parent_w = _compat.pipe()
            kwds = {'pipe_handle': self.duplicate_for_child(child_r)}
            self.duplicate_for_child(child_w)
            if tracker_fd is not None:
                kwds['tracker_fd'] = self.duplicate_for_child(tracker_fd)
            cmd = spawn.get_command_line(**kwds)
            self.pid = _compat.spawn_with_fds(spawn.get_executable(), cmd, self._fds)
            self.sentinel = parent_r
            # Only the child may hold its ends now: were it to die while
            # starting, our write must fail rather than wait forever.
            util.close_fds(child_r, child_w)
            child_r = child_w = None
            try:
                _write_all(parent_w, payload)
            except OSError as exc:
                # The child died before reading all of it: it did start,
                # and its exit code (e.g. -9) says how it ended.
                if exc.errno != errno.EPIPE:
                    raise
        finally:
            # parent_w stays open while we live: the child's parent_process()
            # watches its read end.
            self.finalizer = util.Finalize(self, util.close_fds,
                                           tuple(fd for fd in (parent_r, parent_w)
                                                 if fd is not None))
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


def pickle_for_child(popen, prep_data, process_obj):
    """Pickle the preparation data and the process object for ``popen``'s
    child; an error names the unpicklable part and is raised here, in the
    parent, before any child exists."""
    buf = _compat.BytesIO()
    context.set_spawning_popen(popen)
    try:
        reduction.dump(prep_data, buf)
        try:
            reduction.dump(process_obj, buf)
        except Exception as exc:
            reduction.explain_pickling_error(exc, _process_parts(process_obj))
    finally:
        context.set_spawning_popen(None)
    payload = buf.getvalue()
    if not spawn.main_is_rebuilt(prep_data):
        _refuse_main_references(payload, prep_data)
    return payload


def _process_parts(process_obj):
    parts = [('target', getattr(process_obj, '_target', None)),
             ('args', getattr(process_obj, '_args', ())),
             ('kwargs', getattr(process_obj, '_kwargs', {}))]
    parts.append(('process object', process_obj))
    return parts


def _refuse_main_references(payload, prep_data):
    """A child that does not re-run __main__ cannot find what was defined in
    it: say so now rather than let the child fail to unpickle."""
    if b'__main__\n' not in payload:
        return
    names = _main_globals(payload)
    if not names:
        return
    if 'init_main_from_name' in prep_data or 'init_main_from_path' in prep_data:
        why = ("the main module is a __main__ module (a package's, a directory's "
               "or a zip file's), which child processes do not run again")
    else:
        why = ("the main module was not run from a file (python -c, standard "
               "input or an interactive session), so a child process cannot "
               "import it")
    raise _compat.pickling_error_class()(
        "Can't pickle %s defined in __main__ for a spawned child: %s. "
        "Define it in an importable module instead." % (
            ', '.join(repr(n) for n in sorted(set(names))), why))


def _main_globals(payload):
    """Names that the pickles in ``payload`` look up in __main__."""
    import pickletools
    names = []
    stream = _compat.BytesIO(payload)
    while stream.tell() < len(payload):
        for opcode, arg, _ in pickletools.genops(stream):
            if opcode.name == 'GLOBAL':
                module, name = arg.split(' ', 1)
                if module in ('__main__', '__mp_main__'):
                    names.append(name)
    return names


def _write_all(fd, data):
    view = memoryview(data)
    while len(view):
        n = _compat.retry_on_eintr(os.write, fd, view)
        view = view[n:]
