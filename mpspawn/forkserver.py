"""The fork server: a clean helper process, started once, that forks each
forkserver child on request.

The parent binds a unix socket at a filesystem path (mode 0600) inside a
private 0700 directory -- never the Linux abstract namespace, which any local
user can reach -- and starts the server with only four descriptors: the
listening socket, the "alive" pipe, the start-up report pipe and the resource
tracker's pipe.  A random key travels down the alive pipe (never through argv,
the environment or a file), followed by what the server must preload.  The
server then lives until the alive pipe reaches end-of-file, which happens when
its parent exits or is killed.

A request: the server sends an HMAC challenge on a fresh random message and
the client must answer with the digest of the key; only then does the server
read the fork request and receive descriptors.  Connections that fail, stall
or send anything malformed are dropped without forking anything, and the
server keeps serving: unauthenticated connections are handled in the
non-blocking event loop, so none of them can hold the server up.

Per child the client sends, with ``reduction.sendfds``: the read end of the
data pipe (preparation data and process object, written by the parent), the
write end of the status pipe (the server writes the child's pid, and later
its exit code, or -N after death by signal N), the resource tracker's pipe,
and the descriptors the process object's pickle refers to by index
(``Popen.duplicate_for_child``).
"""
import errno
import hmac
import os
import struct
import sys

from . import process, resource_tracker, spawn, util, _compat

__all__ = ['ensure_running', 'get_inherited_fds', 'connect_to_new_process',
           'set_forkserver_preload']

MAXFDS_TO_SEND = 256
SIGNED_STRUCT = struct.Struct('q')     # large enough for a pid or an exit code

_AUTHKEY_LENGTH = 32
_LENGTH = struct.Struct('!Q')          # size of the preload data after the key
_FRAME_HEADER = struct.Struct('!i')    # as connection.Connection frames messages
_REQUEST = b'#FORK#'
_REQUEST_LIMIT = 32
# Descriptors sent ahead of the process object's own.
_FIXED_FDS = 3
# An unauthenticated connection is dropped after this long...
_HANDSHAKE_TIMEOUT = 10.0
# ...or when this many are pending (the oldest goes first).
_MAX_PENDING = 64
# How long an authenticated client may take to hand over its descriptors.
_RECEIVE_TIMEOUT = 10.0
# Longer socket paths do not fit in sockaddr_un (108 bytes on Linux, 104
# on macOS): a long TMPDIR is then not used for the socket.
_MAX_SOCKET_PATH = 100
# What preparation data the server applies before preloading (and, for
# '__main__', every key named init_main_*).
_PRELOAD_KEYS = ('sys_path', 'sys_argv', 'dir', 'orig_dir')
_MAIN_PREFIX = 'init_main_'


class ForkServer(object):
    """The parent's handle on its fork server (one per process)."""

    def __init__(self):
        self._lock = _compat.allocate_lock()
        self._preload_modules = ['__main__']
        self._inherited_fds = None
        self._forget_server()
        util.register_after_fork(self, ForkServer._after_fork)

    def _forget_server(self):
        self._forkserver_address = None
        self._forkserver_alive_fd = None
        self._forkserver_pid = None
        self._forkserver_authkey = None
        self._directory = None
        self._finalizer = None

    def _after_fork(self):
        # A forked copy of the owner must not keep the server alive, and
        # starts its own server if it needs one.
        self._lock = _compat.allocate_lock()
        if self._forkserver_alive_fd is not None:
            util.close_fds(self._forkserver_alive_fd)
        if self._finalizer is not None:
            self._finalizer.cancel()
        self._forget_server()

    def _stop(self):
        """Stop the server and wait for it (tests use this)."""
        with self._lock:
            self._stop_unlocked()

    def _stop_unlocked(self):
        if self._forkserver_pid is None:
            return
        pid = self._forkserver_pid
        if self._finalizer is not None:
            self._finalizer()
        try:
            _compat.waitpid(pid, 0)
        except OSError:
            pass
        self._forget_server()

    def set_forkserver_preload(self, modules_names):
        """Modules the next fork server imports once, before forking
        children; '__main__' stands for the parent's main module."""
        if isinstance(modules_names, _compat.string_types) or \
                not all(isinstance(m, _compat.string_types) for m in modules_names):
            raise TypeError('module_names must be a list of strings')
        self._preload_modules = list(modules_names)

    def get_inherited_fds(self):
        """The descriptors a child of the fork server received from its
        parent (None in any other process)."""
        return self._inherited_fds

    def connect_to_new_process(self, fds):
        """Ask the server for a new child that gets ``fds``.

        Returns (status_r, data_w): the child's pid and then its exit code
        arrive on status_r; the preparation data and the process object go
        to data_w.
        """
        if len(fds) + _FIXED_FDS > MAXFDS_TO_SEND:
            raise ValueError('too many fds')
        for attempt in (1, 2):
            self.ensure_running()
            address, authkey = self._forkserver_address, self._forkserver_authkey
            status_r, status_w = _compat.pipe()
            data_r, data_w = _compat.pipe()
            try:
                allfds = [data_r, status_w, resource_tracker.getfd()] + list(fds)
                _send_request(address, authkey, allfds)
                return status_r, data_w
            except (EnvironmentError, EOFError) as exc:
                util.close_fds(status_r, data_w)
                # A server that is dying refuses or drops the connection
                # before it can be reaped: then start a new one and retry.
                if attempt == 2 or not _server_side_gone(exc) or \
                        not self._forget_dead_server():
                    raise
            except BaseException:
                util.close_fds(status_r, data_w)
                raise
            finally:
                util.close_fds(data_r, status_w)

    def _forget_dead_server(self, timeout=5.0):
        """After a failed request: whether the server has ended (it is then
        forgotten, so that the next ensure_running() starts a new one)."""
        with self._lock:
            pid = self._forkserver_pid
            if pid is None:
                return False
            status = _wait_briefly(pid, timeout)
            if status is None:
                return False
            self._report_death(pid, status)
            return True

    def _report_death(self, pid, status):
        sys.stderr.write('mpspawn forkserver: the fork server (pid %d) ended '
                         'unexpectedly (exit code %s); starting a new one\n' % (pid, status))
        self._finalizer()
        self._forget_server()

    def ensure_running(self):
        """Start the fork server unless this process already has one."""
        with self._lock:
            resource_tracker.ensure_running()
            if self._forkserver_pid is not None:
                status = _exit_status(self._forkserver_pid)
                if status is None:
                    return
                self._report_death(self._forkserver_pid, status)
            self._launch()

    def _launch(self):
        import socket
        import tempfile
        # Raised here, before anything is started, if it fails.
        preload = _encode_preload(self._preload_modules)
        authkey = os.urandom(_AUTHKEY_LENGTH)
        tracker_fd = resource_tracker.getfd()
        directory = tempfile.mkdtemp(prefix='pymp-')       # mode 0700
        address = os.path.join(directory, 'forkserver')
        if len(address) > _MAX_SOCKET_PATH:
            os.rmdir(directory)
            directory = tempfile.mkdtemp(prefix='pymp-', dir='/tmp')
            address = os.path.join(directory, 'forkserver')
        cleanup = [directory]
        try:
            listener = _compat.socket_cloexec(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            try:
                listener.bind(address)
                os.chmod(address, 0o600)
                listener.listen(socket.SOMAXCONN)
                alive_r, alive_w = _compat.pipe()
                cleanup.append(alive_w)
                report_r, report_w = _compat.pipe()
                try:
                    fds = [listener.fileno(), alive_r, report_w, tracker_fd]
                    args = list(range(_compat.FIRST_CHILD_FD, _compat.FIRST_CHILD_FD + len(fds)))
                    cmd = spawn.helper_command('forkserver', args, spawn.FORKSERVER_FLAG)
                    pid = _compat.spawn_with_fds(spawn.get_executable(), cmd, fds)
                finally:
                    util.close_fds(alive_r, report_w)
            finally:
                listener.close()
            try:
                _write_all(alive_w, authkey + preload)
                report = _read_to_end(report_r)
            except OSError:
                report = b''
            finally:
                os.close(report_r)
            if not report:
                cleanup.remove(alive_w)
                util.close_fds(alive_w)
                status = _wait_briefly(pid)
                raise RuntimeError(
                    'the fork server failed to start (exit code %s); its error '
                    'output, if any, is above' % (status,))
        except BaseException:
            _shutdown_server(*cleanup)
            raise
        self._forkserver_address = address
        self._forkserver_alive_fd = alive_w
        self._forkserver_pid = pid
        self._forkserver_authkey = authkey
        self._directory = directory
        # After the children are joined at exit (priority < 0): the server
        # reports their exit codes.
        self._finalizer = util.Finalize(self, _shutdown_server, args=(directory, alive_w),
                                        exitpriority=-50)
        _warn_preload_errors(_compat.pickle.loads(report))


def _server_side_gone(exc):
    return isinstance(exc, EOFError) or _compat.errno_of(exc) in (
        errno.ECONNREFUSED, errno.ENOENT, errno.EPIPE, errno.ECONNRESET)


def _exit_status(pid):
    """None while ``pid`` runs, else its exit code (or '?' if unknown)."""
    try:
        done, status = _compat.waitpid(pid, os.WNOHANG)
    except OSError:
        # Not our child (a forked copy of the owner): it may still run.
        return None if _compat.pid_exists(pid) else '?'
    if done == 0:
        return None
    from .popen_fork import _status_to_exitcode
    return _status_to_exitcode(status)


def _wait_briefly(pid, timeout=5.0):
    deadline = _compat.monotonic() + timeout
    while True:
        status = _exit_status(pid)
        if status is not None or _compat.monotonic() > deadline:
            return status
        import time
        time.sleep(0.01)


def _shutdown_server(directory, alive_w=None):
    """Close the alive pipe (the server then exits) and remove the socket's
    directory; the server removes it too when its parent was killed."""
    if alive_w is not None:
        util.close_fds(alive_w)
    import shutil
    shutil.rmtree(directory, ignore_errors=True)


def _encode_preload(modules):
    if modules:
        data = spawn.get_preparation_data('forkserver')
        data = dict((key, value) for key, value in data.items()
                    if key in _PRELOAD_KEYS or
                    (key.startswith(_MAIN_PREFIX) and '__main__' in modules))
    else:
        data = {}
    # The parent's modules of this package (synchronize, queues, ...), which
    # its children's pickles are likely to need: imported once in the server
    # rather than in every child.  They start nothing when imported.
    prefix = spawn.PACKAGE + '.'
    ours = sorted(name for name, module in list(sys.modules.items())
                  if module is not None and name.startswith(prefix))
    blob = _compat.pickle.dumps((list(modules), data, ours), 2)
    return _LENGTH.pack(len(blob)) + blob


def _warn_preload_errors(report):
    for name, error in report.get('errors', ()):
        import warnings
        warnings.warn('fork server: could not preload module %r: %s' % (name, error),
                      RuntimeWarning, stacklevel=2)


def _send_request(address, authkey, fds):
    """Authenticate to the server at ``address`` and hand it ``fds``."""
    import socket
    from . import connection, reduction
    client = _compat.socket_cloexec(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    try:
        client.connect(address)
        conn = connection.Connection(os.dup(client.fileno()))
        try:
            _compat.set_cloexec(conn.fileno())
            connection.answer_challenge(conn, authkey)
            conn.send_bytes(_REQUEST + str(len(fds)).encode('ascii'))
        finally:
            conn.close()
        reduction.sendfds(client, fds)
    finally:
        client.close()


def read_signed(fd):
    """Read one number written by ``write_signed``; EOFError at end of file."""
    data = b''
    while len(data) < SIGNED_STRUCT.size:
        chunk = _compat.retry_on_eintr(os.read, fd, SIGNED_STRUCT.size - len(data))
        if not chunk:
            raise EOFError('unexpected EOF')
        data += chunk
    return SIGNED_STRUCT.unpack(data)[0]


def write_signed(fd, n):
    _write_all(fd, SIGNED_STRUCT.pack(n))


def _write_all(fd, data):
    view = memoryview(data)
    while len(view):
        written = _compat.retry_on_eintr(os.write, fd, view)
        view = view[written:]


def _read_to_end(fd):
    chunks = []
    while True:
        chunk = _compat.retry_on_eintr(os.read, fd, 65536)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def _read_exactly(fd, size):
    data = b''
    while len(data) < size:
        chunk = _compat.retry_on_eintr(os.read, fd, size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# ---------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------

def main(listener_fd, alive_r, report_w, tracker_fd):
    """Run the fork server (in its own interpreter)."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the parent
    util._close_stdin()
    startup = _read_exactly(alive_r, _AUTHKEY_LENGTH + _LENGTH.size)
    if startup is None:
        return                                        # the parent is gone
    authkey = startup[:_AUTHKEY_LENGTH]
    blob = _read_exactly(alive_r, _LENGTH.unpack(startup[_AUTHKEY_LENGTH:])[0])
    if blob is None:
        return
    modules, data, ours = _compat.pickle.loads(blob)
    tracker = resource_tracker._resource_tracker
    tracker._fd = tracker_fd
    errors = _preload(modules, data)
    # What children need, imported once here rather than in each child.
    from . import connection, popen_forkserver, reduction  # noqa: F401
    import hashlib  # noqa: F401
    for name in ours:
        try:
            __import__(name)
        except Exception:
            pass            # only a speed-up: a child needing it will say why
    try:
        _write_all(report_w, _compat.pickle.dumps({'errors': errors}, 2))
    except OSError:
        return                                        # the parent is gone
    finally:
        os.close(report_w)
    _Server(listener_fd, alive_r, authkey).serve_forever()


def _preload(modules, data):
    """Apply the parent's sys.path/argv/cwd, rebuild its __main__ as spawn
    does, import the other modules; return [(module, error text)] of the
    failures (their tracebacks go to stderr)."""
    errors = []
    current = process.current_process()
    current._inheriting = True
    try:
        _try_preload('(sys.path, sys.argv, cwd)', errors, spawn.prepare,
                     dict((k, data[k]) for k in _PRELOAD_KEYS if k in data))
        main_data = dict((k, v) for k, v in data.items() if k.startswith(_MAIN_PREFIX))
        if main_data:
            _try_preload('__main__', errors, spawn.prepare, main_data)
        for name in modules:
            if name != '__main__':
                _try_preload(name, errors, __import__, name)
    finally:
        del current._inheriting
    util._flush_std_streams()
    return errors


def _try_preload(name, errors, func, arg):
    try:
        func(arg)
    except BaseException as exc:
        if _raised_by_bootstrap_check(sys.exc_info()[2]):
            # The main module starts processes while being imported (no
            # __main__ guard): each child will run it again and raise the
            # bootstrapping error itself, as a spawned child does.
            return
        import traceback
        sys.stderr.write('mpspawn forkserver: could not preload %s:\n' % name)
        traceback.print_exc()
        errors.append((name, '%s: %s' % (type(exc).__name__, exc)))


def _raised_by_bootstrap_check(tb):
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is spawn._check_not_importing_main.__code__


class _Drop(Exception):
    """The connection misbehaved: close it, fork nothing."""


class _Handshake(object):
    """An accepted connection on its way through authentication."""

    def __init__(self, sock, challenge, deadline):
        self.sock = sock
        self.fd = sock.fileno()
        self.challenge = challenge
        self.deadline = deadline
        self.authenticated = False
        self._header = b''
        self._size = None
        self._body = b''

    def read_frame(self, limit):
        """The next complete frame, or None until more arrives.  Never reads
        past the frame: descriptors may follow it on the stream."""
        import socket
        while True:
            if self._size is None:
                need = _FRAME_HEADER.size - len(self._header)
            else:
                need = self._size - len(self._body)
            if need:
                try:
                    chunk = self.sock.recv(need)
                except socket.error as exc:
                    if _compat.errno_of(exc) in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                        return None
                    raise _Drop('receive failed: %s' % exc)
                if not chunk:
                    raise _Drop('closed by the client')
            else:
                chunk = b''
            if self._size is None:
                self._header += chunk
                if len(self._header) < _FRAME_HEADER.size:
                    continue
                size, = _FRAME_HEADER.unpack(self._header)
                if size < 0 or size > limit:
                    raise _Drop('bad frame length %d' % size)
                self._size = size
                continue
            self._body += chunk
            if len(self._body) == self._size:
                frame = self._body
                self._header, self._size, self._body = b'', None, b''
                return frame

    def send_frame(self, payload):
        import socket
        data = _FRAME_HEADER.pack(len(payload)) + payload
        try:
            sent = self.sock.send(data)
        except socket.error as exc:
            raise _Drop('send failed: %s' % exc)
        if sent != len(data):
            raise _Drop('client does not read')


class _Server(object):
    """The event loop: accept, authenticate, fork, reap, report."""

    def __init__(self, listener_fd, alive_r, authkey):
        import select
        import signal
        import socket
        self._select = select
        self._signal = signal
        self._listener = socket.fromfd(listener_fd, socket.AF_UNIX, socket.SOCK_STREAM)
        os.close(listener_fd)
        _compat.socket_cloexec(self._listener)
        self._listener.setblocking(False)
        self._address = self._listener.getsockname()
        self._alive_r = alive_r
        self._authkey = authkey
        self._pending = {}          # fd -> _Handshake
        self._status_fds = {}       # child pid -> write end of its status pipe
        self._wake_r, self._wake_w = _compat.pipe()
        _compat.set_blocking(self._wake_r, False)
        _compat.set_blocking(self._wake_w, False)
        self._poller = select.poll()
        for fd in (self._listener.fileno(), alive_r, self._wake_r):
            self._poller.register(fd, select.POLLIN)
        # SIGCHLD wakes the poll through the wakeup descriptor.
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, _ignore_signal)
        from . import connection
        self._connection = connection

    def serve_forever(self):
        try:
            while True:
                self._reap()
                for fd, events in self._wait():
                    if fd == self._alive_r:
                        if not _compat.retry_on_eintr(os.read, fd, 4096):
                            return          # end of file: the parent is gone
                    elif fd == self._wake_r:
                        _drain(fd)
                    elif fd == self._listener.fileno():
                        self._guarded(self._accept)
                    elif fd in self._pending:
                        self._guarded(self._advance, self._pending[fd])
                self._expire()
        finally:
            self._close_all()

    def _guarded(self, handler, *args):
        """A bug met while serving one connection drops that connection, not
        the server."""
        try:
            handler(*args)
        except Exception:
            import traceback
            sys.stderr.write('mpspawn forkserver: internal error (request dropped):\n')
            traceback.print_exc()
            for handshake in args:
                self._drop(handshake)

    def _wait(self):
        timeout = None
        if self._pending:
            first = min(h.deadline for h in self._pending.values())
            timeout = max(0, int((first - _compat.monotonic()) * 1000) + 1)
        try:
            return self._poller.poll(timeout)
        except (self._select.error, OSError) as exc:
            if _compat.is_eintr(exc):
                return []
            raise

    def _reap(self):
        from .popen_fork import _status_to_exitcode
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                return                      # ECHILD: no children
            if pid == 0:
                return
            status_w = self._status_fds.pop(pid, None)
            if status_w is not None:
                try:
                    write_signed(status_w, _status_to_exitcode(status))
                except OSError:
                    pass                    # the parent stopped listening
                os.close(status_w)

    def _accept(self):
        import socket
        for _ in range(_MAX_PENDING):
            try:
                sock, _ = self._listener.accept()
            except socket.error as exc:
                if _compat.errno_of(exc) in (errno.EINTR, errno.ECONNABORTED):
                    continue
                return                      # EAGAIN: nothing more to accept
            _compat.socket_cloexec(sock)
            sock.setblocking(False)
            challenge = os.urandom(self._connection.MESSAGE_LENGTH)
            handshake = _Handshake(sock, challenge, _compat.monotonic() + _HANDSHAKE_TIMEOUT)
            self._pending[handshake.fd] = handshake
            self._poller.register(handshake.fd, self._select.POLLIN)
            try:
                handshake.send_frame(self._connection.CHALLENGE +
                                     self._connection._DIGEST_TAG + challenge)
            except _Drop:
                self._drop(handshake)
                continue
            if len(self._pending) > _MAX_PENDING:
                oldest = min(self._pending.values(), key=lambda h: h.deadline)
                self._drop(oldest)

    def _advance(self, handshake):
        connection = self._connection
        try:
            if not handshake.authenticated:
                digest = handshake.read_frame(len(connection._DIGEST_TAG) + 32)
                if digest is None:
                    return
                expected = connection._DIGEST_TAG + connection._digest(
                    self._authkey, handshake.challenge)
                if not hmac.compare_digest(digest, expected):
                    try:
                        handshake.send_frame(connection.FAILURE)
                    except _Drop:
                        pass
                    raise _Drop('wrong digest')
                handshake.authenticated = True
                handshake.send_frame(connection.WELCOME)
            request = handshake.read_frame(_REQUEST_LIMIT)
            if request is None:
                return
            count = _parse_request(request)
        except _Drop:
            self._drop(handshake)
            return
        self._forget(handshake)
        try:
            fds = self._receive_fds(handshake.sock, count)
        finally:
            handshake.sock.close()
        if fds is not None:
            self._fork(fds)

    def _receive_fds(self, sock, count):
        """The ``count`` descriptors an authenticated client sends, or None.

        If the client fails half way, what did arrive is closed.  2.7.18's
        recvfd raises when a message carries no descriptor; builds without
        that check return a stale number, so anything that is not a new,
        distinct, open descriptor is refused as well.
        """
        from . import reduction
        signal = self._signal
        before = _open_fds()
        # No SIGCHLD handler meanwhile, so no EINTR half way through;
        # children that end now are reaped on the next turn of the loop.
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            sock.setblocking(True)
            _set_socket_timeouts(sock, _RECEIVE_TIMEOUT)
            fds = reduction.recvfds(sock, count)
        except Exception:
            fds = None
        finally:
            signal.signal(signal.SIGCHLD, _ignore_signal)
        if fds is not None and len(set(fds)) == len(fds) and \
                not before.intersection(fds) and all(_is_open(fd) for fd in fds):
            return fds
        # Close what did arrive; restore stdio if a bogus number hit it.
        for fd in _open_fds() - before:
            util.close_fds(fd)
        for fd in (0, 1, 2):
            try:
                _compat.set_cloexec(fd, False)
            except (OSError, IOError):
                pass
        return None

    def _fork(self, fds):
        data_r, status_w, tracker_fd = fds[:_FIXED_FDS]
        inherited = fds[_FIXED_FDS:]
        util._flush_std_streams()
        try:
            pid = os.fork()
        except OSError:
            import traceback
            sys.stderr.write('mpspawn forkserver: could not fork a child:\n')
            traceback.print_exc()
            util.close_fds(*fds)
            return
        if pid == 0:
            code = 1
            try:
                self._become_child(status_w)
                code = _run_child(data_r, tracker_fd, inherited)
            except SystemExit as exc:
                code = process._exit_code_of(exc.code)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                util._flush_std_streams()
                os._exit(code)
        util.close_fds(data_r, tracker_fd, *inherited)
        try:
            write_signed(status_w, pid)
        except OSError:
            pass                            # the parent vanished meanwhile
        self._status_fds[pid] = status_w

    def _become_child(self, status_w):
        """Right after fork: drop everything that belongs to the server."""
        signal = self._signal
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        self._listener.close()
        for handshake in self._pending.values():
            handshake.sock.close()
        self._pending.clear()
        util.close_fds(self._alive_r, self._wake_r, self._wake_w, status_w,
                       *self._status_fds.values())
        self._status_fds.clear()
        _compat.reseed_random_after_fork()

    def _forget(self, handshake):
        self._pending.pop(handshake.fd, None)
        try:
            self._poller.unregister(handshake.fd)
        except (KeyError, ValueError):
            pass

    def _drop(self, handshake):
        self._forget(handshake)
        handshake.sock.close()

    def _expire(self):
        now = _compat.monotonic()
        for handshake in list(self._pending.values()):
            if handshake.deadline <= now:
                self._drop(handshake)

    def _close_all(self):
        for handshake in list(self._pending.values()):
            self._drop(handshake)
        self._listener.close()
        # The parent was killed rather than exiting cleanly: remove the
        # socket and its private directory ourselves.
        for remove, path in ((os.unlink, self._address),
                             (os.rmdir, os.path.dirname(self._address))):
            try:
                remove(path)
            except OSError:
                pass


def _run_child(data_r, tracker_fd, inherited):
    """In a new child of the server: become the parent's process object."""
    tracker = resource_tracker._resource_tracker
    if tracker._fd is not None and tracker._fd != tracker_fd:
        util.close_fds(tracker._fd)
    tracker._fd = tracker_fd
    tracker._pid = None
    tracker._mine = {}
    _forkserver._inherited_fds = list(inherited)
    # The parent holds the data pipe's write end while it lives.
    parent_sentinel = os.dup(data_r)
    _compat.set_cloexec(parent_sentinel)
    code = spawn._main(data_r, parent_sentinel)
    # As at a spawned child's exit: finalizers, then join its own children.
    util._exit_function()
    return code


def _parse_request(frame):
    if not frame.startswith(_REQUEST):
        raise _Drop('not a fork request')
    digits = frame[len(_REQUEST):]
    if not digits.isdigit():
        raise _Drop('bad descriptor count')
    count = int(digits)
    if not _FIXED_FDS <= count <= MAXFDS_TO_SEND:
        raise _Drop('bad descriptor count %d' % count)
    return count


def _set_socket_timeouts(sock, seconds):
    import socket
    timeval = struct.pack('@ll', int(seconds), 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)


def _open_fds():
    # Without the descriptor that listed them.
    return set(fd for fd in _compat.open_fds() if _is_open(fd))


def _is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _drain(fd):
    while True:
        try:
            if not os.read(fd, 4096):
                return
        except OSError as exc:
            if exc.errno != errno.EINTR:
                return


def _ignore_signal(signum, frame):
    pass


_forkserver = ForkServer()
ensure_running = _forkserver.ensure_running
get_inherited_fds = _forkserver.get_inherited_fds
connect_to_new_process = _forkserver.connect_to_new_process
set_forkserver_preload = _forkserver.set_forkserver_preload
