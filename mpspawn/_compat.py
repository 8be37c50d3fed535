"""Every difference between Python 2.7 and Python 3 that mpspawn handles, and
every ctypes binding it uses.

Nothing else in the package tests the interpreter version.  On Python 3 the
package re-exports the standard library, and the only code of this module that
runs there is ``become_stdlib``.  On 2.7 this module supplies what the
interpreter lacks: a monotonic clock, close-on-exec pipes, named POSIX
semaphores adopted by the C ``SemLock``, a fork+exec that keeps only chosen
descriptors, descriptor passing, and tolerant EINTR handling.
"""
import errno
import os
import sys

PY2 = sys.version_info[0] == 2
IS_DARWIN = sys.platform == 'darwin'
IS_WINDOWS = sys.platform == 'win32'

# Spawned children find their inherited descriptors from this number upwards.
FIRST_CHILD_FD = 3

# The environment variable that changes the default start method.
START_METHOD_ENV = 'MPSPAWN_START_METHOD'

if PY2:
    import cPickle as pickle
    import copy_reg as copyreg
    from cStringIO import StringIO as BytesIO
    # The C pieces behind threading: importing threading itself costs ~3 ms.
    from thread import allocate_lock, get_ident, start_new_thread
    from thread import _local as thread_local
    string_types = (str, unicode)  # noqa: F821 (2.7 builtin)
    integer_types = (int, long)  # noqa: F821 (2.7 builtin)
    text_type = unicode  # noqa: F821 (2.7 builtin)
    import types as _types
    class_types = (type, _types.ClassType)
    reload_module = reload  # noqa: F821 (2.7 builtin)

    def exec_code(code, namespace):
        exec("exec code in namespace")

    def reraise_with_context(exc, cause):
        """Raise ``exc`` keeping ``cause`` visible (2.7 has no chaining)."""
        exc.__cause__ = cause
        raise exc
else:
    import pickle
    import copyreg
    from io import BytesIO
    from _thread import allocate_lock, get_ident, start_new_thread
    from threading import local as thread_local
    string_types = (str,)
    integer_types = (int,)
    text_type = str
    class_types = (type,)
    import importlib
    reload_module = importlib.reload

    def exec_code(code, namespace):
        exec(code, namespace)

    def reraise_with_context(exc, cause):
        import six
        six.raise_from(exc, cause)

PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL

_pickling_error_class = None


def pickling_error_class():
    """The PicklingError mpspawn raises.  On 2.7 it derives from both
    cPickle's and pickle's PicklingError (two unrelated classes there), so
    either ``except`` clause catches it; made on first use because importing
    the pure-Python pickle module costs every spawned child ~2 ms."""
    global _pickling_error_class
    if _pickling_error_class is None:
        if PY2:
            import pickle as pure_pickle
            _pickling_error_class = type('PicklingError', (pickle.PicklingError,
                                                           pure_pickle.PicklingError),
                                         {'__module__': __name__})
        else:
            _pickling_error_class = pickle.PicklingError
    return _pickling_error_class


def bytecode_magic():
    """The magic number of this interpreter's bytecode files."""
    if PY2:
        import imp
        return imp.get_magic()
    import importlib.util
    return importlib.util.MAGIC_NUMBER


def native_ascii(data):
    """ASCII bytes as the native str type (bytes on 2.7, text on 3)."""
    return data if PY2 else data.decode('ascii')


def queue_module():
    """``Queue`` on 2.7, ``queue`` on 3 (imported on use: it pulls in threading)."""
    return __import__('Queue' if PY2 else 'queue')


def errno_of(exc):
    """The errno of an OSError/IOError/select.error/socket.error, or None."""
    code = getattr(exc, 'errno', None)
    if code is None and getattr(exc, 'args', None):
        first = exc.args[0]
        if isinstance(first, integer_types):
            code = first
    return code


def is_eintr(exc):
    return errno_of(exc) == errno.EINTR


# ---------------------------------------------------------------------------
# Python 3: mpspawn is the standard library
# ---------------------------------------------------------------------------

# mpspawn submodules that are not multiprocessing submodules of the same name.
_PY3_RENAMED = {'futures': 'concurrent.futures'}


def become_stdlib(namespace, package_name):
    """Make the package ``package_name`` a view of the standard library.

    Every public name of ``multiprocessing`` is copied into ``namespace`` and
    every submodule ``package_name.X`` is ``multiprocessing.X`` itself (found
    on first import, never loaded twice).
    """
    import importlib
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import multiprocessing
    import pkgutil

    for name in dir(multiprocessing):
        if not name.startswith('__'):
            namespace[name] = getattr(multiprocessing, name)
    namespace['__all__'] = list(multiprocessing.__all__)
    aliased = dict((info.name, 'multiprocessing.' + info.name)
                   for info in pkgutil.iter_modules(multiprocessing.__path__))
    aliased.update(_PY3_RENAMED)
    prefix = package_name + '.'

    class _StdlibAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """Resolves ``<package>.X`` to the standard library module."""

        def find_spec(self, fullname, path=None, target=None):
            if not fullname.startswith(prefix):
                return None
            short = fullname[len(prefix):]
            real = aliased.get(short)
            if real is None and '.' in short:
                # A submodule of an aliased package (futures.process,
                # dummy.connection): the real one, never a second copy.
                head, _, rest = short.partition('.')
                if head in aliased:
                    real = aliased[head] + '.' + rest
                    if importlib.util.find_spec(real) is None:
                        return None
            if real is None:
                return None
            return importlib.machinery.ModuleSpec(
                fullname, self, loader_state=real)

        def create_module(self, spec):
            module = importlib.import_module(spec.loader_state)
            real_specs[module.__name__] = module.__spec__
            return module

        def exec_module(self, module):
            # The import system stamped our alias spec on the real module
            # after create_module: give it back its own.
            module.__spec__ = real_specs.pop(module.__name__)

    real_specs = {}

    sys.meta_path.insert(0, _StdlibAlias())
    for short, real in aliased.items():
        mod = sys.modules.get(real)
        if mod is not None:
            sys.modules.setdefault(prefix + short, mod)
    _apply_start_method_env_py3(multiprocessing)


def _apply_start_method_env_py3(multiprocessing):
    wanted = os.environ.get(START_METHOD_ENV)
    if not wanted:
        return
    default = multiprocessing.context._default_context
    if default.get_start_method(allow_none=True) is None:
        # Change the default without "setting" it, as on 2.7: a later
        # set_start_method() without force still works.
        default._default_context = default.get_context(wanted)


# ---------------------------------------------------------------------------
# Everything below is for Python 2.7 (and is only imported there).
# ---------------------------------------------------------------------------

_libc = None


def libc():
    """The C library, loaded through ctypes on first use (ctypes costs ~3 ms)."""
    global _libc
    if _libc is None:
        if IS_WINDOWS:
            raise NotImplementedError(
                'mpspawn on Windows offers Process with the spawn start method '
                'only (over 2.7\'s own machinery); locks, queues, shared memory, '
                'pools and managers need POSIX: use 2.7\'s multiprocessing there')
        import ctypes
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _ctypes_oserror(what):
    import ctypes
    code = ctypes.get_errno()
    return OSError(code, '%s: %s' % (what, os.strerror(code)))


# -- monotonic clock --------------------------------------------------------

def _make_monotonic():
    if not PY2:
        import time
        return time.monotonic
    if IS_WINDOWS:
        import time
        return time.clock      # 2.7 on Windows: a high-resolution counter
    import ctypes
    if IS_DARWIN:
        try:
            lib = libc()
            mach_absolute_time = lib.mach_absolute_time
            mach_absolute_time.restype = ctypes.c_uint64

            class _Timebase(ctypes.Structure):
                _fields_ = [('numer', ctypes.c_uint32), ('denom', ctypes.c_uint32)]
            base = _Timebase()
            lib.mach_timebase_info(ctypes.byref(base))
            scale = float(base.numer) / base.denom / 1e9
            return lambda: mach_absolute_time() * scale
        except (AttributeError, OSError):
            pass
    else:
        class _Timespec(ctypes.Structure):
            _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]
        clock_gettime = None
        for lib_name in (None, 'librt.so.1'):
            try:
                clock_gettime = ctypes.CDLL(lib_name, use_errno=True).clock_gettime
                break
            except (OSError, AttributeError):
                continue
        if clock_gettime is not None:
            clock_gettime.argtypes = [ctypes.c_int, ctypes.POINTER(_Timespec)]
            clock_monotonic = 1
            spec = _Timespec()
            ref = ctypes.byref(spec)

            def monotonic():
                if clock_gettime(clock_monotonic, ref) != 0:
                    raise _ctypes_oserror('clock_gettime')
                return spec.tv_sec + spec.tv_nsec * 1e-9
            return monotonic
    import time
    return time.time


_monotonic = None


def monotonic():
    """Seconds from an arbitrary point, never going backwards."""
    global _monotonic
    if _monotonic is None:
        _monotonic = _make_monotonic()
    return _monotonic()


# -- descriptors ------------------------------------------------------------

def set_cloexec(fd, cloexec=True):
    import fcntl
    flags = fcntl.fcntl(fd, fcntl.F_GETFD)
    if cloexec:
        flags |= fcntl.FD_CLOEXEC
    else:
        flags &= ~fcntl.FD_CLOEXEC
    fcntl.fcntl(fd, fcntl.F_SETFD, flags)


_pipe2 = None


def pipe():
    """A close-on-exec pipe; atomic (pipe2) where the C library has it."""
    global _pipe2
    if not PY2:
        return os.pipe()
    if _pipe2 is None:
        _pipe2 = False
        if not IS_DARWIN:
            try:
                import ctypes
                func = libc().pipe2
                func.argtypes = [ctypes.POINTER(ctypes.c_int * 2), ctypes.c_int]
                _pipe2 = (func, ctypes.c_int * 2)
            except AttributeError:
                pass
    if _pipe2:
        func, array_type = _pipe2
        fds = array_type()
        if func(fds, 0o2000000) == 0:  # O_CLOEXEC on Linux
            return fds[0], fds[1]
    r, w = os.pipe()
    set_cloexec(r)
    set_cloexec(w)
    return r, w


def socket_cloexec(sock):
    set_cloexec(sock.fileno())
    return sock


def socketpair():
    import socket
    a, b = socket.socketpair()
    socket_cloexec(a)
    socket_cloexec(b)
    return a, b


def open_fds():
    """The descriptors open in this process (listed, not guessed)."""
    for where in ('/proc/self/fd', '/dev/fd'):
        try:
            names = os.listdir(where)
        except OSError:
            continue
        fds = []
        for name in names:
            try:
                fds.append(int(name))
            except ValueError:
                pass
        return sorted(fds)
    return list(range(max_fd()))


def max_fd():
    try:
        return os.sysconf('SC_OPEN_MAX')
    except (AttributeError, ValueError, OSError):
        return 256


def wait_fds(fds, timeout):
    """Wait until some of ``fds`` is readable (or closed); return those.

    Uses poll(), so descriptors above FD_SETSIZE work.  A signal interrupts
    the wait only to let Python run its handler (KeyboardInterrupt surfaces
    here at once); otherwise the wait resumes with the remaining time.
    """
    import select
    if timeout is not None:
        deadline = monotonic() + max(timeout, 0.0)
    if hasattr(select, 'poll'):
        poller = select.poll()
        mask = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
        for fd in fds:
            poller.register(fd, mask)
        while True:
            ms = None if timeout is None else max(0, int(((deadline - monotonic()) * 1000) + 0.999))
            try:
                return [fd for fd, _ in poller.poll(ms)]
            except (select.error, OSError) as exc:
                if not is_eintr(exc):
                    raise
            if timeout is not None and monotonic() >= deadline:
                return []
    while True:
        left = None if timeout is None else max(0.0, deadline - monotonic())
        try:
            return select.select(list(fds), [], [], left)[0]
        except (select.error, OSError) as exc:
            if not is_eintr(exc):
                raise
        if timeout is not None and monotonic() >= deadline:
            return []


def retry_on_eintr(func, *args):
    while True:
        try:
            return func(*args)
        except (OSError, IOError) as exc:
            if not is_eintr(exc):
                raise


def waitpid(pid, options):
    return retry_on_eintr(os.waitpid, pid, options)


# -- buffers (2.7's memoryview does not take array.array) -------------------

def byte_view(obj):
    """A read-only bytes-like view of ``obj`` and its length in bytes."""
    if PY2:
        view = buffer(obj)  # noqa: F821 (2.7 builtin)
        return view, len(view)
    view = memoryview(obj)
    if view.itemsize > 1 or view.ndim != 1:
        view = view.cast('B')
    return view, len(view)


def writable_view(mapping, size, offset=0):
    """A writable memoryview of ``size`` bytes of an mmap from ``offset``.
    2.7's mmap has only the old buffer interface, so the view goes through a
    ctypes array over the mapping (which also keeps the mapping alive while
    the view lives)."""
    if PY2:
        import ctypes
        return memoryview((ctypes.c_ubyte * size).from_buffer(mapping, offset))
    return memoryview(mapping)[offset:offset + size]


builtins_module = __import__('__builtin__' if PY2 else 'builtins')


def open_devnull_as_stdin():
    """A text stream reading /dev/null, for a child's sys.stdin."""
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        if PY2:
            return os.fdopen(fd, 'r')
        return open(fd, encoding='utf-8', closefd=True)
    except (OSError, ValueError):
        os.close(fd)
        raise


def writable_size(obj):
    """The size in bytes of the writable buffer ``obj``."""
    if PY2 and hasattr(obj, 'buffer_info'):      # array.array
        return obj.buffer_info()[1] * obj.itemsize
    view = memoryview(obj)
    if view.readonly:
        raise TypeError('a writable buffer is required, not %s' % type(obj).__name__)
    return view.itemsize * _product(view.shape)


def write_into(obj, offset, data):
    """Copy ``data`` into the writable buffer ``obj`` at byte ``offset``
    (the caller has checked that it fits)."""
    if not data:
        return
    if PY2:
        import ctypes
        if hasattr(obj, 'buffer_info'):           # array.array
            address = obj.buffer_info()[0]
        else:
            size = writable_size(obj)
            address = ctypes.addressof((ctypes.c_char * size).from_buffer(obj))
        ctypes.memmove(address + offset, data, len(data))
        return
    view = memoryview(obj)
    if view.itemsize != 1 or view.ndim != 1:
        view = view.cast('B')
    view[offset:offset + len(data)] = data


def _product(shape):
    result = 1
    for n in shape or ():
        result *= n
    return result


# -- interpreter flags for a spawned child ---------------------------------

def interpreter_flags():
    """Command-line options that reproduce this interpreter's settings."""
    flags = sys.flags
    args = []
    simple = [('debug', 'd'), ('dont_write_bytecode', 'B'), ('no_user_site', 's'),
              ('no_site', 'S'), ('ignore_environment', 'E'), ('verbose', 'v'),
              ('bytes_warning', 'b'), ('py3k_warning', '3'), ('tabcheck', 't'),
              ('hash_randomization', 'R'), ('optimize', 'O')]
    for attr, letter in simple:
        value = getattr(flags, attr, 0)
        if attr == 'hash_randomization' and os.environ.get('PYTHONHASHSEED'):
            continue  # the seed reaches the child through the environment
        if value > 0:
            args.append('-' + letter * value)
    division = getattr(flags, 'division_warning', 0)
    if division:
        args.append('-Qwarnall' if division > 1 else '-Qwarn')
    for opt in sys.warnoptions:
        args.append('-W' + opt)
    return args


# -- how __main__ was started ------------------------------------------------

def main_module_name(module):
    """The importable name ``module`` (a ``__main__``) was run as, or None.

    Python 3 records it in ``__spec__.name``; 2.7's runpy leaves it in
    ``__loader__.fullname`` for ``-m`` and for directories.
    """
    spec = getattr(module, '__spec__', None)
    name = getattr(spec, 'name', None)
    if name:
        return name
    loader = getattr(module, '__loader__', None)
    name = getattr(loader, 'fullname', None)
    if isinstance(name, string_types) and name:
        return name
    return None


# -- helper threads -------------------------------------------------------------

_sigmask_func = None


def block_signals_in_thread():
    """Block every signal in the calling (helper) thread.

    Python runs signal handlers in the main thread only; a process signal
    (Ctrl-C) that the kernel hands to a helper thread blocked in C would
    leave the main thread asleep.  2.7 has no pthread_sigmask: ctypes.
    """
    global _sigmask_func
    if not PY2:
        import signal
        if hasattr(signal, 'pthread_sigmask'):
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        return
    if _sigmask_func is None:
        _sigmask_func = False
        try:
            import ctypes
            lib = libc()
            func = lib.pthread_sigmask
            fill = lib.sigfillset
            func.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
            fill.argtypes = [ctypes.c_void_p]
            full = ctypes.create_string_buffer(256)  # >= sizeof(sigset_t)
            fill(full)
            sig_setmask = 3 if IS_DARWIN else 2
            _sigmask_func = lambda: func(sig_setmask, full, None)
        except (AttributeError, OSError, ImportError):
            pass
    if _sigmask_func:
        _sigmask_func()


# -- fork hooks ---------------------------------------------------------------

def reseed_random_after_fork():
    """Python 3 reseeds ``random`` in a forked child; 2.7 does not."""
    mod = sys.modules.get('random')
    if mod is not None:
        try:
            mod.seed()
        except Exception:
            pass


# -- _multiprocessing without importing 2.7's multiprocessing ----------------

def c_multiprocessing():
    """2.7's ``_multiprocessing`` C module.

    Its init imports 2.7's whole ``multiprocessing`` package (36 modules,
    ~10 ms measured) only to fetch ``BufferTooShort``; a stand-in module
    during the import avoids that, then is removed again.
    """
    mod = sys.modules.get('_multiprocessing')
    if mod is not None:
        return mod
    if not PY2 or 'multiprocessing' in sys.modules:
        import _multiprocessing
        return _multiprocessing
    import types
    stand_in = types.ModuleType('multiprocessing')
    from .context import BufferTooShort
    stand_in.BufferTooShort = BufferTooShort
    sys.modules['multiprocessing'] = stand_in
    try:
        import _multiprocessing
    finally:
        if sys.modules.get('multiprocessing') is stand_in:
            del sys.modules['multiprocessing']
    return _multiprocessing


def have_fd_passing():
    if IS_WINDOWS:
        return False
    try:
        mod = c_multiprocessing()
    except ImportError:
        return False
    return hasattr(mod, 'sendfd') and hasattr(mod, 'recvfd')


def sendfd(sock_fd, fd):
    return c_multiprocessing().sendfd(sock_fd, fd)


def recvfd(sock_fd):
    fd = c_multiprocessing().recvfd(sock_fd)
    set_cloexec(fd)
    return fd


# -- named POSIX semaphores -------------------------------------------------
#
# How the semaphore paths differ on macOS (written for it, testable only there):
# - sem_open is variadic, and Apple arm64 passes variadic arguments on the
#   stack: _SemApi.create pads the argument registers (see below).
# - There is no sem_timedwait.  2.7's C SemLock then emulates a timed
#   acquire by polling sem_trywait with short sleeps (its own
#   sem_timedwait_save), still in C and still checking for signals, so
#   acquire(timeout=...) works, with a coarser wake-up.
# - sem_getvalue is broken (always fails).  2.7's C SemLock is built with
#   HAVE_BROKEN_SEM_GETVALUE there: _get_value() raises NotImplementedError,
#   so Semaphore.get_value() and Queue.qsize() raise NotImplementedError as
#   in Python 3, and the over-release check of a Lock (maxvalue 1) uses
#   sem_trywait instead; a BoundedSemaphore above 1 is not checked (as in
#   Python 3 on macOS).
# - Names are limited to 31 characters (PSEMNAMLEN): ours are 21.

SEM_RECURSIVE_MUTEX = 0
SEM_SEMAPHORE = 1


class _SemApi(object):
    """ctypes bindings of sem_open/sem_unlink/sem_close."""

    def __init__(self):
        import ctypes
        lib = libc()
        self.sem_failed = ctypes.c_void_p(-1).value  # SEM_FAILED is (sem_t *)-1
        # lib[name] makes a separate function object, so each has its own argtypes.
        self._open_existing = lib['sem_open']
        self._open_existing.restype = ctypes.c_void_p
        self._open_existing.argtypes = [ctypes.c_char_p, ctypes.c_int]
        # sem_open is variadic.  On Apple arm64 variadic arguments travel on
        # the stack in 8-byte slots while fixed ones use registers, so the
        # call pads the eight argument registers and passes mode and value
        # as 64-bit stack slots.  Elsewhere the fixed-argument call matches.
        self._open_create = lib['sem_open']
        self._open_create.restype = ctypes.c_void_p
        if IS_DARWIN and os.uname()[4] == 'arm64':
            self._open_create.argtypes = ([ctypes.c_char_p, ctypes.c_int] +
                                          [ctypes.c_void_p] * 6 +
                                          [ctypes.c_uint64, ctypes.c_uint64])
            self._pad = (None,) * 6
        else:
            self._open_create.argtypes = [ctypes.c_char_p, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint]
            self._pad = ()
        self._unlink = lib.sem_unlink
        self._unlink.argtypes = [ctypes.c_char_p]
        self._close = lib.sem_close
        self._close.argtypes = [ctypes.c_void_p]

    def create(self, name, value):
        handle = self._open_create(_cname(name), os.O_CREAT | os.O_EXCL,
                                   *(self._pad + (0o600, value)))
        if handle is None or handle == self.sem_failed:
            raise _ctypes_oserror('sem_open(%r)' % (name,))
        return handle

    def open(self, name):
        handle = self._open_existing(_cname(name), 0)
        if handle is None or handle == self.sem_failed:
            raise _ctypes_oserror('sem_open(%r)' % (name,))
        return handle

    def unlink(self, name):
        if self._unlink(_cname(name)) != 0:
            raise _ctypes_oserror('sem_unlink(%r)' % (name,))

    def close(self, handle):
        self._close(handle)


def _cname(name):
    return name.encode('ascii') if isinstance(name, text_type) else name


_sem_api = None


def sem_api():
    global _sem_api
    if _sem_api is None:
        _sem_api = _SemApi()
    return _sem_api


def adopt_semaphore(handle, kind, maxvalue):
    """Wrap a ``sem_t *`` in 2.7's C SemLock (it closes the handle when freed)."""
    return c_multiprocessing().SemLock._rebuild(handle, kind, maxvalue)


def anonymous_semaphore(kind, value, maxvalue):
    """2.7's own SemLock: created and unlinked at once, for fork contexts."""
    return c_multiprocessing().SemLock(kind, value, maxvalue)


def _shm_function(name):
    """shm_open/shm_unlink: in the C library since glibc 2.34, librt before."""
    try:
        return getattr(libc(), name)
    except AttributeError:
        import ctypes
        return getattr(ctypes.CDLL('librt.so.1', use_errno=True), name)


def shm_open(name, flags, mode=0o600):
    """Open the POSIX shared-memory object ``name``; a close-on-exec fd."""
    import ctypes
    func = _shm_function('shm_open')
    func.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
    fd = func(_cname(name), flags | getattr(os, 'O_CLOEXEC', 0o2000000 if not IS_DARWIN else 0),
              mode)
    if fd < 0:
        raise _ctypes_oserror('shm_open(%r)' % (name,))
    if IS_DARWIN:
        set_cloexec(fd)
    return fd


def shm_unlink(name):
    """Remove the POSIX shared-memory object ``name``."""
    if _shm_function('shm_unlink')(_cname(name)) != 0:
        raise _ctypes_oserror('shm_unlink(%r)' % (name,))


SEM_VALUE_MAX = 2 ** 31 - 1
# macOS has no sem_timedwait (2.7's C lock polls) and sem_getvalue is broken
# (see "named POSIX semaphores" above).
HAVE_BROKEN_SEM_GETVALUE = IS_DARWIN


# -- files that back shared memory (heap arenas) -----------------------------

# 2.7's os module has no O_CLOEXEC; these are the Linux and macOS values.
O_CLOEXEC = getattr(os, 'O_CLOEXEC', 0o2000000 if sys.platform.startswith('linux')
                    else 0x1000000 if IS_DARWIN else 0)

_fallocate = None


def _get_fallocate():
    """posix_fallocate(fd, offset, length) -> error number, or None."""
    global _fallocate
    if _fallocate is None:
        _fallocate = False
        if hasattr(os, 'posix_fallocate'):
            def call(fd, offset, length):
                try:
                    os.posix_fallocate(fd, offset, length)
                except OSError as exc:
                    return exc.errno
                return 0
            _fallocate = call
        elif not IS_DARWIN:
            import ctypes
            lib = libc()
            for name in ('posix_fallocate64', 'posix_fallocate'):
                func = getattr(lib, name, None)
                if func is not None:
                    off_t = ctypes.c_int64 if name.endswith('64') else ctypes.c_long
                    func.argtypes = [ctypes.c_int, off_t, off_t]
                    func.restype = ctypes.c_int
                    _fallocate = func
                    break
    return _fallocate or None


def allocate_file(fd, size):
    """Make the file ``fd`` ``size`` bytes long with its storage reserved.

    A memory map of a sparse file faults with SIGBUS when the file system
    (a small /dev/shm) cannot supply a page on first touch.  Reserving the
    pages now turns that into OSError(ENOSPC) here.  posix_fallocate where
    the C library has it (tmpfs supports it); otherwise, or if the file
    system refuses it, zeros are written.
    """
    fallocate = _get_fallocate()
    if fallocate is not None and size > 0:
        code = fallocate(fd, 0, size)
        if code == 0:
            os.ftruncate(fd, size)
            return
        if code not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise OSError(code, os.strerror(code))
    chunk = b'\0' * min(size, 1 << 20)
    os.lseek(fd, 0, os.SEEK_SET)
    done = 0
    while done < size:
        done += retry_on_eintr(os.write, fd, chunk[:size - done])
    os.ftruncate(fd, size)


def map_shared_file(fd, size):
    """A shared read-write mmap of ``size`` bytes of the file ``fd``.

    2.7's mmap keeps its own dup() of ``fd``, which is inheritable: it is
    found (the lowest free number, checked by inode) and made close-on-exec.
    """
    import mmap
    if not PY2:
        return mmap.mmap(fd, size)
    probe = os.dup(fd)
    os.close(probe)
    buf = mmap.mmap(fd, size)
    try:
        mine, theirs = os.fstat(fd), os.fstat(probe)
        if (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino):
            set_cloexec(probe)
    except OSError:
        pass
    return buf


# -- starting a program with only chosen descriptors ------------------------

class _PosixSpawn(object):
    """posix_spawn() through ctypes: no Python code runs in the child at all.

    The child gets ``fds`` renumbered to FIRST_CHILD_FD, FIRST_CHILD_FD+1, ...
    and nothing else besides 0, 1 and 2; its signal mask is emptied.
    """
    # Opaque glibc/Darwin structures; generous sizes (80 and 336 bytes on glibc).
    FILE_ACTIONS_SIZE = 512
    ATTR_SIZE = 1024
    SIGSET_SIZE = 256
    POSIX_SPAWN_SETSIGMASK = 0x08
    POSIX_SPAWN_CLOEXEC_DEFAULT = 0x4000  # Darwin only

    def __init__(self):
        import ctypes
        lib = libc()
        self.ctypes = ctypes
        self.spawn = lib.posix_spawn
        self.spawn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                               ctypes.c_void_p, ctypes.c_void_p,
                               ctypes.c_void_p, ctypes.c_void_p]
        self.fa_init = lib.posix_spawn_file_actions_init
        self.fa_destroy = lib.posix_spawn_file_actions_destroy
        self.fa_dup2 = lib.posix_spawn_file_actions_adddup2
        self.fa_dup2.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        self.attr_init = lib.posix_spawnattr_init
        self.attr_destroy = lib.posix_spawnattr_destroy
        self.attr_setflags = lib.posix_spawnattr_setflags
        self.attr_setflags.argtypes = [ctypes.c_void_p, ctypes.c_short]
        self.attr_setsigmask = lib.posix_spawnattr_setsigmask
        self.sigemptyset = lib.sigemptyset
        self.sigaddset = lib.sigaddset
        self.sigaddset.argtypes = [ctypes.c_void_p, ctypes.c_int]
        if IS_DARWIN:
            self.fa_closefrom = None
        else:
            self.fa_closefrom = lib.posix_spawn_file_actions_addclosefrom_np
            self.fa_closefrom.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.environ = ctypes.c_void_p.in_dll(lib, 'environ')

    def __call__(self, path, argv, fds, blocked_signals=()):
        ctypes = self.ctypes
        actions = ctypes.create_string_buffer(self.FILE_ACTIONS_SIZE)
        attr = ctypes.create_string_buffer(self.ATTR_SIZE)
        sigset = ctypes.create_string_buffer(self.SIGSET_SIZE)
        c_argv = (ctypes.c_char_p * (len(argv) + 1))(*[_cname(a) for a in argv] + [None])
        _check_zero(self.fa_init(actions), 'posix_spawn_file_actions_init')
        _check_zero(self.attr_init(attr), 'posix_spawnattr_init')
        try:
            # Two steps so a source number that is also a target is not clobbered.
            parking = max(list(fds) + [FIRST_CHILD_FD + len(fds)]) + 1
            for i, fd in enumerate(fds):
                _check_zero(self.fa_dup2(actions, fd, parking + i), 'adddup2')
            for i in range(len(fds)):
                _check_zero(self.fa_dup2(actions, parking + i, FIRST_CHILD_FD + i), 'adddup2')
            flags = self.POSIX_SPAWN_SETSIGMASK
            if self.fa_closefrom is not None:
                _check_zero(self.fa_closefrom(actions, FIRST_CHILD_FD + len(fds)),
                            'addclosefrom_np')
            else:
                flags |= self.POSIX_SPAWN_CLOEXEC_DEFAULT
            self.sigemptyset(sigset)
            for signum in blocked_signals:
                self.sigaddset(sigset, signum)
            _check_zero(self.attr_setsigmask(attr, sigset), 'setsigmask')
            _check_zero(self.attr_setflags(attr, flags), 'setflags')
            pid = ctypes.c_int()
            rc = self.spawn(ctypes.byref(pid), _cname(path), actions, attr,
                            c_argv, self.environ.value)
            if rc != 0:
                raise OSError(rc, '%s: %s' % (os.strerror(rc), path))
            return pid.value
        finally:
            self.fa_destroy(actions)
            self.attr_destroy(attr)


def _check_zero(rc, what):
    if rc != 0:
        raise OSError(rc, '%s: %s' % (what, os.strerror(rc)))


_posix_spawn = None


def _get_posix_spawn():
    global _posix_spawn
    if _posix_spawn is None:
        try:
            _posix_spawn = _PosixSpawn()
        except (AttributeError, OSError, ValueError):
            _posix_spawn = False
    return _posix_spawn


def _fork_exec(path, argv, fds, blocked_signals=()):
    """fork+exec keeping only ``fds`` (renumbered), for C libraries without
    posix_spawn_file_actions_addclosefrom_np.

    Everything is computed before forking and the garbage collector is off,
    so the child runs nothing but dup2/close/execv; an exec failure comes back
    to the parent through a close-on-exec pipe and is raised there.
    """
    import gc
    argv = [_cname(a) for a in argv]
    path = _cname(path)
    errpipe_r, errpipe_w = pipe()
    count = len(fds)
    parking = max(list(fds) + [FIRST_CHILD_FD + count, errpipe_w]) + 1
    to_close = [fd for fd in open_fds() if fd >= FIRST_CHILD_FD + count]
    moves = [(fd, parking + i) for i, fd in enumerate(fds)]
    moves += [(parking + i, FIRST_CHILD_FD + i) for i in range(count)]
    err_slot = parking + count
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        pid = os.fork()
        if pid == 0:
            try:
                if blocked_signals:
                    import signal
                    for signum in blocked_signals:
                        signal.signal(signum, signal.SIG_IGN)
                os.dup2(errpipe_w, err_slot)
                set_cloexec(err_slot)
                for src, dst in moves:
                    os.dup2(src, dst)
                for fd in to_close:
                    if fd != err_slot:
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                os.execv(path, argv)
            except BaseException as exc:
                try:
                    os.write(err_slot, str(errno_of(exc) or 0).encode('ascii'))
                finally:
                    os._exit(127)
            os._exit(127)
    finally:
        if gc_was_enabled:
            gc.enable()
    os.close(errpipe_w)
    try:
        report = retry_on_eintr(os.read, errpipe_r, 64)
    finally:
        os.close(errpipe_r)
    if report:
        waitpid(pid, 0)
        code = int(report)
        raise OSError(code, '%s: %s' % (os.strerror(code), path))
    return pid


def spawn_with_fds(path, argv, fds, blocked_signals=()):
    """Start ``argv`` (program ``path``) with stdio plus ``fds`` renumbered
    from FIRST_CHILD_FD, and nothing else; return the pid.

    ``blocked_signals`` are blocked in the child from its first instruction
    (ignored, in the fork fallback), for helpers that must survive Ctrl-C
    while they start.  An exec failure raises OSError here, in the parent.
    """
    launcher = _get_posix_spawn()
    if launcher:
        return launcher(path, argv, list(fds), blocked_signals)
    return _fork_exec(path, argv, list(fds), blocked_signals)


# -- process ids -------------------------------------------------------------

def pid_exists(pid):
    """Whether a process ``pid`` exists."""
    if IS_WINDOWS:
        # os.kill(pid, 0) would send CTRL_C_EVENT there.
        import ctypes
        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x00100000, False, pid)  # SYNCHRONIZE
        if not handle:
            return False
        try:
            return kernel32.WaitForSingleObject(handle, 0) == 0x102  # WAIT_TIMEOUT
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


# ---------------------------------------------------------------------------
# threading with Python 3's API, for 2.7: lock acquisition with a timeout,
# waits that return a boolean, Condition.wait_for, Barrier, and a queue whose
# timed get/put do not poll.  Managers' server-side objects and mpspawn.dummy
# are built on these.
#
# 2.7's thread lock cannot time out, and threading.Condition.wait(timeout)
# sleeps in steps of up to 50 ms.  Here every blocked thread sleeps on its own
# C SemLock (sem_wait/sem_timedwait with the GIL released; Ctrl-C is
# honoured) and whoever makes progress possible posts it.
# ---------------------------------------------------------------------------

class BrokenBarrierError(RuntimeError):
    """Barrier.wait() on a barrier that is broken, or was reset or aborted
    while this thread waited (threading.BrokenBarrierError on Python 3)."""


try:
    from thread import error as _thread_error
except ImportError:
    _thread_error = RuntimeError

_sleepers = thread_local()


def _thread_sleeper():
    """This thread's semaphore to sleep on until another thread posts it.

    It is at zero whenever its thread is not waiting.  Semaphores are shared
    memory, so a forked child makes its own instead of sharing its parent's.
    """
    entry = getattr(_sleepers, 'entry', None)
    pid = os.getpid()
    if entry is None or entry[0] != pid:
        entry = (pid, anonymous_semaphore(SEM_SEMAPHORE, 0, SEM_VALUE_MAX))
        _sleepers.entry = entry
    return entry[1]


def _post_all(guard, sleepers):
    with guard:
        for sleeper in sleepers:
            sleeper.release()


def _wait_to_acquire(try_acquire, guard, sleepers, timeout):
    """Sleep until ``try_acquire(False)`` succeeds (True) or ``timeout``
    seconds pass (False; None waits forever).  Whoever frees the resource
    posts every sleeper registered in ``sleepers``."""
    sleeper = _thread_sleeper()
    deadline = None if timeout is None else monotonic() + timeout
    with guard:
        sleepers.append(sleeper)
    try:
        # Registered before trying, so a release after a failed try is seen.
        while not try_acquire(False):
            if deadline is None:
                sleeper.acquire(True)
            else:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False
                sleeper.acquire(True, remaining)
        return True
    finally:
        with guard:
            sleepers.remove(sleeper)
        # Nobody posts it any more: absorb the posts that raced with success.
        while sleeper.acquire(False):
            pass


def _lock_timeout(blocking, timeout):
    """Validate acquire(blocking, timeout) as Python 3 does: None to wait
    forever, else the number of seconds (0 for a non-blocking try)."""
    if not blocking:
        if timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return 0
    if timeout is None or timeout == -1:
        return None
    if timeout < 0:
        raise ValueError('timeout value must be positive')
    return timeout


class Lock(object):
    """threading.Lock with acquire(blocking=True, timeout=-1)."""

    __slots__ = ('_lock', '_guard', '_sleepers', '__weakref__')

    def __init__(self):
        self._lock = allocate_lock()
        self._guard = allocate_lock()
        self._sleepers = []

    def acquire(self, blocking=True, timeout=-1):
        if timeout != -1 or not blocking:
            timeout = _lock_timeout(blocking, timeout)
        else:
            timeout = None
        if self._lock.acquire(False):
            return True
        if timeout == 0:
            return False
        return _wait_to_acquire(self._lock.acquire, self._guard, self._sleepers, timeout)

    __enter__ = acquire

    def release(self):
        try:
            self._lock.release()
        except _thread_error:
            raise RuntimeError('release unlocked lock')
        if self._sleepers:
            _post_all(self._guard, self._sleepers)

    def __exit__(self, *exc_info):
        self.release()

    def locked(self):
        return self._lock.locked()

    def __repr__(self):
        return '<%s %s object at %#x>' % (
            'locked' if self.locked() else 'unlocked', type(self).__name__, id(self))


class RLock(object):
    """threading.RLock with acquire(blocking=True, timeout=-1)."""

    __slots__ = ('_block', '_owner', '_count', '__weakref__')

    def __init__(self):
        self._block = Lock()
        self._owner = None
        self._count = 0

    def acquire(self, blocking=True, timeout=-1):
        me = get_ident()
        if self._owner == me:
            self._count += 1
            return True
        if self._block.acquire(blocking, timeout):
            self._owner = me
            self._count = 1
            return True
        return False

    __enter__ = acquire

    def release(self):
        if self._owner != get_ident():
            raise RuntimeError('cannot release un-acquired lock')
        self._count -= 1
        if not self._count:
            self._owner = None
            self._block.release()

    def __exit__(self, *exc_info):
        self.release()

    # What Condition uses to let go of a recursively held lock while waiting.
    def _is_owned(self):
        return self._owner == get_ident()

    def _release_save(self):
        if not self._is_owned():
            raise RuntimeError('cannot release un-acquired lock')
        state = (self._count, self._owner)
        self._count = 0
        self._owner = None
        self._block.release()
        return state

    def _acquire_restore(self, state):
        self._block.acquire()
        self._count, self._owner = state

    def __repr__(self):
        return '<%s %s object owner=%r count=%d at %#x>' % (
            'locked' if self._owner is not None else 'unlocked',
            type(self).__name__, self._owner or 0, self._count, id(self))


class Condition(object):
    """threading.Condition whose wait() returns whether it was notified,
    with wait_for(); works with any lock (also a manager's lock proxy)."""

    def __init__(self, lock=None):
        if lock is None:
            lock = RLock()
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        for name in ('_is_owned', '_release_save', '_acquire_restore'):
            method = getattr(lock, name, None)
            if method is not None:
                setattr(self, name, method)
        self._waiters = []

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc_info):
        return self._lock.__exit__(*exc_info)

    def __repr__(self):
        return '<Condition(%r, %d)>' % (self._lock, len(self._waiters))

    def _release_save(self):
        self._lock.release()

    def _acquire_restore(self, state):
        self._lock.acquire()

    def _is_owned(self):
        locked = getattr(self._lock, 'locked', None)
        if locked is not None:
            return locked()
        if self._lock.acquire(False):
            self._lock.release()
            return False
        return True

    def wait(self, timeout=None):
        if not self._is_owned():
            raise RuntimeError('cannot wait on un-acquired lock')
        sleeper = _thread_sleeper()
        self._waiters.append(sleeper)
        saved = self._release_save()
        notified = False
        try:
            if timeout is None:
                notified = sleeper.acquire(True)
            elif timeout > 0:
                notified = sleeper.acquire(True, timeout)
            else:
                notified = sleeper.acquire(False)
        finally:
            self._acquire_restore(saved)
            if not notified:
                try:
                    self._waiters.remove(sleeper)
                except ValueError:
                    # notify() chose this waiter after the timeout (it runs
                    # under the lock, so its post is done): absorb it.
                    sleeper.acquire(False)
                    notified = True
        return notified

    def wait_for(self, predicate, timeout=None):
        from .util import wait_for_predicate
        return wait_for_predicate(predicate, self.wait, timeout)

    def notify(self, n=1):
        if not self._is_owned():
            raise RuntimeError('cannot notify on un-acquired lock')
        waiters = self._waiters
        chosen = waiters[:n]
        del waiters[:n]
        for sleeper in chosen:
            sleeper.release()

    def notify_all(self):
        self.notify(len(self._waiters))

    notifyAll = notify_all


class Semaphore(object):
    """threading.Semaphore with acquire(blocking, timeout) and release(n)."""

    def __init__(self, value=1):
        if value < 0:
            raise ValueError('semaphore initial value must be >= 0')
        self._cond = Condition(Lock())
        self._value = value

    def _has_value(self):
        return self._value > 0

    def acquire(self, blocking=True, timeout=None):
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        with self._cond:
            if not self._value:
                if not blocking or not self._cond.wait_for(self._has_value, timeout):
                    return False
            self._value -= 1
            return True

    __enter__ = acquire

    def release(self, n=1):
        if n < 1:
            raise ValueError('n must be one or more')
        with self._cond:
            self._value += n
            self._cond.notify(n)

    def __exit__(self, *exc_info):
        self.release()

    def __repr__(self):
        return '<%s at %#x: value=%d>' % (type(self).__name__, id(self), self._value)


class BoundedSemaphore(Semaphore):
    """A Semaphore that may not be released above its initial value."""

    def __init__(self, value=1):
        Semaphore.__init__(self, value)
        self._initial_value = value

    def release(self, n=1):
        if n < 1:
            raise ValueError('n must be one or more')
        with self._cond:
            if self._value + n > self._initial_value:
                raise ValueError('Semaphore released too many times')
            self._value += n
            self._cond.notify(n)

    def __repr__(self):
        return '<%s at %#x: value=%d/%d>' % (
            type(self).__name__, id(self), self._value, self._initial_value)


class Event(object):
    """threading.Event whose wait() returns whether the flag was set."""

    def __init__(self):
        self._cond = Condition(Lock())
        self._flag = False

    def is_set(self):
        return self._flag

    isSet = is_set

    def set(self):
        with self._cond:
            self._flag = True
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self._flag = False

    def wait(self, timeout=None):
        with self._cond:
            if self._flag:
                return True
            return self._cond.wait(timeout)

    def __repr__(self):
        return '<%s at %#x: %s>' % (type(self).__name__, id(self),
                                    'set' if self._flag else 'unset')


class Barrier(object):
    """threading.Barrier: ``parties`` threads meet at wait(); the last to
    arrive runs ``action`` and releases them all.  Reusable."""

    # A cycle fills with waiters, then drains as they leave; reset() and
    # abort() interrupt it.
    _FILLING, _DRAINING, _RESETTING, _BROKEN = 'filling', 'draining', 'resetting', 'broken'

    def __init__(self, parties, action=None, timeout=None):
        if parties < 1:
            raise ValueError('parties must be > 0')
        self._cond = Condition(Lock())
        self._parties = parties
        self._action = action
        self._timeout = timeout
        self._state = self._FILLING
        self._count = 0

    def _cycle_open(self):
        return self._state not in (self._DRAINING, self._RESETTING)

    def _cycle_over(self):
        return self._state != self._FILLING

    def wait(self, timeout=None):
        """Wait for the others; return this thread's arrival index
        (0 .. parties-1).  BrokenBarrierError if the barrier breaks."""
        if timeout is None:
            timeout = self._timeout
        with self._cond:
            # Threads of the previous cycle may still be leaving.
            self._cond.wait_for(self._cycle_open)
            if self._state == self._BROKEN:
                raise BrokenBarrierError()
            index = self._count
            self._count += 1
            try:
                if self._count == self._parties:
                    self._trip()
                else:
                    if not self._cond.wait_for(self._cycle_over, timeout):
                        self._break()
                    if self._state != self._DRAINING:
                        raise BrokenBarrierError()
                return index
            finally:
                self._count -= 1
                if not self._count and self._state in (self._DRAINING, self._RESETTING):
                    self._state = self._FILLING
                    self._cond.notify_all()

    def _trip(self):
        try:
            if self._action is not None:
                self._action()
        except BaseException:
            self._break()
            raise
        self._state = self._DRAINING
        self._cond.notify_all()

    def _break(self):
        self._state = self._BROKEN
        self._cond.notify_all()

    def reset(self):
        """Return to the empty state; current waiters get BrokenBarrierError."""
        with self._cond:
            if self._count:
                if self._state in (self._FILLING, self._BROKEN):
                    self._state = self._RESETTING
            else:
                self._state = self._FILLING
            self._cond.notify_all()

    def abort(self):
        """Break the barrier: current and future waits raise BrokenBarrierError."""
        with self._cond:
            self._break()

    @property
    def parties(self):
        return self._parties

    @property
    def n_waiting(self):
        return self._count if self._state == self._FILLING else 0

    @property
    def broken(self):
        return self._state == self._BROKEN

    def __repr__(self):
        if self.broken:
            return '<%s at %#x: broken>' % (type(self).__name__, id(self))
        return '<%s at %#x: waiters=%d/%d>' % (
            type(self).__name__, id(self), self.n_waiting, self._parties)


_thread_queue_class = None


def thread_queue_class():
    """queue.Queue whose get/put with a timeout sleep on the Condition above
    (2.7's poll in steps of up to 50 ms).  Built on first use: the queue
    module imports threading."""
    global _thread_queue_class
    if _thread_queue_class is None:
        base = queue_module().Queue

        class Queue(base, object):
            __doc__ = base.__doc__

            def __init__(self, maxsize=0):
                base.__init__(self, maxsize)
                self.mutex = allocate_lock()
                self.not_empty = Condition(self.mutex)
                self.not_full = Condition(self.mutex)
                self.all_tasks_done = Condition(self.mutex)

        _thread_queue_class = Queue
    return _thread_queue_class


def make_thread_queue(maxsize=0):
    """A new queue of thread_queue_class() (picklable by name, for registries)."""
    return thread_queue_class()(maxsize)


# -- non-blocking descriptors (os.set_blocking is 3.5+) ----------------------

def set_blocking(fd, blocking):
    import fcntl
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if blocking:
        flags &= ~os.O_NONBLOCK
    else:
        flags |= os.O_NONBLOCK
    fcntl.fcntl(fd, fcntl.F_SETFL, flags)
