"""Pickling for queues, pipes and children: cPickle (protocol 2) with extra
reducers, descriptor passing, and errors that say where an unpicklable object
sits.

2.7's cPickle has no per-pickler dispatch table.  ``ForkingPickler.register``
reducers are applied through cPickle's ``inst_persistent_id`` hook, which is
consulted only for objects that are not of a built-in type, so plain data
pickles at full cPickle speed.  Bound methods, classmethods and method
descriptors, unpicklable on 2.7, are made picklable through ``copy_reg``.
"""
import os
import sys
import types

from . import context
from . import _compat
from ._compat import pickle, copyreg, BytesIO

__all__ = ['send_handle', 'recv_handle', 'ForkingPickler', 'register', 'dump',
           'DupFd', 'sendfds', 'recvfds', 'HAVE_SEND_HANDLE']

# 2.7 builds _multiprocessing.sendfd/recvfd on every POSIX platform; the
# precise check (which imports the C module) is done where fds are passed.
HAVE_SEND_HANDLE = not _compat.IS_WINDOWS
DEFAULT_PROTOCOL = _compat.PICKLE_PROTOCOL


def _rebuild_registered(rebuild, args):
    return rebuild(*args)


class ForkingPickler(object):
    """A pickler that also applies the reducers given to ``register``."""

    _extra_reducers = {}

    def __init__(self, file, protocol=None):
        self._check_pending_reducers()
        self._pickler = pickle.Pickler(file, DEFAULT_PROTOCOL if protocol is None else protocol)
        self._pickler.inst_persistent_id = self._persistent_id

    @staticmethod
    def _check_pending_reducers():
        if _socket_reducer_pending and 'socket' in sys.modules:
            _register_socket_reducer_once()
        if _foreign_types_pending and 'multiprocessing' in sys.modules:
            _register_foreign_reducers()

    @classmethod
    def _persistent_id(cls, obj):
        reduce = cls._extra_reducers.get(type(obj))
        if reduce is None:
            return None
        return reduce(obj)

    def dump(self, obj):
        self._pickler.dump(obj)

    @classmethod
    def register(cls, type, reduce):
        """Pickle objects of exactly ``type`` as ``reduce(obj)`` -> (rebuild, args)."""
        cls._extra_reducers[type] = reduce

    @classmethod
    def dumps(cls, obj, protocol=None):
        if cls is ForkingPickler and protocol is None:
            # The common case in one frame: this thread's pickler, reused.
            slot = getattr(_reusable, 'slot', None)
            if (slot is None or (_socket_reducer_pending and 'socket' in sys.modules) or
                    (_foreign_types_pending and 'multiprocessing' in sys.modules)):
                slot = _new_reusable_slot()
            if slot is not False:
                _reusable.slot = False  # in use (a reducer may call dumps)
                pickler, buf = slot
                data = None
                try:
                    pickler.dump(obj)
                    data = buf.getvalue()
                finally:
                    pickler.clear_memo()
                    buf.seek(0)
                    buf.truncate()
                    # Kept unless pickling failed or the buffer grew big.
                    keep = data is not None and len(data) < _REUSE_LIMIT
                    _reusable.slot = slot if keep else None
                return data
        buf = BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getvalue()

    @staticmethod
    def loads(data):
        # Without a persistent-id opcode (PERSID 'P', BINPERSID 'Q') plain
        # cPickle.loads gives the same result at half the cost; scanning is
        # only worth it for small messages.
        if len(data) < _SCAN_LIMIT and b'Q' not in data and b'P' not in data:
            return pickle.loads(data)
        unpickler = pickle.Unpickler(BytesIO(data))
        unpickler.persistent_load = _persistent_load
        return unpickler.load()

    @staticmethod
    def load(file):
        unpickler = pickle.Unpickler(file)
        unpickler.persistent_load = _persistent_load
        return unpickler.load()


def _persistent_load(pid):
    rebuild, args = pid
    return rebuild(*args)


# Making a cPickle Pickler costs more than pickling a small message, so each
# thread keeps one (with its buffer) for ForkingPickler.dumps.
_SCAN_LIMIT = 4096
_REUSE_LIMIT = 1 << 16
_reusable = _compat.thread_local()


def _new_reusable_slot():
    """A (cPickle pickler, buffer) for this thread, or False if the
    thread's own is in use."""
    if getattr(_reusable, 'slot', None) is False:
        return False
    buf = BytesIO()
    return (ForkingPickler(buf)._pickler, buf)


register = ForkingPickler.register
loads = ForkingPickler.loads
load = ForkingPickler.load


def dump(obj, file, protocol=None):
    """Pickle ``obj`` to ``file`` with ForkingPickler."""
    ForkingPickler(file, protocol).dump(obj)


def dumps(obj, protocol=None):
    return ForkingPickler.dumps(obj, protocol)


# -- what 2.7 cannot pickle but Python 3 can ---------------------------------

def _reduce_method(method):
    owner = method.__self__
    if owner is None:       # unbound method: a plain attribute of the class
        owner = method.im_class
    return getattr, (owner, method.__func__.__name__)


def _reduce_method_descriptor(descriptor):
    return getattr, (descriptor.__objclass__, descriptor.__name__)


def _reduce_function(func):
    """Functions cPickle could not find by module and name (it asks the
    reducers only then): static methods are found in their class, as Python
    3 finds them by qualified name; anything else gets a clear error."""
    module = sys.modules.get(func.__module__)
    found = _find_in_classes(vars(module) if module is not None else {}, func, 3)
    if found is not None:
        return getattr, found
    raise _compat.pickling_error_class()(
        "Can't pickle %r: it is not reachable as %s.%s (a lambda, a nested "
        "function or a function stored elsewhere cannot be pickled; define it "
        "at the top level of a module)" % (func, func.__module__, func.__name__))


def _find_in_classes(namespace, func, depth):
    for value in list(namespace.values()):
        if not isinstance(value, _compat.class_types):
            continue
        for attr, member in list(vars(value).items()):
            if isinstance(member, staticmethod) and member.__get__(None, value) is func:
                return (value, attr)
        if depth > 1:
            found = _find_in_classes(vars(value), func, depth - 1)
            if found is not None:
                return found
    return None


copyreg.pickle(types.MethodType, _reduce_method)
copyreg.pickle(type(list.append), _reduce_method_descriptor)
copyreg.pickle(type(int.__add__), _reduce_method_descriptor)
register(types.FunctionType, _reduce_function)


# -- descriptors --------------------------------------------------------------

def sendfds(sock, fds):
    """Send the descriptors ``fds`` over the AF_UNIX socket ``sock``."""
    fds = list(fds)
    header = ('%d\n' % len(fds)).encode('ascii')
    sock.sendall(header)
    for fd in fds:
        _compat.sendfd(sock.fileno(), fd)
    if _compat.IS_DARWIN:
        # macOS may drop descriptors still in flight when the sender closes.
        if sock.recv(1) != b'A':
            raise RuntimeError('did not receive acknowledgement of fds')


def recvfds(sock, size):
    """Receive ``size`` descriptors sent by ``sendfds`` (close-on-exec)."""
    header = b''
    while not header.endswith(b'\n'):
        chunk = sock.recv(1)
        if not chunk:
            raise EOFError('connection closed while receiving descriptors')
        header += chunk
        if len(header) > 12:
            raise RuntimeError('bad descriptor count header %r' % header)
    count = int(header)
    if count != size:
        raise RuntimeError('expected %d descriptors, got %d' % (size, count))
    fds = [_compat.recvfd(sock.fileno()) for _ in range(count)]
    if _compat.IS_DARWIN:
        sock.sendall(b'A')
    return fds


def _socket_of_connection(conn):
    import socket
    return socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)


def send_handle(conn, handle, destination_pid):
    """Send the descriptor ``handle`` through the unix-socket connection ``conn``."""
    sock = _socket_of_connection(conn)
    try:
        sendfds(sock, [handle])
    finally:
        sock.close()


def recv_handle(conn):
    """Receive a descriptor sent with ``send_handle``."""
    sock = _socket_of_connection(conn)
    try:
        return recvfds(sock, 1)[0]
    finally:
        sock.close()


def DupFd(fd):
    """An object that, unpickled in another process, gives a duplicate of
    ``fd`` there: passed by the spawning Popen's own means, or fetched from
    this process's resource sharer."""
    popen = context.get_spawning_popen()
    if popen is not None:
        return popen.DupFd(popen.duplicate_for_child(fd))
    if HAVE_SEND_HANDLE:
        from . import resource_sharer
        return resource_sharer.DupFd(fd)
    raise ValueError('SCM_RIGHTS appears not to be available')


# -- sockets -------------------------------------------------------------------

def _reduce_socket(sock):
    return _rebuild_socket, (DupFd(sock.fileno()), sock.family, sock.type, sock.proto)


def _rebuild_socket(dupfd, family, type, proto):
    import socket
    fd = dupfd.detach()
    try:
        sock = socket.fromfd(fd, family, type, proto)
    finally:
        os.close(fd)  # fromfd duplicated it
    return sock


def _register_socket_reducer():
    import socket
    # 2.7's socket.socketpair() gives bare _socket.socket objects
    # (socket._realsocket), which cPickle would otherwise pickle as an empty,
    # closed socket.
    for cls in set([socket.socket, getattr(socket, '_socketobject', socket.socket),
                    getattr(socket, '_realsocket', socket.socket)]):
        register(cls, _reduce_socket)


_socket_reducer_pending = True


def _register_socket_reducer_once():
    """Sockets can only exist once the socket module is imported, so the
    reducer is registered then (importing socket costs ~5 ms)."""
    global _socket_reducer_pending
    if _socket_reducer_pending and 'socket' in sys.modules:
        _socket_reducer_pending = False
        _register_socket_reducer()


# -- objects of 2.7's own multiprocessing package ----------------------------

# Their own refusal ("... should only be shared between processes through
# inheritance") does not say what to do instead.  Registered once each module
# is imported, so a program that never imports 2.7's package pays nothing.
_FOREIGN_TYPES = {
    'multiprocessing.synchronize': ('Lock', 'RLock', 'Semaphore', 'BoundedSemaphore',
                                    'Condition', 'Event'),
    'multiprocessing.queues': ('Queue', 'JoinableQueue', 'SimpleQueue'),
    'multiprocessing.sharedctypes': ('Synchronized', 'SynchronizedArray',
                                     'SynchronizedString'),
    '_multiprocessing': ('Connection',),
}
_MPSPAWN_EQUIVALENT = {'Synchronized': 'Value', 'SynchronizedArray': 'Array',
                       'SynchronizedString': 'Array', 'Connection': 'Pipe'}
_foreign_types_pending = dict(_FOREIGN_TYPES)


def _register_foreign_reducers():
    for module_name in list(_foreign_types_pending):
        module = sys.modules.get(module_name)
        if module is None:
            continue
        for name in _foreign_types_pending.pop(module_name):
            cls = getattr(module, name, None)
            if isinstance(cls, type):
                register(cls, _refuse_foreign_object)


def _refuse_foreign_object(obj):
    kind = type(obj)
    factory = _MPSPAWN_EQUIVALENT.get(kind.__name__, kind.__name__)
    raise TypeError(
        "%s.%s is an object of Python 2.7's own multiprocessing package; processes "
        "started by mpspawn cannot use it. Create it from mpspawn instead "
        "(mpspawn.%s(), or %s() of the context that starts the process)"
        % (kind.__module__, kind.__name__, factory, factory))


# -- where is the unpicklable object? -----------------------------------------

def _try_pickle(obj):
    try:
        ForkingPickler.dumps(obj)
    except Exception as exc:
        return exc
    return None


def _children_of(obj, path):
    """(sub-object, path) pairs of the places pickling ``obj`` descends into."""
    if isinstance(obj, dict):
        for key, value in list(obj.items()):
            yield key, '%s[%r] (key)' % (path, key)
            yield value, '%s[%r]' % (path, key)
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield value, '%s[%d]' % (path, i)
    elif isinstance(obj, (set, frozenset)):
        for value in obj:
            yield value, '%s{%r}' % (path, value)
    elif _pickles_its_attributes(obj):
        state = getattr(obj, '__dict__', None)
        if isinstance(state, dict):
            for key, value in list(state.items()):
                yield value, '%s.%s' % (path, key)
        for slot in getattr(type(obj), '__slots__', ()) or ():
            if isinstance(slot, _compat.string_types) and hasattr(obj, slot):
                yield getattr(obj, slot), '%s.%s' % (path, slot)


_CUSTOM_PICKLING = ('__reduce__', '__reduce_ex__', '__getstate__', '__getinitargs__')


def _pickles_its_attributes(obj):
    """Whether pickling ``obj`` pickles its attributes as they are.  An object
    with its own reduction (a lock that refuses, or pickles only a name) is
    itself the culprit, not some attribute it never pickles."""
    if type(obj) in ForkingPickler._extra_reducers:
        return False
    mro = getattr(getattr(obj, '__class__', None), '__mro__', None)
    if mro is None:         # an instance of a 2.7 old-style class
        return not any(hasattr(obj, name) for name in _CUSTOM_PICKLING[2:])
    return not any(name in vars(klass) for klass in mro[:-1] for name in _CUSTOM_PICKLING)


def locate_unpicklable(obj, path, depth=0):
    """(path, error, culprit) for the innermost object under ``obj`` that
    cannot be pickled, the path written like ``args[0]['b']``; None if ``obj``
    pickles."""
    error = _try_pickle(obj)
    if error is None:
        return None
    if depth < 20:
        for child, child_path in _children_of(obj, path):
            if child is obj:
                continue
            found = locate_unpicklable(child, child_path, depth + 1)
            if found is not None:
                return found
    return path, error, obj


def explain_pickling_error(error, parts):
    """Re-raise ``error`` (raised while pickling) naming where the culprit is.

    ``parts`` is a list of (name, object) that were being pickled, e.g.
    [('target', f), ('args', args), ('kwargs', kwargs)].  The exception keeps
    its type, so code catching PicklingError/TypeError still works.
    """
    for name, obj in parts:
        found = locate_unpicklable(obj, name)
        if found is not None:
            where, inner, culprit = found
            kind = type(culprit)
            message = '%s (the unpicklable object is %s, of type %s.%s)' % (
                inner, where, kind.__module__, kind.__name__)
            kind = type(inner)
            if issubclass(kind, pickle.PicklingError):
                kind = _compat.pickling_error_class()
            try:
                new = kind(message)
            except Exception:
                new = TypeError(message)
            _compat.reraise_with_context(new, error)
    raise error
