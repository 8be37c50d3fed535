"""Managers: a server process owns Python objects, other processes use them
through proxies (Python 3's ``multiprocessing.managers`` for 2.7).

A manager's server is started through its context (``ctx.Process``), so a
spawn context gives a spawned server.  Every connection to the server is
authenticated with the manager's authkey.  Each thread of a client process
keeps one connection to the server for its method calls; creating, counting
and dropping references use short-lived connections, as in Python 3.

The server-side synchronisation objects are the Python 3 threading objects
of ``_compat`` (timeouts, boolean waits, Barrier); the server stops when the
manager shuts down, is garbage-collected, or its parent process dies.
"""
import errno
import os
import struct
import sys

from . import connection, process, reduction, util, _compat
from .context import ProcessError, get_spawning_popen

__all__ = ['BaseManager', 'SyncManager', 'BaseProxy', 'Token']

_HEADER = struct.Struct('!i')
_BIG_HEADER = struct.Struct('!Q')


# -- what the server and its clients send each other ------------------------------

def _rebuild_as_list(view):
    return list, (list(view),)


# Dictionary views are not picklable: a method returning one sends a list.
for _name in ('viewkeys', 'viewvalues', 'viewitems', 'keys', 'values', 'items'):
    _view_type = type(getattr({}, _name)())
    if _view_type not in (list, type(None)):
        reduction.register(_view_type, _rebuild_as_list)
del _name, _view_type


class Token(object):
    """Names a shared object: its type id, its server's address, its id there."""

    __slots__ = ('typeid', 'address', 'id')

    def __init__(self, typeid, address, id):
        self.typeid = typeid
        self.address = address
        self.id = id

    def __getstate__(self):
        return (self.typeid, self.address, self.id)

    def __setstate__(self, state):
        self.typeid, self.address, self.id = state

    def __repr__(self):
        return '%s(typeid=%r, address=%r, id=%r)' % (
            type(self).__name__, self.typeid, self.address, self.id)


def dispatch(c, id, methodname, args=(), kwds={}):
    """Send a request over connection ``c`` and return the server's answer
    (or raise the error it reports)."""
    c.send((id, methodname, args, kwds))
    kind, result = c.recv()
    if kind == '#RETURN':
        return result
    raise convert_to_error(kind, result)


def convert_to_error(kind, result):
    if kind == '#ERROR':
        return result
    if kind in ('#TRACEBACK', '#UNSERIALIZABLE'):
        if not isinstance(result, _compat.string_types):
            raise TypeError("Result {0!r} (kind '{1}') type is {2}, not str".format(
                result, kind, type(result)))
        if kind == '#UNSERIALIZABLE':
            return RemoteError('Unserializable message: %s\n' % result)
        return RemoteError(result)
    return ValueError('Unrecognized message type {0!r}'.format(kind))


class RemoteError(Exception):
    """An error in the manager's server; the message is its traceback there."""

    def __str__(self):
        return '\n' + '-' * 75 + '\n' + str(self.args[0]) + '-' * 75


def all_methods(obj):
    """The names of the callable attributes of ``obj``."""
    return [name for name in dir(obj) if callable(getattr(obj, name, None))]


def public_methods(obj):
    """The names of the callable attributes of ``obj`` not starting with '_'."""
    return [name for name in all_methods(obj) if name[0] != '_']


def _format_exc():
    import traceback
    return traceback.format_exc()


# -- messages ------------------------------------------------------------------------

class _Channel(object):
    """The messages of one manager connection, read with less work than
    Connection.recv: one read() for a small message instead of two, and the
    C unpickler straight away when no persistent id is in the message.  Same
    wire format and pickling (ForkingPickler) as Connection.send/recv."""

    def __init__(self, conn):
        self.conn = conn
        self._fd = conn.fileno()
        self._pending = b''

    def send(self, obj):
        self.conn._send_bytes(reduction.ForkingPickler.dumps(obj))

    def recv(self):
        data = self._pending
        while len(data) < 4:
            data += self._read(65536, data)
        size, = _HEADER.unpack(data[:4])
        start = 4
        if size < 0:
            if size != -1:
                raise OSError('bad message length')
            while len(data) < 12:
                data += self._read(65536, data)
            size, = _BIG_HEADER.unpack(data[4:12])
            start = 12
        end = start + size
        if len(data) < end:
            chunks = [data]
            have = len(data)
            while have < end:
                chunk = self._read(end - have, True)
                chunks.append(chunk)
                have += len(chunk)
            data = b''.join(chunks)
        self._pending = data[end:]
        body = data[start:end]
        if b'Q' in body:  # a persistent id (BINPERSID) may be present
            return reduction.ForkingPickler.loads(body)
        return _compat.pickle.loads(body)

    def _read(self, size, partial):
        while True:
            try:
                chunk = os.read(self._fd, size)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not chunk:
                if partial:
                    raise OSError('got end of file during message')
                raise EOFError
            return chunk

    def close(self):
        self.conn.close()


def _channel(conn):
    """What the manager protocol sends and receives through on ``conn``: the
    Connection itself when a custom reducer is set (ctx.reducer = ...)."""
    from . import context
    if context._reducer is not None:
        return conn
    return _Channel(conn)


# -- the server ---------------------------------------------------------------------

class _StopEvent(object):
    """Set once to stop serve_forever(); wakes it through a pipe."""

    def __init__(self):
        self._flag = False
        self._read_fd, self._write_fd = _compat.pipe()

    def is_set(self):
        return self._flag

    def set(self):
        if not self._flag:
            self._flag = True
            try:
                os.write(self._write_fd, b'x')
            except OSError:
                pass

    def fileno(self):
        return self._read_fd

    def close(self):
        util.close_fds(self._read_fd, self._write_fd)


class Server(object):
    """The server of a manager: accepts authenticated connections and serves
    each in its own thread."""

    public = ['shutdown', 'create', 'accept_connection', 'get_methods',
              'debug_info', 'number_of_objects', 'dummy', 'incref', 'decref']

    def __init__(self, registry, address, authkey, serializer):
        if not isinstance(authkey, bytes):
            raise TypeError("Authkey {0!r} is type {1!s}, not bytes".format(
                authkey, type(authkey)))
        self.registry = registry
        self.authkey = process.AuthenticationString(authkey)
        Listener, Client = _listener_client(serializer)
        # Each connection is authenticated in its own thread, not here.
        self.listener = Listener(address=address, backlog=16)
        self.address = self.listener.address
        self.id_to_obj = {'0': (None, ())}
        self.id_to_refcount = {}
        self.id_to_local_proxy_obj = {}
        self.mutex = _compat.allocate_lock()
        self.stop_event = None
        # Set by BaseManager's server process: stop when the parent dies.
        self._stop_with_parent = False
        self._clients = set()
        self._threads = set()

    def serve_forever(self):
        """Serve until shutdown is requested (or the parent dies, for a
        manager's own server process); then sys.exit(0)."""
        import threading
        self.stop_event = stop = _StopEvent()
        current = process.current_process()
        current._manager_server = self
        accepter = None
        try:
            accepter = threading.Thread(target=self.accepter, name='manager-accepter')
            accepter.daemon = True
            self._threads.add(accepter)
            accepter.start()
            watched = [stop.fileno()]
            parent = process.parent_process()
            parent_sentinel = getattr(parent, '_sentinel', None)
            if self._stop_with_parent and parent_sentinel is not None:
                watched.append(parent_sentinel)
            try:
                while not stop.is_set():
                    if parent_sentinel in _compat.wait_fds(watched, None):
                        util.info('manager: parent process died; stopping')
                        break
            except (KeyboardInterrupt, SystemExit):
                pass
        finally:
            stop.set()
            self._close_down()
            if accepter is None or not accepter.is_alive():
                stop.close()
            if getattr(current, '_manager_server', None) is self:
                del current._manager_server
        sys.exit(0)

    def _close_down(self):
        """Stop listening (removing a socket file) and end the client threads."""
        try:
            self.listener.close()
        except Exception:
            pass
        with self.mutex:
            clients = list(self._clients)
            threads = list(self._threads)
        for conn in clients:
            _shutdown_socket(conn)
        # Let them finish while the interpreter is whole: 2.7 daemon threads
        # that still run Python code while it shuts down die with garbage
        # errors.  A thread inside a blocking method call stays blocked.
        deadline = _compat.monotonic() + 0.25
        for thread in threads:
            try:
                thread.join(max(0.0, deadline - _compat.monotonic()))
            except RuntimeError:
                pass        # not started yet

    def accepter(self):
        import threading
        stop = self.stop_event
        listening_fd = self.listener._listener._socket.fileno()
        watched = [listening_fd, stop.fileno()]
        while not stop.is_set():
            _compat.wait_fds(watched, None)
            if stop.is_set():
                break
            try:
                c = self.listener.accept()
            except Exception as exc:
                if stop.is_set():
                    break
                util.info('manager: accept() failed: %r', exc)
                import time
                time.sleep(0.05)  # e.g. out of descriptors: do not spin
                continue
            t = threading.Thread(target=self.handle_request, args=(c,))
            t.daemon = True
            with self.mutex:
                self._threads.add(t)
            t.start()

    def _handle_request(self, c):
        request = None
        funcname = None
        try:
            connection.deliver_challenge(c, self.authkey)
            connection.answer_challenge(c, self.authkey)
            request = c.recv()
            ignore, funcname, args, kwds = request
            if funcname not in self.public:
                raise ValueError('%r unrecognized' % (funcname,))
            func = getattr(self, funcname)
        except Exception:
            msg = ('#TRACEBACK', _format_exc())
        else:
            try:
                result = func(c, *args, **kwds)
            except Exception:
                msg = ('#TRACEBACK', _format_exc())
            else:
                if funcname == 'shutdown':
                    return  # answered before stopping
                msg = ('#RETURN', result)
        try:
            c.send(msg)
        except Exception as e:
            try:
                c.send(('#TRACEBACK', _format_exc()))
            except Exception:
                pass
            util.info('Failure to send message: %r', msg)
            util.info(' ... request was %r', request)
            util.info(' ... exception was %r', e)

    def handle_request(self, conn):
        """Authenticate a new connection and run the request it carries."""
        import threading
        try:
            self._handle_request(conn)
        except SystemExit:
            pass
        finally:
            conn.close()
            with self.mutex:
                self._threads.discard(threading.current_thread())

    def serve_client(self, conn):
        """Run method calls from one thread of a client process until it
        disconnects."""
        channel = _channel(conn)
        recv = channel.recv
        send = channel.send
        id_to_obj = self.id_to_obj
        stop = self.stop_event
        with self.mutex:
            self._clients.add(conn)
        try:
            while stop is None or not stop.is_set():
                methodname = obj = None
                try:
                    request = recv()
                except (EOFError, OSError, IOError):
                    return
                try:
                    ident, methodname, args, kwds = request
                    try:
                        obj, exposed, gettypeid = id_to_obj[ident]
                    except KeyError:
                        try:
                            obj, exposed, gettypeid = self.id_to_local_proxy_obj[ident]
                        except KeyError:
                            raise KeyError(ident)
                    if methodname not in exposed:
                        raise AttributeError('method %r of %r object is not in exposed=%r'
                                             % (methodname, type(obj), exposed))
                    function = getattr(obj, methodname)
                    try:
                        res = function(*args, **kwds)
                    except Exception as e:
                        msg = ('#ERROR', e)
                    else:
                        typeid = gettypeid and gettypeid.get(methodname, None)
                        if typeid:
                            rident, rexposed = self.create(conn, typeid, res)
                            token = Token(typeid, self.address, rident)
                            msg = ('#PROXY', (rexposed, token))
                        else:
                            msg = ('#RETURN', res)
                except AttributeError:
                    fallback = self.fallback_mapping.get(methodname)
                    if fallback is None:
                        msg = ('#TRACEBACK', _format_exc())
                    else:
                        try:
                            msg = ('#RETURN', fallback(self, conn, ident, obj, *args, **kwds))
                        except Exception:
                            msg = ('#TRACEBACK', _format_exc())
                except Exception:
                    msg = ('#TRACEBACK', _format_exc())
                try:
                    try:
                        send(msg)
                    except Exception:
                        send(('#UNSERIALIZABLE', _format_exc()))
                except Exception as e:
                    util.info('exception in thread serving %r', conn)
                    util.info(' ... message was %r', msg)
                    util.info(' ... exception was %r', e)
                    return
        finally:
            with self.mutex:
                self._clients.discard(conn)
            conn.close()

    def fallback_getvalue(self, conn, ident, obj):
        return obj

    def fallback_str(self, conn, ident, obj):
        return str(obj)

    def fallback_repr(self, conn, ident, obj):
        return repr(obj)

    fallback_mapping = {
        '__str__': fallback_str,
        '__repr__': fallback_repr,
        '#GETVALUE': fallback_getvalue,
    }

    def dummy(self, c):
        pass

    def debug_info(self, c):
        """A description of every shared object and its reference count."""
        with self.mutex:
            lines = []
            for ident in sorted(self.id_to_refcount):
                if ident != '0':
                    lines.append('  %s:       refcount=%s\n    %s' % (
                        ident, self.id_to_refcount[ident],
                        str(self.id_to_obj[ident][0])[:75]))
            return '\n'.join(lines)

    def number_of_objects(self, c):
        """How many shared objects are referenced."""
        return len(self.id_to_refcount)

    def shutdown(self, c):
        """Answer, then stop the server."""
        try:
            util.debug('manager received shutdown message')
            c.send(('#RETURN', None))
        finally:
            if self.stop_event is not None:
                self.stop_event.set()

    def create(self, c, typeid, *args, **kwds):
        """Make a new shared object of ``typeid``; return (id, exposed)."""
        callable, exposed, method_to_typeid, proxytype = self.registry[typeid]
        if callable is None:
            if kwds or len(args) != 1:
                raise ValueError('Without callable, must have one non-keyword argument')
            obj = args[0]
        else:
            # Outside the mutex: the callable may be slow or use proxies.
            obj = callable(*args, **kwds)
        if exposed is None:
            exposed = public_methods(obj)
        if method_to_typeid is not None:
            if not isinstance(method_to_typeid, dict):
                raise TypeError('Method_to_typeid {0!r}: type {1!s}, not dict'.format(
                    method_to_typeid, type(method_to_typeid)))
            exposed = list(exposed) + list(method_to_typeid)
        ident = '%x' % id(obj)
        util.debug('%r callable returned object with id %r', typeid, ident)
        with self.mutex:
            self.id_to_obj[ident] = (obj, frozenset(exposed), method_to_typeid)
            if ident not in self.id_to_refcount:
                self.id_to_refcount[ident] = 0
        self.incref(c, ident)
        return ident, tuple(exposed)

    def get_methods(self, c, token):
        """The exposed methods of the object named by ``token``."""
        return tuple(self.id_to_obj[token.id][1])

    def accept_connection(self, c, name):
        """Serve method calls on this connection from now on."""
        import threading
        threading.current_thread().name = name
        c.send(('#RETURN', None))
        self.serve_client(c)

    def incref(self, c, ident):
        with self.mutex:
            try:
                self.id_to_refcount[ident] += 1
            except KeyError:
                # Only the server's own proxies (inside other shared
                # objects) still refer to it: track it again.
                if ident not in self.id_to_local_proxy_obj:
                    raise
                self.id_to_refcount[ident] = 1
                self.id_to_obj[ident] = self.id_to_local_proxy_obj[ident]
                util.debug('Server re-enabled tracking & INCREF %r', ident)

    def decref(self, c, ident):
        if ident not in self.id_to_refcount and ident in self.id_to_local_proxy_obj:
            util.debug('Server DECREF skipping %r', ident)
            return
        with self.mutex:
            count = self.id_to_refcount[ident]
            if count <= 0:
                raise AssertionError('Id {0!s} ({1!r}) has refcount {2:n}, not 1+'.format(
                    ident, self.id_to_obj[ident], count))
            if count > 1:
                self.id_to_refcount[ident] = count - 1
                return
            del self.id_to_refcount[ident]
            # Drop the object outside the mutex: freeing it may free proxies
            # it holds, whose decref needs the mutex.
            entry = self.id_to_obj.pop(ident, None)
        util.debug('disposing of obj with id %r', ident)
        del entry


def _shutdown_socket(conn):
    """Wake a thread blocked reading ``conn`` (close() would not)."""
    import socket
    try:
        sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
    except (OSError, IOError, socket.error, ValueError):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except (OSError, IOError, socket.error):
        pass
    finally:
        sock.close()


class State(object):
    __slots__ = ['value']
    INITIAL = 0
    STARTED = 1
    SHUTDOWN = 2


listener_client = {
    'pickle': (connection.Listener, connection.Client),
}


def _listener_client(serializer):
    try:
        return listener_client[serializer]
    except KeyError:
        raise ValueError('unknown serializer %r (mpspawn supports %s)' % (
            serializer, ', '.join(repr(s) for s in sorted(listener_client))))


# -- managers -----------------------------------------------------------------------

def _default_context():
    from .context import _default_context
    return _default_context.get_context()


class BaseManager(object):
    """Base class of managers: start() runs a server process (or connect()
    to a running one); registered type ids become methods that make shared
    objects and return proxies."""

    _registry = {}
    _Server = Server

    def __init__(self, address=None, authkey=None, serializer='pickle', ctx=None, **kwds):
        unknown = set(kwds) - set(['shutdown_timeout'])
        if unknown:
            raise TypeError('__init__() got an unexpected keyword argument %r'
                            % sorted(unknown)[0])
        if authkey is None:
            authkey = process.current_process().authkey
        self._address = address
        self._authkey = process.AuthenticationString(authkey)
        self._state = State()
        self._state.value = State.INITIAL
        self._serializer = serializer
        self._Listener, self._Client = _listener_client(serializer)
        self._ctx = ctx or _default_context()
        self._shutdown_timeout = kwds.get('shutdown_timeout', 1.0)
        self._process = None

    def _check_initial(self):
        if self._state.value == State.INITIAL:
            return
        if self._state.value == State.STARTED:
            raise ProcessError('Already started server')
        if self._state.value == State.SHUTDOWN:
            raise ProcessError('Manager has shut down')
        raise ProcessError('Unknown state {0!r}'.format(self._state.value))

    def get_server(self):
        """A Server for this manager's address, to run with serve_forever()."""
        self._check_initial()
        return self._Server(self._registry, self._address, self._authkey, self._serializer)

    def connect(self):
        """Use the server already running at this manager's address."""
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            dispatch(conn, None, 'dummy')
        finally:
            conn.close()
        self._state.value = State.STARTED

    def start(self, initializer=None, initargs=()):
        """Start a server process (through this manager's context)."""
        self._check_initial()
        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be a callable')
        reader, writer = connection.Pipe(duplex=False)
        try:
            self._process = self._ctx.Process(
                target=type(self)._run_server,
                args=(self._registry, self._address, self._authkey,
                      self._serializer, writer, initializer, initargs))
            ident = ':'.join(str(i) for i in self._process._identity)
            self._process.name = type(self).__name__ + '-' + ident
            try:
                self._process.start()
            finally:
                writer.close()
            self._address = self._receive_address(reader)
        finally:
            reader.close()
        self._state.value = State.STARTED
        self.shutdown = util.Finalize(
            self, type(self)._finalize_manager,
            args=(self._process, self._address, self._authkey, self._state,
                  self._Client, self._shutdown_timeout),
            exitpriority=0)

    def _receive_address(self, reader):
        proc = self._process
        connection.wait([reader, proc.sentinel])
        try:
            if reader.poll():
                return reader.recv()
        except EOFError:
            pass
        proc.join()
        self._process = None
        raise EOFError('the manager server process (%s) exited with code %s before '
                       'reporting its address; its error is on stderr'
                       % (proc.name, proc.exitcode))

    @classmethod
    def _run_server(cls, registry, address, authkey, serializer, writer,
                    initializer=None, initargs=()):
        """The server process: make the server, report its address, serve."""
        import signal
        # Ctrl-C in a terminal reaches the whole process group; the parent
        # decides when the manager stops.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if initializer is not None:
            initializer(*initargs)
        server = cls._Server(registry, address, authkey, serializer)
        server._stop_with_parent = True
        writer.send(server.address)
        writer.close()
        util.info('manager serving at %r', server.address)
        try:
            server.serve_forever()
        finally:
            # Finalizers (its temp dir, its children) run even in a forked
            # server, which leaves through os._exit.
            util._exit_function()

    def _create(self, typeid, *args, **kwds):
        """Ask the server for a new shared object; return (token, exposed)."""
        assert self._state.value == State.STARTED, 'server not yet started'
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            id, exposed = dispatch(conn, None, 'create', (typeid,) + args, kwds)
        finally:
            conn.close()
        return Token(typeid, self._address, id), exposed

    def join(self, timeout=None):
        """Wait for the server process to end."""
        if self._process is not None:
            self._process.join(timeout)
            if not self._process.is_alive():
                self._process = None

    def _call_server(self, name):
        conn = self._Client(self._address, authkey=self._authkey)
        try:
            return dispatch(conn, None, name)
        finally:
            conn.close()

    def _debug_info(self):
        return self._call_server('debug_info')

    def _number_of_objects(self):
        return self._call_server('number_of_objects')

    def __enter__(self):
        if self._state.value == State.INITIAL:
            self.start()
        if self._state.value != State.STARTED:
            if self._state.value == State.SHUTDOWN:
                raise ProcessError('Manager has shut down')
            raise ProcessError('Unable to start server')
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.shutdown()

    def shutdown(self):
        """Stop the server this manager started (replaced by a finalizer in
        start()).  A manager that only connect()ed leaves the server running."""
        if self._state.value == State.STARTED:
            _forget_address(self._address)

    @staticmethod
    def _finalize_manager(process, address, authkey, state, _Client, shutdown_timeout):
        """Stop the server: ask it, then terminate, then kill."""
        if process.is_alive():
            util.info('sending shutdown message to manager')
            try:
                conn = _Client(address, authkey=authkey)
                try:
                    dispatch(conn, None, 'shutdown')
                finally:
                    conn.close()
            except Exception:
                pass
            process.join(timeout=shutdown_timeout)
            if process.is_alive():
                util.info('manager still alive')
                process.terminate()
                process.join(timeout=shutdown_timeout)
                if process.is_alive():
                    util.info('manager still alive after terminate')
                    process.kill()
                    process.join()
        state.value = State.SHUTDOWN
        _forget_address(address)

    @property
    def address(self):
        return self._address

    @classmethod
    def register(cls, typeid, callable=None, proxytype=None, exposed=None,
                 method_to_typeid=None, create_method=True):
        """Make ``typeid`` a type of shared object of this manager class.

        ``callable`` makes the object in the server; ``proxytype`` (default
        AutoProxy) is what clients get; ``exposed`` lists the methods proxies
        may call; ``method_to_typeid`` names methods whose results are
        returned as new shared objects of the given type ids.
        """
        if '_registry' not in cls.__dict__:
            cls._registry = cls._registry.copy()
        if proxytype is None:
            proxytype = AutoProxy
        exposed = exposed or getattr(proxytype, '_exposed_', None)
        method_to_typeid = method_to_typeid or getattr(proxytype, '_method_to_typeid_', None)
        if method_to_typeid:
            for key, value in list(method_to_typeid.items()):
                assert isinstance(key, str), '%r is not a string' % key
                assert isinstance(value, str), '%r is not a string' % value
        cls._registry[typeid] = (callable, exposed, method_to_typeid, proxytype)
        _known_proxytypes[typeid] = proxytype
        if create_method:
            def make_shared(self, *args, **kwds):
                util.debug('requesting creation of a shared %r object', typeid)
                token, exp = self._create(typeid, *args, **kwds)
                return _adopt_reference(proxytype, token, self._serializer, self,
                                        self._authkey, exp, self._Client)
            make_shared.__name__ = typeid
            setattr(cls, typeid, make_shared)


# Proxy types by type id, for proxies made where no manager object exists
# (a method returning a shared object, called in a child process).
_known_proxytypes = {}


def _forget_address(address):
    """Drop this process's cached connection to a server that is gone."""
    with BaseProxy._mutex:
        entry = BaseProxy._address_to_local.pop(address, None)
    if entry is not None:
        tls = entry[0]
        conn = tls.__dict__.pop('connection', None)
        if conn is not None:
            conn.close()


# -- proxies ----------------------------------------------------------------------

class ProcessLocalSet(set):
    """A set that a forked child gets back empty."""

    def __init__(self):
        util.register_after_fork(self, lambda obj: obj.clear())

    def __reduce__(self):
        return type(self), ()



def _adopt_reference(proxytype, token, serializer, manager, authkey, exposed, client):
    """A proxy for the object the server just made (or returned) for us.
    The proxy takes a reference of its own, so the one the server took on
    our behalf is dropped."""
    proxy = proxytype(token, serializer, manager=manager, authkey=authkey,
                      exposed=exposed)
    conn = client(token.address, authkey=authkey)
    try:
        dispatch(conn, None, 'decref', (token.id,))
    finally:
        conn.close()
    return proxy

class BaseProxy(object):
    """Base class of proxies: ``_callmethod(name, args, kwds)`` runs a method
    of the shared object in the server and returns (a copy of) its result."""

    _address_to_local = {}
    _mutex = util.ForkAwareThreadLock()

    def __init__(self, token, serializer, manager=None, authkey=None,
                 exposed=None, incref=True, manager_owned=False):
        with BaseProxy._mutex:
            tls_idset = BaseProxy._address_to_local.get(token.address, None)
            if tls_idset is None:
                tls_idset = util.ForkAwareLocal(), ProcessLocalSet()
                BaseProxy._address_to_local[token.address] = tls_idset
        # This thread's connection to the server at token.address.
        self._tls = tls_idset[0]
        # The ids of that server's objects this process holds references to.
        self._idset = tls_idset[1]
        self._token = token
        self._id = token.id
        self._manager = manager
        self._serializer = serializer
        self._Client = _listener_client(serializer)[1]
        # True for proxies living inside the server (nested shared objects).
        self._owned_by_manager = manager_owned
        if authkey is not None:
            self._authkey = process.AuthenticationString(authkey)
        elif self._manager is not None:
            self._authkey = self._manager._authkey
        else:
            self._authkey = process.current_process().authkey
        if incref:
            self._incref()
        util.register_after_fork(self, BaseProxy._after_fork)

    def _connect(self):
        util.debug('making connection to manager')
        name = util.thread_qualified_process_name()
        conn = self._Client(self._token.address, authkey=self._authkey)
        try:
            dispatch(conn, None, 'accept_connection', (name,))
        except BaseException:
            conn.close()
            raise
        self._tls.connection = _channel(conn)

    def _callmethod(self, methodname, args=(), kwds={}):
        """Call ``methodname`` of the shared object; return a copy of the result."""
        try:
            conn = self._tls.connection
        except AttributeError:
            util.debug('thread does not own a connection')
            self._connect()
            conn = self._tls.connection
        conn.send((self._id, methodname, args, kwds))
        kind, result = conn.recv()
        if kind == '#RETURN':
            return result
        if kind == '#PROXY':
            exposed, token = result
            if self._manager is not None:
                proxytype = self._manager._registry[token.typeid][-1]
            else:
                proxytype = _known_proxytypes.get(token.typeid, AutoProxy)
            token.address = self._token.address
            return _adopt_reference(proxytype, token, self._serializer, self._manager,
                                    self._authkey, exposed, self._Client)
        raise convert_to_error(kind, result)

    def _getvalue(self):
        """A copy of the shared object."""
        return self._callmethod('#GETVALUE')

    def _incref(self):
        if self._owned_by_manager:
            util.debug('owned_by_manager skipped INCREF of %r', self._token.id)
            return
        conn = self._Client(self._token.address, authkey=self._authkey)
        try:
            dispatch(conn, None, 'incref', (self._id,))
        finally:
            conn.close()
        util.debug('INCREF %r', self._token.id)
        self._hold_reference()

    def _hold_reference(self):
        """Count this process's reference (already counted by the server)
        and give it back when the proxy is freed or the process exits."""
        self._idset.add(self._id)
        state = self._manager and self._manager._state
        self._close = util.Finalize(
            self, BaseProxy._decref,
            args=(self._token, self._authkey, state, self._tls, self._idset, self._Client),
            exitpriority=10)

    @staticmethod
    def _decref(token, authkey, state, tls, idset, _Client):
        idset.discard(token.id)
        if state is None or state.value == State.STARTED:
            try:
                util.debug('DECREF %r', token.id)
                conn = _Client(token.address, authkey=authkey)
                try:
                    dispatch(conn, None, 'decref', (token.id,))
                finally:
                    conn.close()
            except Exception as e:
                util.debug('... decref failed %s', e)
        else:
            util.debug('DECREF %r -- manager already shutdown', token.id)
        # No references left to that server: this thread's connection can go.
        if not idset and hasattr(tls, 'connection'):
            util.debug('thread has no more proxies so closing conn')
            tls.connection.close()
            del tls.connection

    def _after_fork(self):
        self._manager = None
        if getattr(self, '_adopted_in', None) == os.getpid():
            # Unpickled in this child with a reference handed over, and the
            # child's start (forkserver) dropped the finalizer returning it.
            self._hold_reference()
            return
        try:
            self._incref()
        except Exception as e:
            # The manager may have shut down.
            util.info('incref failed: %s' % e)

    def __reduce__(self):
        kwds = {}
        if get_spawning_popen() is not None:
            kwds['authkey'] = self._authkey
            if not self._owned_by_manager:
                # The child takes over a reference counted now, so the
                # object lives even if we drop our proxy before the child
                # has started (Python 3 frees it then).
                self._incref_for_child()
                kwds['adopt_reference'] = True
        if getattr(self, '_isauto', False):
            kwds['exposed'] = self._exposed_
            return (RebuildProxy, (AutoProxy, self._token, self._serializer, kwds))
        return (RebuildProxy, (type(self), self._token, self._serializer, kwds))

    def _incref_for_child(self):
        conn = self._Client(self._token.address, authkey=self._authkey)
        try:
            dispatch(conn, None, 'incref', (self._id,))
        finally:
            conn.close()

    def __deepcopy__(self, memo):
        return self._getvalue()

    def __repr__(self):
        return '<%s object, typeid %r at %#x>' % (
            type(self).__name__, self._token.typeid, id(self))

    def __str__(self):
        """The repr of the shared object (or a fallback if that fails)."""
        try:
            return self._callmethod('__repr__')
        except Exception:
            return repr(self)[:-1] + "; '__str__()' failed>"


def RebuildProxy(func, token, serializer, kwds):
    """Unpickle a proxy."""
    server = getattr(process.current_process(), '_manager_server', None)
    adopt = kwds.pop('adopt_reference', False)
    if server and server.address == token.address:
        util.debug('Rebuild a proxy owned by manager, token=%r', token)
        kwds['manager_owned'] = True
        if token.id not in server.id_to_local_proxy_obj:
            server.id_to_local_proxy_obj[token.id] = server.id_to_obj[token.id]
        if adopt:
            # Counted for a child, but unpickled inside the server itself.
            server.decref(None, token.id)
            adopt = False
    inheriting = getattr(process.current_process(), '_inheriting', False)
    incref = kwds.pop('incref', True) and not inheriting and not adopt
    proxy = func(token, serializer, incref=incref, **kwds)
    if adopt:
        proxy._adopted_in = os.getpid()
        proxy._hold_reference()
    return proxy


def _remote_method(name):
    def method(self, *args, **kwds):
        return self._callmethod(name, args, kwds)
    method.__name__ = name
    return method


def MakeProxyType(name, exposed, _cache={}):
    """A proxy class whose methods are those named in ``exposed``."""
    exposed = tuple(exposed)
    try:
        return _cache[(name, exposed)]
    except KeyError:
        pass
    namespace = dict((meth, _remote_method(meth)) for meth in exposed)
    # Picklable by name when assigned to the same name in the caller's module.
    namespace['__module__'] = sys._getframe(1).f_globals.get('__name__', __name__)
    ProxyType = type(str(name), (BaseProxy,), namespace)
    ProxyType._exposed_ = exposed
    _cache[(name, exposed)] = ProxyType
    return ProxyType


def AutoProxy(token, serializer, manager=None, authkey=None,
              exposed=None, incref=True, manager_owned=False):
    """A proxy for ``token`` exposing the methods the server reports."""
    if authkey is None and manager is not None:
        authkey = manager._authkey
    if authkey is None:
        authkey = process.current_process().authkey
    if exposed is None:
        conn = _listener_client(serializer)[1](token.address, authkey=authkey)
        try:
            exposed = dispatch(conn, None, 'get_methods', (token,))
        finally:
            conn.close()
    ProxyType = MakeProxyType('AutoProxy[%s]' % token.typeid, exposed)
    proxy = ProxyType(token, serializer, manager=manager, authkey=authkey,
                      incref=incref, manager_owned=manager_owned)
    proxy._isauto = True
    return proxy


# -- shared object types of SyncManager ---------------------------------------------

class Namespace(object):
    """An object whose attributes are set by keyword."""

    def __init__(self, **kwds):
        self.__dict__.update(kwds)

    def __repr__(self):
        items = ['%s=%r' % (name, value) for name, value in self.__dict__.items()
                 if not name.startswith('_')]
        items.sort()
        return '%s(%s)' % (type(self).__name__, ', '.join(items))


class Value(object):
    """A value with get()/set() and a ``value`` property."""

    def __init__(self, typecode, value, lock=True):
        self._typecode = typecode
        self._value = value

    def get(self):
        return self._value

    def set(self, value):
        self._value = value

    def __repr__(self):
        return '%s(%r, %r)' % (type(self).__name__, self._typecode, self._value)

    value = property(get, set)


def Array(typecode, sequence, lock=True):
    import array
    return array.array(typecode, sequence)


def _make_pool(*args, **kwds):
    """A Pool in the server (pool.py is imported only when one is made)."""
    from .pool import Pool
    return Pool(*args, **kwds)


# -- proxy types of SyncManager -------------------------------------------------

class IteratorProxy(BaseProxy):
    _exposed_ = ('next', '__next__', 'send', 'throw', 'close')

    def __iter__(self):
        return self

    def __next__(self, *args):
        return self._callmethod('next', args)

    next = __next__

    def send(self, *args):
        return self._callmethod('send', args)

    def throw(self, *args):
        return self._callmethod('throw', args)

    def close(self, *args):
        return self._callmethod('close', args)


class AcquirerProxy(BaseProxy):
    _exposed_ = ('acquire', 'release')

    def acquire(self, blocking=True, timeout=None):
        args = (blocking,) if timeout is None else (blocking, timeout)
        return self._callmethod('acquire', args)

    def release(self):
        return self._callmethod('release')

    def __enter__(self):
        return self._callmethod('acquire')

    def __exit__(self, exc_type, exc_val, exc_tb):
        return self._callmethod('release')


class ConditionProxy(AcquirerProxy):
    _exposed_ = ('acquire', 'release', 'wait', 'notify', 'notify_all')

    def wait(self, timeout=None):
        return self._callmethod('wait', (timeout,))

    def notify(self, n=1):
        return self._callmethod('notify', (n,))

    def notify_all(self):
        return self._callmethod('notify_all')

    def wait_for(self, predicate, timeout=None):
        """Wait until ``predicate()`` (evaluated here) is true."""
        return util.wait_for_predicate(predicate, self.wait, timeout)


class EventProxy(BaseProxy):
    _exposed_ = ('is_set', 'set', 'clear', 'wait')

    def is_set(self):
        return self._callmethod('is_set')

    def set(self):
        return self._callmethod('set')

    def clear(self):
        return self._callmethod('clear')

    def wait(self, timeout=None):
        return self._callmethod('wait', (timeout,))


class BarrierProxy(BaseProxy):
    _exposed_ = ('__getattribute__', 'wait', 'abort', 'reset')

    def wait(self, timeout=None):
        return self._callmethod('wait', (timeout,))

    def abort(self):
        return self._callmethod('abort')

    def reset(self):
        return self._callmethod('reset')

    @property
    def parties(self):
        return self._callmethod('__getattribute__', ('parties',))

    @property
    def n_waiting(self):
        return self._callmethod('__getattribute__', ('n_waiting',))

    @property
    def broken(self):
        return self._callmethod('__getattribute__', ('broken',))


class NamespaceProxy(BaseProxy):
    _exposed_ = ('__getattribute__', '__setattr__', '__delattr__')

    def __getattr__(self, key):
        if key[0] == '_':
            return object.__getattribute__(self, key)
        callmethod = object.__getattribute__(self, '_callmethod')
        return callmethod('__getattribute__', (key,))

    def __setattr__(self, key, value):
        if key[0] == '_':
            return object.__setattr__(self, key, value)
        callmethod = object.__getattribute__(self, '_callmethod')
        return callmethod('__setattr__', (key, value))

    def __delattr__(self, key):
        if key[0] == '_':
            return object.__delattr__(self, key)
        callmethod = object.__getattribute__(self, '_callmethod')
        return callmethod('__delattr__', (key,))


class ValueProxy(BaseProxy):
    _exposed_ = ('get', 'set')

    def get(self):
        return self._callmethod('get')

    def set(self, value):
        return self._callmethod('set', (value,))

    value = property(get, set)


BaseListProxy = MakeProxyType('BaseListProxy', (
    '__add__', '__contains__', '__delitem__', '__getitem__', '__len__',
    '__mul__', '__reversed__', '__rmul__', '__setitem__',
    'append', 'count', 'extend', 'index', 'insert', 'pop', 'remove',
    'reverse', 'sort', '__imul__'))


class ListProxy(BaseListProxy):
    def __iadd__(self, value):
        self._callmethod('extend', (value,))
        return self

    def __imul__(self, value):
        self._callmethod('__imul__', (value,))
        return self


DictProxy = MakeProxyType('DictProxy', (
    '__contains__', '__delitem__', '__getitem__', '__iter__', '__len__',
    '__setitem__', 'clear', 'copy', 'get', 'items',
    'keys', 'pop', 'popitem', 'setdefault', 'update', 'values'))
DictProxy._method_to_typeid_ = {'__iter__': 'Iterator'}


ArrayProxy = MakeProxyType('ArrayProxy', ('__len__', '__getitem__', '__setitem__'))


BasePoolProxy = MakeProxyType('PoolProxy', (
    'apply', 'apply_async', 'close', 'imap', 'imap_unordered', 'join',
    'map', 'map_async', 'starmap', 'starmap_async', 'terminate'))
BasePoolProxy._method_to_typeid_ = {
    'apply_async': 'AsyncResult',
    'map_async': 'AsyncResult',
    'starmap_async': 'AsyncResult',
    'imap': 'Iterator',
    'imap_unordered': 'Iterator',
}


class PoolProxy(BasePoolProxy):
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()


class SyncManager(BaseManager):
    """A manager of the objects threads synchronise with (their Python 3
    threading versions), plus dict, list, Namespace, Value, Array and Pool.

    ``mpspawn.Manager()`` returns a started instance.
    """


SyncManager.register('Queue', _compat.make_thread_queue)
SyncManager.register('JoinableQueue', _compat.make_thread_queue)
SyncManager.register('Event', _compat.Event, EventProxy)
SyncManager.register('Lock', _compat.Lock, AcquirerProxy)
SyncManager.register('RLock', _compat.RLock, AcquirerProxy)
SyncManager.register('Semaphore', _compat.Semaphore, AcquirerProxy)
SyncManager.register('BoundedSemaphore', _compat.BoundedSemaphore, AcquirerProxy)
SyncManager.register('Condition', _compat.Condition, ConditionProxy)
SyncManager.register('Barrier', _compat.Barrier, BarrierProxy)
SyncManager.register('Pool', _make_pool, PoolProxy)
SyncManager.register('list', list, ListProxy)
SyncManager.register('dict', dict, DictProxy)
SyncManager.register('Value', Value, ValueProxy)
SyncManager.register('Array', Array, ArrayProxy)
SyncManager.register('Namespace', Namespace, NamespaceProxy)

# Types returned by methods of other proxies.
SyncManager.register('Iterator', proxytype=IteratorProxy, create_method=False)
SyncManager.register('AsyncResult', create_method=False)
