"""Connections: Pipe(), Listener/Client over AF_UNIX and AF_INET with HMAC
authentication, and wait() on connections, sockets and process sentinels.

Messages are framed as Python 3 frames them (a 4-byte big-endian length, or
-1 followed by an 8-byte length for huge ones).  Waiting uses poll(), so
descriptors above FD_SETSIZE work and Ctrl-C interrupts a wait at once.
"""
import errno
import hmac
import os
import struct

from . import context, reduction, util, _compat
from .context import AuthenticationError, BufferTooShort

__all__ = ['Client', 'Listener', 'Pipe', 'wait']

BUFSIZE = 8192
CONNECTION_TIMEOUT = 20.
# Messages below this size go out in a single write with their header.
_SMALL_MESSAGE = 16384
_HEADER = struct.Struct('!i')
_BIG_HEADER = struct.Struct('!Q')

default_family = 'AF_UNIX'
families = ['AF_INET', 'AF_UNIX']


def _init_timeout(timeout=CONNECTION_TIMEOUT):
    return _compat.monotonic() + timeout


def _check_timeout(t):
    return _compat.monotonic() > t


def arbitrary_address(family):
    """A fresh address of ``family`` to listen on."""
    if family == 'AF_INET':
        return ('localhost', 0)
    if family == 'AF_UNIX':
        import tempfile
        return tempfile.mktemp(prefix='listener-', dir=util.get_temp_dir())
    raise ValueError('unrecognized family')


def _validate_family(family):
    if family not in families:
        raise ValueError('Family %s is not recognized.' % family)


def address_type(address):
    """'AF_INET' for (host, port), 'AF_UNIX' for a path string."""
    if type(address) == tuple:
        return 'AF_INET'
    if isinstance(address, _compat.string_types) or isinstance(address, bytes):
        return 'AF_UNIX'
    # Python 3 raises TypeError for what is neither a tuple nor a string.
    raise TypeError('address type of %r unrecognized' % (address,))


class _ConnectionBase(object):
    _handle = None

    def __init__(self, handle, readable=True, writable=True):
        handle = handle.__index__()
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError("at least one of `readable` and `writable` must be True")
        self._handle = handle
        self._readable = readable
        self._writable = writable

    def __del__(self):
        if self._handle is not None:
            self._close()

    def _check_closed(self):
        if self._handle is None:
            raise OSError("handle is closed")

    def _check_readable(self):
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if not self._writable:
            raise OSError("connection is read-only")

    def _bad_message_length(self):
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    @property
    def closed(self):
        """True if the connection is closed."""
        return self._handle is None

    @property
    def readable(self):
        return self._readable

    @property
    def writable(self):
        return self._writable

    def fileno(self):
        """The descriptor of the connection."""
        self._check_closed()
        return self._handle

    def close(self):
        """Close the connection."""
        if self._handle is not None:
            try:
                self._close()
            finally:
                self._handle = None

    def send_bytes(self, buf, offset=0, size=None):
        """Send the bytes of a buffer object as one message."""
        self._check_closed()
        self._check_writable()
        view, n = _compat.byte_view(buf)
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        if offset or size != n:
            view = view[offset:offset + size]
        self._send_bytes(view)

    def send(self, obj):
        """Send a picklable object."""
        self._check_closed()
        self._check_writable()
        self._send_bytes(context._reducer_module().ForkingPickler.dumps(obj))

    def recv_bytes(self, maxlength=None):
        """Receive one message as bytes."""
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._recv_bytes(maxlength)
        if data is None:
            self._bad_message_length()
        return data

    def recv_bytes_into(self, buf, offset=0):
        """Receive one message into the writable buffer ``buf`` at byte
        ``offset``; return its size.  BufferTooShort (carrying the message)
        if it does not fit."""
        self._check_closed()
        self._check_readable()
        if offset < 0:
            raise ValueError("negative offset")
        size = _compat.writable_size(buf)
        if offset > size:
            raise ValueError("offset too large")
        data = self._recv_bytes()
        if offset + len(data) > size:
            raise BufferTooShort(data)
        _compat.write_into(buf, offset, data)
        return len(data)

    def recv(self):
        """Receive an object sent with send()."""
        self._check_closed()
        self._check_readable()
        return context._reducer_module().ForkingPickler.loads(self._recv_bytes())

    def poll(self, timeout=0.0):
        """Whether there is data to read, waiting up to ``timeout`` seconds
        (forever if None)."""
        self._check_closed()
        self._check_readable()
        return self._poll(timeout)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def __reduce__(self):
        return _rebuild_connection, (reduction.DupFd(self.fileno()),
                                     type(self), self._readable, self._writable)


# os.read allocates what it is asked for: asking a pipe for more than it can
# hold would map and unmap that much memory on every call.
_READ_CHUNK = 1 << 16


def read_exact(fd, size, chunks=None, before_read=None):
    """``size`` more bytes from ``fd``, joined after ``chunks``.  EOFError at
    end of file before any byte (``chunks`` included), OSError at end of file
    in the middle.  ``before_read()``, if given, runs before every read."""
    chunks = chunks or []
    remaining = size
    while remaining > 0:
        if before_read is not None:
            before_read()
        try:
            chunk = os.read(fd, min(remaining, _READ_CHUNK))
        except OSError as exc:
            if exc.errno == errno.EINTR:
                continue
            raise
        if not chunk:
            if remaining == size and not chunks:
                raise EOFError
            raise OSError('got end of file during message')
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b''.join(chunks)


def _rebuild_connection(dupfd, kind, readable, writable):
    return kind(dupfd.detach(), readable, writable)


class Connection(_ConnectionBase):
    """A connection over a pipe or a unix/TCP socket descriptor."""

    def _close(self, _close=os.close):
        _close(self._handle)

    def _send(self, buf):
        remaining = len(buf)
        handle = self._handle
        while True:
            try:
                n = os.write(handle, buf)
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            remaining -= n
            if remaining == 0:
                return
            buf = buf[n:]

    def _recv(self, size):
        return read_exact(self._handle, size)

    def _send_bytes(self, buf):
        n = len(buf)
        if n > 0x7fffffff:
            self._send(_HEADER.pack(-1) + _BIG_HEADER.pack(n))
            self._send(buf)
        elif n < _SMALL_MESSAGE:
            # One write for header and payload: fewer syscalls, and a reader
            # never sees a header without its message.
            self._send(_HEADER.pack(n) + bytes(buf))
        else:
            self._send(_HEADER.pack(n))
            self._send(buf)

    def _recv_bytes(self, maxsize=None):
        size, = _HEADER.unpack(self._recv(4))
        if size == -1:
            size, = _BIG_HEADER.unpack(self._recv(8))
        elif size < 0:
            return None
        if maxsize is not None and size > maxsize:
            return None
        return self._recv(size)

    def _poll(self, timeout):
        return bool(_compat.wait_fds([self._handle], timeout))


def Pipe(duplex=True):
    """Two Connections: both ends read and write if ``duplex``, else
    (reader, writer)."""
    if duplex:
        left, right = _compat.socketpair()
        c1 = Connection(os.dup(left.fileno()))
        c2 = Connection(os.dup(right.fileno()))
        left.close()
        right.close()
        _compat.set_cloexec(c1.fileno())
        _compat.set_cloexec(c2.fileno())
    else:
        r, w = _compat.pipe()
        c1 = Connection(r, writable=False)
        c2 = Connection(w, readable=False)
    return c1, c2


# -- listeners and clients ------------------------------------------------------

class Listener(object):
    """Accepts authenticated connections on an address (a path for AF_UNIX,
    (host, port) for AF_INET)."""

    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        family = family or (address and address_type(address)) or default_family
        address = address or arbitrary_address(family)
        _validate_family(family)
        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError('authkey should be a byte string')
        self._listener = SocketListener(address, family, backlog)
        self._authkey = authkey

    def accept(self):
        """Accept a connection, authenticating it if an authkey was given."""
        if self._listener is None:
            raise OSError('listener is closed')
        conn = self._listener.accept()
        if self._authkey is not None:
            try:
                deliver_challenge(conn, self._authkey)
                answer_challenge(conn, self._authkey)
            except BaseException:
                conn.close()
                raise
        return conn

    def close(self):
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener.close()

    @property
    def address(self):
        return self._listener._address

    @property
    def last_accepted(self):
        return self._listener._last_accepted

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


def Client(address, family=None, authkey=None):
    """Connect to a Listener at ``address``."""
    family = family or address_type(address)
    _validate_family(family)
    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError('authkey should be a byte string')
    c = SocketClient(address)
    if authkey is not None:
        try:
            answer_challenge(c, authkey)
            deliver_challenge(c, authkey)
        except BaseException:
            c.close()
            raise
    return c


def _socket_family(family):
    import socket
    return getattr(socket, family)


class SocketListener(object):
    """A listening socket that hands out Connections."""

    def __init__(self, address, family, backlog=1):
        import socket
        self._socket = _compat.socket_cloexec(socket.socket(_socket_family(family)))
        try:
            if os.name == 'posix':
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind(address)
            self._socket.listen(backlog)
            self._address = self._socket.getsockname()
        except (OSError, IOError, socket.error):
            self._socket.close()
            raise
        self._family = family
        self._last_accepted = None
        if family == 'AF_UNIX':
            self._unlink = util.Finalize(self, os.unlink, args=(address,),
                                         exitpriority=0)
        else:
            self._unlink = None

    def accept(self):
        import socket
        while True:
            try:
                s, self._last_accepted = self._socket.accept()
            except (OSError, IOError, socket.error) as exc:
                if _compat.is_eintr(exc):
                    continue
                raise
            break
        _compat.socket_cloexec(s)
        try:
            return Connection(_detach_socket(s))
        finally:
            s.close()

    def close(self):
        try:
            self._socket.close()
        finally:
            unlink = self._unlink
            if unlink is not None:
                self._unlink = None
                unlink()


def _detach_socket(sock):
    """A descriptor that outlives ``sock`` (2.7 sockets cannot detach)."""
    fd = os.dup(sock.fileno())
    _compat.set_cloexec(fd)
    return fd


def SocketClient(address):
    """A Connection to ``address`` (a path or (host, port))."""
    import socket
    family = address_type(address)
    s = _compat.socket_cloexec(socket.socket(_socket_family(family)))
    try:
        s.setblocking(True)
        s.connect(address)
        return Connection(_detach_socket(s))
    finally:
        s.close()


# -- authentication ---------------------------------------------------------------
#
# Each side proves it knows the key: the challenger sends CHALLENGE + a random
# message, the other answers HMAC-SHA256(key, message) and is told WELCOME or
# FAILURE.  Everything is read with recv_bytes(limit): no length beyond the
# limit is accepted and nothing is unpickled before both sides are proven.

MESSAGE_LENGTH = 40
CHALLENGE = b'#CHALLENGE#'
WELCOME = b'#WELCOME#'
FAILURE = b'#FAILURE#'
_DIGEST_TAG = b'{sha256}'
_AUTH_LIMIT = 256


def _digest(authkey, message):
    import hashlib
    return hmac.new(authkey, message, hashlib.sha256).digest()


def _auth_recv(connection):
    try:
        data = connection.recv_bytes(_AUTH_LIMIT)
    except OSError as exc:
        if str(exc) == 'bad message length':
            raise AuthenticationError('message too long during authentication')
        raise
    return data


def deliver_challenge(connection, authkey):
    """Challenge the peer; raise AuthenticationError unless it knows ``authkey``."""
    if not isinstance(authkey, bytes):
        raise ValueError("Authkey must be bytes, not {0!s}".format(type(authkey)))
    message = os.urandom(MESSAGE_LENGTH)
    connection.send_bytes(CHALLENGE + _DIGEST_TAG + message)
    response = _auth_recv(connection)
    expected = _DIGEST_TAG + _digest(authkey, message)
    if hmac.compare_digest(response, expected):
        connection.send_bytes(WELCOME)
    else:
        connection.send_bytes(FAILURE)
        raise AuthenticationError('digest received was wrong')


def answer_challenge(connection, authkey):
    """Answer the peer's challenge; raise AuthenticationError if rejected."""
    if not isinstance(authkey, bytes):
        raise ValueError("Authkey must be bytes, not {0!s}".format(type(authkey)))
    message = _auth_recv(connection)
    prefix = CHALLENGE + _DIGEST_TAG
    if not message.startswith(prefix) or len(message) != len(prefix) + MESSAGE_LENGTH:
        raise AuthenticationError('Protocol error, expected challenge: %r' % (message[:40],))
    connection.send_bytes(_DIGEST_TAG + _digest(authkey, message[len(prefix):]))
    response = _auth_recv(connection)
    if response != WELCOME:
        raise AuthenticationError('digest sent was rejected')


# -- wait ---------------------------------------------------------------------------

def wait(object_list, timeout=None):
    """The objects of ``object_list`` that are ready: connections with data (or
    closed), sockets, process sentinels or descriptors; waits up to
    ``timeout`` seconds (forever if None)."""
    fds = [obj if isinstance(obj, _compat.integer_types) else obj.fileno()
           for obj in object_list]
    ready = set(_compat.wait_fds(set(fds), timeout))
    return [obj for obj, fd in zip(object_list, fds) if fd in ready]
