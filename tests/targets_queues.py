"""Child-side functions for the queue, connection and interrupt tests (kept
apart from the test modules so a spawned child never imports pytest)."""
import os
import socket
import sys
import time

try:
    import queue as std_queue
except ImportError:             # Python 2.7
    import Queue as std_queue

from mpspawn.connection import Client
from mpspawn.context import AuthenticationError

# Every blocking call in a child has a deadline, so a bug fails a test
# instead of leaving a process behind.
DEADLINE = 30


def produce(q, items):
    """Put every one of ``items`` on ``q``."""
    for item in items:
        q.put(item)


def produce_then_marker(q, items, marker):
    for item in items:
        q.put(item)
    q.put(marker)


def consume(q, count, out):
    """Get ``count`` items from ``q`` and put them, as a list, on ``out``."""
    got = [q.get(True, DEADLINE) for _ in range(count)]
    out.put(got)


def consume_simple(q, count, out):
    """SimpleQueue has no timeouts: get ``count`` items."""
    got = [q.get() for _ in range(count)]
    out.put(got)


def consume_sizes(q, count, out):
    """Get ``count`` byte strings; report their sizes and first bytes."""
    got = []
    for _ in range(count):
        item = q.get(True, DEADLINE)
        got.append((len(item), item[:1], item[-1:]))
    out.put(got)


def echo(q_in, q_out):
    """Put back every item of ``q_in`` until None."""
    while True:
        item = q_in.get(True, DEADLINE)
        if item is None:
            break
        q_out.put(item)


def get_one(q, out):
    out.put(q.get(True, DEADLINE))


def report_qsize(q, conn):
    conn.send((q.qsize(), q.empty(), q.full()))
    conn.close()


def work_and_mark_done(q, count, done):
    """JoinableQueue worker: take ``count`` items, note each on ``done``
    after a little work, then mark it done."""
    for _ in range(count):
        item = q.get(True, DEADLINE)
        time.sleep(0.01)
        done.put(item)
        q.task_done()


def put_then_exit(q, count):
    """Put ``count`` items and return at once: the feeder must flush them
    before the process ends."""
    payload = b'y' * 5000
    for i in range(count):
        q.put((i, payload))


def get_with_timeout(q, timeout, conn):
    """Report Empty (by name) or the item."""
    try:
        conn.send(('item', q.get(True, timeout)))
    except std_queue.Empty:
        conn.send(('empty', None))
    conn.close()


def put_with_timeout(q, item, timeout, conn):
    try:
        q.put(item, True, timeout)
        conn.send('put')
    except std_queue.Full:
        conn.send('full')
    conn.close()


# -- connections -------------------------------------------------------------------

def echo_bytes(conn):
    """Send back every message (as bytes) until an empty one."""
    while True:
        data = conn.recv_bytes()
        if not data:
            break
        conn.send_bytes(data)
    conn.close()


def echo_objects(reader, writer):
    """One-way pipes: send back through ``writer`` what ``reader`` gives,
    until None."""
    while True:
        obj = reader.recv()
        if obj is None:
            break
        writer.send(obj)
    writer.send(('closing', reader.readable, reader.writable,
                 writer.readable, writer.writable))
    reader.close()
    writer.close()


def send_then_close(conn, obj):
    conn.send(obj)
    conn.close()


def sleep_then_send(conn, seconds, obj):
    time.sleep(seconds)
    conn.send(obj)
    conn.close()


def client_talk(address, authkey, result):
    """Connect to a Listener; send 'hello' and the answer, report how it went."""
    try:
        conn = Client(address, authkey=authkey)
    except AuthenticationError as exc:
        result.send(('AuthenticationError', str(exc)))
        result.close()
        return
    with conn:
        conn.send(('hello', os.getpid()))
        answer = conn.recv()
    result.send(('ok', answer))
    result.close()


def use_connection_from_queue(q, result):
    """Take a Connection off ``q``, talk through it, report what came back."""
    conn = q.get(True, DEADLINE)
    conn.send(('from child', os.getpid()))
    reply = conn.recv()
    conn.close()
    result.put(reply)


def use_connections_from_pipe(channel):
    """Receive Connections through the Pipe ``channel`` until None; send
    each its own number."""
    count = 0
    while True:
        conn = channel.recv()
        if conn is None:
            break
        conn.send(('number', count, conn.fileno() >= 0))
        conn.close()
        count += 1
    channel.send(count)
    channel.close()


def use_socket_from_queue(q, result):
    sock = q.get(True, DEADLINE)
    sock.sendall(b'hello through a socket')
    sock.close()
    result.put('sent')


def report_unpickled(path):
    """Create ``path``: evidence that something was unpickled."""
    with open(path, 'w') as f:
        f.write('unpickled')
    return path


class Tripwire(object):
    """Unpickling this creates a file."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return report_unpickled, (self.path,)


class Unpicklable(object):
    """Raises when pickled."""

    def __reduce__(self):
        raise TypeError('Unpicklable refuses to be pickled')


def module_level_socketpair():
    a, b = socket.socketpair()
    return a, b


def flush():
    sys.stdout.flush()
    sys.stderr.flush()
