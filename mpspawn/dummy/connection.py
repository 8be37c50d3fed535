"""mpspawn.dummy.connection: Listener, Client and Pipe between threads,
over queues (Python 3's multiprocessing.dummy.connection).

Objects are passed as they are, not pickled.
"""
from .._compat import thread_queue_class

__all__ = ['Client', 'Listener', 'Pipe']

families = [None]


class Listener(object):
    """Accepts connections from Client(listener.address) in other threads."""

    def __init__(self, address=None, family=None, backlog=1):
        self._backlog_queue = thread_queue_class()(backlog)

    def accept(self):
        return Connection(*self._backlog_queue.get())

    def close(self):
        self._backlog_queue = None

    @property
    def address(self):
        return self._backlog_queue

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


def Client(address):
    """Connect to the Listener whose address is ``address``."""
    queue_class = thread_queue_class()
    inbox, outbox = queue_class(), queue_class()
    address.put((outbox, inbox))
    return Connection(inbox, outbox)


def Pipe(duplex=True):
    """Two connected Connections (both ends can send, whatever ``duplex``)."""
    queue_class = thread_queue_class()
    a, b = queue_class(), queue_class()
    return Connection(a, b), Connection(b, a)


class Connection(object):
    """One end of a Pipe: send() puts on the peer's queue, recv() takes from
    ours."""

    def __init__(self, _in, _out):
        self._out = _out
        self._in = _in
        self.send = self.send_bytes = _out.put
        self.recv = self.recv_bytes = _in.get

    def poll(self, timeout=0.0):
        """Whether there is something to receive, waiting up to ``timeout``
        seconds (None: until there is)."""
        if self._in.qsize() > 0:
            return True
        if timeout is not None and timeout <= 0.0:
            return False
        queue = self._in
        with queue.not_empty:
            # Under the queue's own (non-reentrant) lock: the unlocked size.
            return bool(queue.not_empty.wait_for(queue._qsize, timeout))

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()
