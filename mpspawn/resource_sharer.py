"""Hands descriptors to other processes on request (Python 3's resource
sharer, for POSIX).

A Connection or socket pickled outside of spawning (put on a Queue, sent
through a Pipe) becomes a ``DupFd``: this process keeps a duplicate of the
descriptor and a key for it.  The process that unpickles it connects to this
process's sharer thread over an AF_UNIX socket in the private temp directory,
proves it knows the process tree's authkey, names the key and receives the
descriptor through SCM_RIGHTS.  Each descriptor is handed out once.

The thread starts with the first ``DupFd`` and is stopped at exit, after the
children have been joined (they may still be fetching descriptors); a forked
child drops everything it inherited.  The sender must stay alive until the
receiver has fetched the descriptor, as in Python 3.
"""
import os

from . import process, reduction, util, _compat

__all__ = ['DupFd', 'stop']

# Below the queues' feeder-thread join (-5), above the temp dir removal (-100).
_EXIT_PRIORITY = -50
# At exit, a thread stuck with a client that never finishes its handshake is
# abandoned (it is a daemon) after this long.
_EXIT_STOP_TIMEOUT = 2.0
_REQUEST_LIMIT = 64


class DupFd(object):
    """A descriptor another process can fetch once from this process."""

    def __init__(self, fd):
        self._id = _resource_sharer.register(fd)

    def detach(self):
        """The descriptor, as a new close-on-exec descriptor of this process."""
        fd = _resource_sharer.take_local(self._id)
        if fd is not None:
            return fd
        conn = _resource_sharer.get_connection(self._id)
        try:
            try:
                return reduction.recv_handle(conn)
            except EOFError:
                raise OSError('the descriptor shared by process %s is no longer '
                              'available (already fetched, or the sender exited)'
                              % (self._id[2],))
        finally:
            conn.close()


class _ResourceSharer(object):
    """The registry of shared descriptors and the thread that serves them."""

    def __init__(self):
        self._lock = _compat.allocate_lock()
        self._cache = {}
        # key -> thread that registered it, for discard_since().
        self._owners = {}
        self._next_key = 0
        self._reset()
        util.register_after_fork(self, _ResourceSharer._after_fork)

    def _reset(self):
        self._address = None
        self._listen_sock = None
        self._wake_r = self._wake_w = None
        self._thread = None
        self._finalizer = None

    def register(self, fd):
        """Keep a duplicate of ``fd`` for another process; its identifier."""
        new_fd = os.dup(fd)
        _compat.set_cloexec(new_fd)
        with self._lock:
            try:
                if self._thread is None:
                    self._start()
            except BaseException:
                os.close(new_fd)
                raise
            self._next_key += 1
            self._cache[self._next_key] = new_fd
            self._owners[self._next_key] = _compat.get_ident()
            return (self._address, self._next_key, os.getpid())

    def take_local(self, ident):
        """The descriptor of ``ident`` if it was registered by this very
        process (no round trip through the thread), else None."""
        address, key, pid = ident
        if pid != os.getpid():
            return None
        with self._lock:
            if address != self._address:
                return None
            fd = self._cache.pop(key, None)
            self._owners.pop(key, None)
        if fd is None:
            raise OSError('the shared descriptor was already fetched')
        return fd

    @staticmethod
    def get_connection(ident):
        """An authenticated connection to the sharer holding ``ident``,
        with the request for it already sent."""
        from .connection import Client
        address, key, pid = ident
        conn = Client(address, authkey=process.current_process().authkey)
        try:
            conn.send_bytes(('%d %d' % (key, os.getpid())).encode('ascii'))
        except BaseException:
            conn.close()
            raise
        return conn

    def stop(self, timeout=None):
        """Stop the thread, remove its socket and close every descriptor
        not yet fetched."""
        with self._lock:
            thread = self._thread
            if thread is None:
                return
            wake_w = self._wake_w
        # Not under the lock: the thread takes it to serve a request.
        try:
            os.write(wake_w, b'x')
        except OSError:
            pass
        thread.join(timeout)
        if thread.is_alive():
            util.sub_warning('resource sharer thread did not stop when asked')
        with self._lock:
            if self._thread is not thread:
                return      # stopped meanwhile by another thread
            self._listen_sock.close()
            try:
                os.unlink(self._address)
            except OSError:
                pass
            fds = [self._wake_r, self._wake_w] + list(self._cache.values())
            self._cache.clear()
            self._owners.clear()
            finalizer = self._finalizer
            self._reset()
        util.close_fds(*fds)
        if finalizer is not None:
            finalizer.cancel()

    def _after_fork(self):
        # The thread did not survive the fork; neither may its descriptors
        # (the socket file belongs to the parent and stays).
        fds = list(self._cache.values())
        self._cache.clear()
        self._owners.clear()
        self._lock = _compat.allocate_lock()
        if self._listen_sock is not None:
            self._listen_sock.close()
            fds += [self._wake_r, self._wake_w]
        if self._finalizer is not None:
            self._finalizer.cancel()
        self._reset()
        util.close_fds(*fds)

    def _start(self):
        import socket
        import threading
        from .connection import arbitrary_address
        address = arbitrary_address('AF_UNIX')
        sock = _compat.socket_cloexec(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
        try:
            sock.bind(address)
            sock.listen(128)
            wake_r, wake_w = _compat.pipe()
        except BaseException:
            sock.close()
            raise
        thread = threading.Thread(target=_serve, name='ResourceSharer',
                                  args=(self, sock, wake_r))
        thread.daemon = True
        self._address = address
        self._listen_sock = sock
        self._wake_r, self._wake_w = wake_r, wake_w
        self._thread = thread
        thread.start()
        util.debug('resource sharer listening on %s', address)
        self._finalizer = util.Finalize(None, self.stop, args=(_EXIT_STOP_TIMEOUT,),
                                        exitpriority=_EXIT_PRIORITY)

    def _pop(self, key):
        with self._lock:
            self._owners.pop(key, None)
            return self._cache.pop(key, None)

    def mark(self):
        """A point to give to discard_since()."""
        return self._next_key

    def discard_since(self, mark):
        """Close the descriptors this thread registered after ``mark`` and
        nobody fetched: pickling that failed half way registered them for
        a message that was never sent."""
        me = _compat.get_ident()
        with self._lock:
            keys = [key for key, owner in self._owners.items()
                    if key > mark and owner == me]
            fds = [self._cache.pop(key) for key in keys if key in self._cache]
            for key in keys:
                del self._owners[key]
        util.close_fds(*fds)


def _serve(sharer, sock, wake_r):
    _compat.block_signals_in_thread()
    listen_fd = sock.fileno()
    while True:
        ready = _compat.wait_fds([listen_fd, wake_r], None)
        if wake_r in ready:
            return
        try:
            _serve_one(sharer, sock)
        except Exception as exc:
            if not util.is_exiting():
                util.sub_warning('resource sharer: request failed: %r', exc)


def _serve_one(sharer, sock):
    from .connection import Connection, answer_challenge, deliver_challenge
    client, _ = _compat.retry_on_eintr(sock.accept)
    try:
        _compat.socket_cloexec(client)
        conn = Connection(_dup_cloexec(client.fileno()))
    finally:
        client.close()
    try:
        authkey = process.current_process().authkey
        deliver_challenge(conn, authkey)
        answer_challenge(conn, authkey)
        # Only after authentication, and never unpickled: "<key> <pid>".
        request = conn.recv_bytes(_REQUEST_LIMIT)
        key, destination_pid = [int(part) for part in request.split()]
        fd = sharer._pop(key)
        if fd is None:
            return      # the requester sees end-of-file
        try:
            reduction.send_handle(conn, fd, destination_pid)
        finally:
            os.close(fd)
    finally:
        conn.close()


def _dup_cloexec(fd):
    new_fd = os.dup(fd)
    _compat.set_cloexec(new_fd)
    return new_fd


_resource_sharer = _ResourceSharer()
stop = _resource_sharer.stop
mark = _resource_sharer.mark
discard_since = _resource_sharer.discard_since
