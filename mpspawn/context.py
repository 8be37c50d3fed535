"""Contexts: the fork, spawn and forkserver start methods and the default one.

Every object is made through a context (``ctx.Lock()`` passes ``ctx=self``),
so objects of different start methods can live in one program.  The package's
module-level functions are the methods of ``_default_context``.
"""
import os
import sys

from . import process
from . import _compat

__all__ = []


class ProcessError(Exception):
    pass


class BufferTooShort(ProcessError):
    pass


class TimeoutError(ProcessError):
    pass


class AuthenticationError(ProcessError):
    pass


class BaseContext(object):
    """The multiprocessing API, bound to one start method."""

    ProcessError = ProcessError
    BufferTooShort = BufferTooShort
    TimeoutError = TimeoutError
    AuthenticationError = AuthenticationError

    current_process = staticmethod(process.current_process)
    parent_process = staticmethod(process.parent_process)
    active_children = staticmethod(process.active_children)

    def cpu_count(self):
        """The number of CPUs in the system."""
        try:
            count = os.sysconf('SC_NPROCESSORS_ONLN')
        except (AttributeError, ValueError, OSError):
            count = None
        if not count or count < 1:
            try:
                count = int(os.environ['NUMBER_OF_PROCESSORS'])
            except (KeyError, ValueError):
                count = None
        if not count:
            raise NotImplementedError('cannot determine number of cpus')
        return count

    def Manager(self):
        """A started SyncManager whose server runs in a child of this context."""
        from .managers import SyncManager
        manager = SyncManager(ctx=self.get_context())
        manager.start()
        return manager

    def Pipe(self, duplex=True):
        """A pair of Connection objects joined by a pipe."""
        from .connection import Pipe
        return Pipe(duplex)

    def Lock(self):
        from .synchronize import Lock
        return Lock(ctx=self.get_context())

    def RLock(self):
        from .synchronize import RLock
        return RLock(ctx=self.get_context())

    def Condition(self, lock=None):
        from .synchronize import Condition
        return Condition(lock, ctx=self.get_context())

    def Semaphore(self, value=1):
        from .synchronize import Semaphore
        return Semaphore(value, ctx=self.get_context())

    def BoundedSemaphore(self, value=1):
        from .synchronize import BoundedSemaphore
        return BoundedSemaphore(value, ctx=self.get_context())

    def Event(self):
        from .synchronize import Event
        return Event(ctx=self.get_context())

    def Barrier(self, parties, action=None, timeout=None):
        from .synchronize import Barrier
        return Barrier(parties, action, timeout, ctx=self.get_context())

    def Queue(self, maxsize=0):
        from .queues import Queue
        return Queue(maxsize, ctx=self.get_context())

    def JoinableQueue(self, maxsize=0):
        from .queues import JoinableQueue
        return JoinableQueue(maxsize, ctx=self.get_context())

    def SimpleQueue(self):
        from .queues import SimpleQueue
        return SimpleQueue(ctx=self.get_context())

    def Pool(self, processes=None, initializer=None, initargs=(),
             maxtasksperchild=None):
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild,
                    context=self.get_context())

    def RawValue(self, typecode_or_type, *args):
        from .sharedctypes import RawValue
        return RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type, size_or_initializer):
        from .sharedctypes import RawArray
        return RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type, *args, **kwds):
        lock = _keyword_only('Value', kwds, lock=True)['lock']
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock, ctx=self.get_context())

    def Array(self, typecode_or_type, size_or_initializer, **kwds):
        lock = _keyword_only('Array', kwds, lock=True)['lock']
        from .sharedctypes import Array
        return Array(typecode_or_type, size_or_initializer, lock=lock,
                     ctx=self.get_context())

    def freeze_support(self):
        """Run a child's bootstrap when this is a frozen executable started
        as a spawned child, fork server or resource tracker."""
        if getattr(sys, 'frozen', False):
            from .spawn import freeze_support
            freeze_support()

    def get_logger(self):
        from .util import get_logger
        return get_logger()

    def log_to_stderr(self, level=None):
        from .util import log_to_stderr
        return log_to_stderr(level)

    def allow_connection_pickling(self):
        """Connections and sockets pickle through queues and pipes (always
        on; kept for compatibility)."""
        from . import connection  # noqa: F401 (registers the reducers)

    def set_executable(self, executable):
        """The interpreter that spawned children run (default sys.executable)."""
        from .spawn import set_executable
        set_executable(executable)

    def set_forkserver_preload(self, module_names):
        """Modules the fork server imports once, before forking children."""
        from .forkserver import set_forkserver_preload
        set_forkserver_preload(module_names)

    def get_context(self, method=None):
        if method is None:
            return self
        try:
            ctx = _concrete_contexts[method]
        except (KeyError, TypeError):
            raise ValueError('cannot find context for %r' % (method,))
        ctx._check_available()
        return ctx

    def get_start_method(self, allow_none=False):
        return self._name

    def set_start_method(self, method, force=False):
        raise ValueError('cannot set start method of concrete context')

    @property
    def reducer(self):
        """The module-like object that pickles for queues, pipes and children."""
        return _reducer_module()

    @reducer.setter
    def reducer(self, reduction):
        global _reducer
        _reducer = reduction

    def _check_available(self):
        pass


def _keyword_only(func_name, kwds, **defaults):
    unknown = set(kwds) - set(defaults)
    if unknown:
        raise TypeError('%s() got an unexpected keyword argument %r'
                        % (func_name, sorted(unknown)[0]))
    defaults.update(kwds)
    return defaults


# The reducer chosen with ``ctx.reducer = ...``, else mpspawn.reduction
# (found once: every Connection.send/recv asks for it).
_reducer = None


def _reducer_module():
    global _reducer
    if _reducer is None:
        from . import reduction
        _reducer = reduction
    return _reducer


# -- Process classes, one per start method ---------------------------------------

class Process(process.BaseProcess):
    """A process started by the default context's start method."""
    _start_method = None

    @staticmethod
    def _Popen(process_obj):
        return _default_context.get_context().Process._Popen(process_obj)

    @staticmethod
    def _after_fork():
        return _default_context.get_context().Process._after_fork()


class ForkProcess(process.BaseProcess):
    _start_method = 'fork'

    @staticmethod
    def _Popen(process_obj):
        from .popen_fork import Popen
        return Popen(process_obj)


class SpawnProcess(process.BaseProcess):
    _start_method = 'spawn'

    @staticmethod
    def _Popen(process_obj):
        if _compat.IS_WINDOWS:
            from .popen_spawn_win32 import Popen
        else:
            from .popen_spawn_posix import Popen
        return Popen(process_obj)

    @staticmethod
    def _after_fork():
        pass


class ForkServerProcess(process.BaseProcess):
    _start_method = 'forkserver'

    @staticmethod
    def _Popen(process_obj):
        from .popen_forkserver import Popen
        return Popen(process_obj)


class ForkContext(BaseContext):
    _name = 'fork'
    Process = ForkProcess


class SpawnContext(BaseContext):
    _name = 'spawn'
    Process = SpawnProcess


class ForkServerContext(BaseContext):
    _name = 'forkserver'
    Process = ForkServerProcess

    def _check_available(self):
        if not _forkserver_available():
            raise ValueError('forkserver start method not available')


class DefaultContext(BaseContext):
    """The context behind the module-level API; its start method is chosen
    on first use (or by set_start_method)."""
    Process = Process

    def __init__(self, context):
        self._default_context = context
        self._actual_context = None

    def get_context(self, method=None):
        if method is None:
            if self._actual_context is None:
                self._actual_context = self._default_context
            return self._actual_context
        return super(DefaultContext, self).get_context(method)

    def set_start_method(self, method, force=False):
        if self._actual_context is not None and not force:
            raise RuntimeError('context has already been set')
        if method is None and force:
            self._actual_context = None
            return
        self._actual_context = self.get_context(method)

    def get_start_method(self, allow_none=False):
        if self._actual_context is None:
            if allow_none:
                return None
            self._actual_context = self._default_context
        return self._actual_context._name

    def get_all_start_methods(self):
        """The available start methods, the default first."""
        if _compat.IS_WINDOWS:
            return ['spawn']
        methods = ['fork', 'spawn']
        if _forkserver_available():
            methods.append('forkserver')
        default = self._default_context._name
        methods.remove(default)
        return [default] + methods


# Switched on when the fork server lands (issue 5).
_FORKSERVER_IMPLEMENTED = True


def _forkserver_available():
    """forkserver needs 2.7's _multiprocessing.sendfd/recvfd."""
    return _FORKSERVER_IMPLEMENTED and _compat.have_fd_passing()


if _compat.IS_WINDOWS:
    _concrete_contexts = {'spawn': SpawnContext()}
else:
    _concrete_contexts = {
        'fork': ForkContext(),
        'spawn': SpawnContext(),
        'forkserver': ForkServerContext(),
    }


def _initial_default():
    """fork on Linux, spawn on macOS and Windows (as Python 3.8-3.13), unless
    MPSPAWN_START_METHOD names another available method."""
    wanted = os.environ.get(_compat.START_METHOD_ENV)
    if wanted:
        ctx = _concrete_contexts.get(wanted)
        if ctx is None:
            raise ValueError('%s=%r: unknown start method; choose one of %s'
                             % (_compat.START_METHOD_ENV, wanted,
                                ', '.join(sorted(_concrete_contexts))))
        ctx._check_available()
        return ctx
    if _compat.IS_DARWIN or _compat.IS_WINDOWS:
        return _concrete_contexts['spawn']
    return _concrete_contexts['fork']


_default_context = DefaultContext(_initial_default())


def _force_start_method(method):
    _default_context._actual_context = _concrete_contexts[method]


# -- "am I being pickled for a child that is being spawned?" ------------------

_tls = _compat.thread_local()


def get_spawning_popen():
    return getattr(_tls, 'spawning_popen', None)


def set_spawning_popen(popen):
    _tls.spawning_popen = popen


def assert_spawning(obj):
    if get_spawning_popen() is None:
        raise RuntimeError(
            '%s objects should only be shared between processes'
            ' through inheritance' % type(obj).__name__)


def keep_alive_for_child(obj):
    """Hold ``obj`` for as long as the Popen of the child being spawned
    lives, so that the parent cannot release it (unlink a semaphore, free a
    heap block) while that child may still be attaching to it."""
    popen = get_spawning_popen()
    if popen is not None:
        popen.__dict__.setdefault('_kept_for_child', []).append(obj)
