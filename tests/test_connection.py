"""Conformance: Pipe connections, wait(), Listener/Client with authentication,
and connections handed to other processes through pipes and queues.

Runs against mpspawn on 2.7 and against the standard library on Python 3.
"""
import array
import os
import socket
import struct
import sys
import time

import pytest

import mpspawn
from mpspawn import connection, reduction
from mpspawn.connection import Client, Listener
from mpspawn.context import AuthenticationError, BufferTooShort
import support
from support import start, join_ok, recv
import targets_queues as tq

DEADLINE = tq.DEADLINE
MiB = 1 << 20


def _start_resource_sharer():
    r, w = os.pipe()
    try:
        fd = reduction.DupFd(r).detach()
        os.close(fd)
    finally:
        os.close(r)
        os.close(w)


@pytest.fixture(scope='module', autouse=True)
def resource_sharer_running():
    """Start this process's resource sharer (a thread and a socket that live
    until exit) before the leak check takes its first inventory."""
    _start_resource_sharer()
    yield


# -- Pipe within a process -------------------------------------------------------

def test_duplex_pipe_both_directions():
    a, b = mpspawn.Pipe()
    with a, b:
        assert a.readable and a.writable and b.readable and b.writable
        a.send({'x': [1, 2.5, u'text', b'bytes', None]})
        assert b.recv() == {'x': [1, 2.5, u'text', b'bytes', None]}
        b.send(('back', 3))
        assert a.recv() == ('back', 3)
        a.send_bytes(b'raw')
        assert b.recv_bytes() == b'raw'


def test_one_way_pipe_directions():
    reader, writer = mpspawn.Pipe(duplex=False)
    with reader, writer:
        assert reader.readable and not reader.writable
        assert writer.writable and not writer.readable
        writer.send([1, 2, 3])
        assert reader.recv() == [1, 2, 3]
        with pytest.raises(OSError):
            reader.send('wrong way')
        with pytest.raises(OSError):
            reader.send_bytes(b'wrong way')
        with pytest.raises(OSError):
            writer.recv()
        with pytest.raises(OSError):
            writer.recv_bytes()
        with pytest.raises(OSError):
            writer.poll()


def test_send_bytes_offset_and_size():
    a, b = mpspawn.Pipe()
    with a, b:
        a.send_bytes(b'0123456789', 2)
        assert b.recv_bytes() == b'23456789'
        a.send_bytes(b'0123456789', 2, 3)
        assert b.recv_bytes() == b'234'
        a.send_bytes(b'0123456789', 10)
        assert b.recv_bytes() == b''
        a.send_bytes(bytearray(b'abcdef'), 1, 4)
        assert b.recv_bytes() == b'bcde'
        ints = array.array('i', [1, 2, 3, 4])
        size = ints.itemsize
        a.send_bytes(ints, size, 2 * size)     # offset and size count bytes
        assert array.array('i', b.recv_bytes()).tolist() == [2, 3]


@pytest.mark.parametrize('offset, size', [(-1, None), (11, None), (0, -1),
                                          (5, 6), (10, 1)])
def test_send_bytes_bad_offset_or_size(offset, size):
    a, b = mpspawn.Pipe()
    with a, b:
        with pytest.raises(ValueError):
            a.send_bytes(b'0123456789', offset, size)
        assert not b.poll(), 'nothing must have been sent'


def test_recv_bytes_maxlength():
    a, b = mpspawn.Pipe()
    with a, b:
        a.send_bytes(b'short')
        assert b.recv_bytes(5) == b'short'
        a.send_bytes(b'too long for the limit')
        with pytest.raises(OSError):
            b.recv_bytes(5)
        with pytest.raises(ValueError):
            a.recv_bytes(-1)


def test_recv_bytes_into_bytearray_with_offset():
    a, b = mpspawn.Pipe()
    with a, b:
        buf = bytearray(b'.' * 12)
        a.send_bytes(b'hello')
        assert b.recv_bytes_into(buf) == 5
        assert bytes(buf) == b'hello.......'
        a.send_bytes(b'world')
        assert b.recv_bytes_into(buf, 7) == 5
        assert bytes(buf) == b'hello..world'


def test_recv_bytes_into_array_with_offset():
    a, b = mpspawn.Pipe()
    with a, b:
        target = array.array('i', [0] * 6)
        size = target.itemsize
        a.send_bytes(array.array('i', [7, 8, 9]))
        assert b.recv_bytes_into(target, 2 * size) == 3 * size
        assert target.tolist() == [0, 0, 7, 8, 9, 0]


def test_recv_bytes_into_too_short_carries_the_message():
    a, b = mpspawn.Pipe()
    with a, b:
        a.send_bytes(b'0123456789')
        buf = bytearray(4)
        with pytest.raises(BufferTooShort) as info:
            b.recv_bytes_into(buf)
        assert info.value.args[0] == b'0123456789'
        a.send_bytes(b'abc')
        with pytest.raises(BufferTooShort) as info:
            b.recv_bytes_into(buf, 2)
        assert info.value.args[0] == b'abc'
        # The connection is still usable afterwards.
        a.send_bytes(b'ok')
        assert b.recv_bytes() == b'ok'


def test_recv_bytes_into_bad_offset_consumes_nothing():
    a, b = mpspawn.Pipe()
    with a, b:
        a.send_bytes(b'kept')
        with pytest.raises(ValueError):
            b.recv_bytes_into(bytearray(4), -1)
        with pytest.raises(ValueError):
            b.recv_bytes_into(bytearray(4), 5)
        assert b.recv_bytes() == b'kept'


def test_poll_timeouts():
    a, b = mpspawn.Pipe()
    with a, b:
        assert b.poll() is False
        assert b.poll(0) is False
        started = support.monotonic()
        assert b.poll(0.2) is False
        assert support.monotonic() - started >= 0.15
        a.send('x')
        assert b.poll() is True
        assert b.poll(None) is True
        assert b.recv() == 'x'


def test_poll_none_waits_for_data(ctx):
    a, b = ctx.Pipe()
    p = start(ctx, tq.sleep_then_send, a, 0.3, 'late')
    a.close()
    try:
        assert b.poll(None) is True
        assert b.recv() == 'late'
    finally:
        join_ok(p)
        b.close()


def test_close_and_closed_use():
    a, b = mpspawn.Pipe()
    assert not a.closed
    a.close()
    assert a.closed
    a.close()                           # closing twice is harmless
    for call in (lambda: a.send(1), lambda: a.recv(), lambda: a.send_bytes(b'x'),
                 lambda: a.recv_bytes(), lambda: a.poll(), lambda: a.fileno()):
        with pytest.raises(OSError):
            call()
    b.close()


def test_eof_when_other_end_closes():
    a, b = mpspawn.Pipe()
    a.send('last')
    a.close()
    assert b.recv() == 'last'
    assert b.poll(DEADLINE)             # end of file counts as readable
    with pytest.raises(EOFError):
        b.recv()
    b.close()
    reader, writer = mpspawn.Pipe(duplex=False)
    writer.close()
    with pytest.raises(EOFError):
        reader.recv_bytes()
    reader.close()


def test_eof_when_child_exits(ctx):
    a, b = ctx.Pipe()
    p = start(ctx, tq.send_then_close, a, 'bye')
    a.close()
    try:
        assert recv(b) == 'bye'
        with pytest.raises(EOFError):
            b.recv()
    finally:
        join_ok(p)
        b.close()


def test_context_manager_closes():
    a, b = mpspawn.Pipe()
    with a as entered:
        assert entered is a
    assert a.closed
    with b:
        pass
    assert b.closed


def test_large_messages_through_a_child(ctx):
    parent, child = ctx.Pipe()
    p = start(ctx, tq.echo_bytes, child)
    child.close()
    try:
        for size in (5 * MiB, 3 * MiB + 7):
            data = os.urandom(1024) * (size // 1024) + b'z' * (size % 1024)
            parent.send_bytes(data)
            assert parent.poll(DEADLINE)
            assert parent.recv_bytes() == data
        big = list(range(300000))
        parent.send_bytes(reduction.ForkingPickler.dumps(big))
        assert reduction.ForkingPickler.loads(parent.recv_bytes()) == big
        parent.send_bytes(b'')
    finally:
        join_ok(p)
        parent.close()


def test_both_ends_of_one_way_pipes_as_arguments(ctx):
    to_child_r, to_child_w = ctx.Pipe(duplex=False)
    from_child_r, from_child_w = ctx.Pipe(duplex=False)
    p = start(ctx, tq.echo_objects, to_child_r, from_child_w)
    to_child_r.close()
    from_child_w.close()
    try:
        for obj in ([1, 2], {'k': u'v'}, b'\x00' * 100000):
            to_child_w.send(obj)
            assert recv(from_child_r) == obj
        to_child_w.send(None)
        assert recv(from_child_r) == ('closing', True, False, False, True)
    finally:
        join_ok(p)
        to_child_w.close()
        from_child_r.close()


# -- wait() ---------------------------------------------------------------------------

def test_wait_on_connections():
    a, b = mpspawn.Pipe()
    c, d = mpspawn.Pipe()
    try:
        assert connection.wait([b, d], timeout=0) == []
        started = support.monotonic()
        assert connection.wait([b, d], timeout=0.2) == []
        assert support.monotonic() - started >= 0.15
        c.send('for d')
        assert connection.wait([b, d], timeout=None) == [d]
        a.send('for b')
        assert connection.wait([b, d], timeout=0) == [b, d]
    finally:
        for conn in (a, b, c, d):
            conn.close()


def test_wait_on_sockets():
    s1, s2 = socket.socketpair()
    try:
        assert connection.wait([s2], timeout=0) == []
        s1.sendall(b'ping')
        assert connection.wait([s2], timeout=DEADLINE) == [s2]
        assert s2.recv(4) == b'ping'
        assert connection.wait([s2], 0.05) == []
    finally:
        s1.close()
        s2.close()


def test_wait_on_process_sentinels(ctx):
    a, b = ctx.Pipe()
    slow = start(ctx, tq.sleep_then_send, a, 1.0, 'slow done')
    quick = start(ctx, tq.send_then_close, a, 'quick done')
    a.close()
    try:
        assert connection.wait([slow.sentinel, quick.sentinel], timeout=0) in (
            [], [quick.sentinel])
        ready = connection.wait([slow.sentinel, quick.sentinel], timeout=DEADLINE)
        assert quick.sentinel in ready
        quick.join(DEADLINE)
        ready = connection.wait([slow.sentinel, b], timeout=None)
        assert ready and set(ready) <= set([slow.sentinel, b])
        assert connection.wait([slow.sentinel], timeout=DEADLINE) == [slow.sentinel]
    finally:
        join_ok(slow, quick)
        b.close()


def test_wait_mixed_objects_keeps_order():
    a, b = mpspawn.Pipe()
    s1, s2 = socket.socketpair()
    try:
        a.send(1)
        s1.sendall(b'x')
        assert connection.wait([s2, b], timeout=DEADLINE) == [s2, b]
        assert connection.wait([b, s2], timeout=DEADLINE) == [b, s2]
    finally:
        for obj in (a, b, s1, s2):
            obj.close()


# -- Listener and Client -----------------------------------------------------------------

@pytest.mark.parametrize('family', ['AF_UNIX', 'AF_INET'])
def test_listener_client_with_authkey_in_child(ctx, family):
    key = b'a shared secret'
    with Listener(family=family, authkey=key) as listener:
        result_r, result_w = ctx.Pipe(duplex=False)
        p = start(ctx, tq.client_talk, listener.address, key, result_w)
        result_w.close()
        try:
            conn = listener.accept()
            with conn:
                msg = conn.recv()
                assert msg[0] == 'hello'
                conn.send(('welcome', msg[1]))
            assert recv(result_r) == ('ok', ('welcome', p.pid))
        finally:
            join_ok(p)
            result_r.close()


@pytest.mark.parametrize('family', ['AF_UNIX', 'AF_INET'])
def test_wrong_authkey_fails_on_both_sides(ctx, family):
    with Listener(family=family, authkey=b'right key') as listener:
        result_r, result_w = ctx.Pipe(duplex=False)
        p = start(ctx, tq.client_talk, listener.address, b'wrong key', result_w)
        result_w.close()
        try:
            with pytest.raises(AuthenticationError):
                listener.accept()
            assert recv(result_r)[0] == 'AuthenticationError'
        finally:
            join_ok(p)
            result_r.close()


def test_closed_listener_removes_its_socket_file():
    with Listener(family='AF_UNIX') as listener:
        address = listener.address
        assert listener.last_accepted is None
    # The socket file is gone once the listener is closed.
    assert not os.path.exists(address)


def _raw_client(address, family):
    sock = socket.socket(getattr(socket, family), socket.SOCK_STREAM)
    sock.settimeout(DEADLINE)
    sock.connect(address)
    return sock


def _read_frame(sock):
    header = b''
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        assert chunk, 'listener closed before challenging'
        header += chunk
    size, = struct.unpack('!i', header)
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk
        data += chunk
    return data


def _send_raw_and_accept(listener, family, payload):
    """Connect without the key, read the challenge, answer with ``payload``;
    return the exception accept() raised."""
    import threading
    errors = []

    def accept():
        try:
            listener.accept().close()
        except Exception as exc:
            errors.append(exc)
        else:
            errors.append(None)
    thread = threading.Thread(target=accept)
    thread.daemon = True
    thread.start()
    sock = _raw_client(listener.address, family)
    try:
        assert _read_frame(sock).startswith(b'#CHALLENGE#')
        try:
            sock.sendall(payload)
        except socket.error:
            pass                        # the listener may hang up first
        thread.join(DEADLINE)
        assert not thread.is_alive(), 'accept() did not give up'
    finally:
        sock.close()
    return errors[0]


@pytest.mark.parametrize('family', ['AF_UNIX', 'AF_INET'])
def test_listener_refuses_a_pickle_before_authentication(family, tmpdir):
    marker = str(tmpdir.join('unpickled'))
    pickled = reduction.ForkingPickler.dumps(tq.Tripwire(marker))
    with Listener(family=family, authkey=b'key') as listener:
        error = _send_raw_and_accept(listener, family,
                                     struct.pack('!i', len(pickled)) + pickled)
    assert isinstance(error, (AuthenticationError, OSError, EOFError)), error
    assert not os.path.exists(marker), 'the listener unpickled an unauthenticated message'


@pytest.mark.parametrize('family', ['AF_UNIX', 'AF_INET'])
def test_listener_refuses_a_huge_length_prefix(family):
    with Listener(family=family, authkey=b'key') as listener:
        started = support.monotonic()
        error = _send_raw_and_accept(listener, family,
                                     struct.pack('!i', 0x7fffffff) + b'garbage')
        # It must not wait for (or allocate) two gigabytes.
        assert support.monotonic() - started < DEADLINE / 2
    assert isinstance(error, (AuthenticationError, OSError, EOFError)), error


@pytest.mark.mpspawn_only
def test_listener_huge_prefix_is_an_authentication_error():
    with Listener(family='AF_UNIX', authkey=b'key') as listener:
        error = _send_raw_and_accept(listener, 'AF_UNIX',
                                     struct.pack('!i', 0x7fffffff) + b'garbage')
    assert isinstance(error, AuthenticationError), error


def test_client_refuses_a_listener_without_the_key(ctx):
    with Listener(family='AF_UNIX', authkey=b'server key') as listener:
        result_r, result_w = ctx.Pipe(duplex=False)
        p = start(ctx, tq.client_talk, listener.address, b'client key', result_w)
        result_w.close()
        try:
            with pytest.raises(AuthenticationError):
                listener.accept()
            kind, _ = recv(result_r)
            assert kind == 'AuthenticationError'
        finally:
            join_ok(p)
            result_r.close()


# -- connections handed to other processes ---------------------------------------------

def test_connection_through_a_queue_to_a_child(ctx):
    q = ctx.Queue()
    results = ctx.Queue()
    p = start(ctx, tq.use_connection_from_queue, q, results)
    mine, theirs = mpspawn.Pipe()
    try:
        q.put(theirs)
        # Python 3 pickles in the feeder thread: keep it open until used.
        assert recv(mine) == ('from child', p.pid)
        theirs.close()
        mine.send('reply from parent')
        assert results.get(True, DEADLINE) == 'reply from parent'
    finally:
        join_ok(p)
        mine.close()
        for queue in (q, results):
            queue.close()
            queue.join_thread()


def test_connections_through_a_pipe_to_a_child(ctx):
    channel, child_end = ctx.Pipe()
    p = start(ctx, tq.use_connections_from_pipe, child_end)
    child_end.close()
    try:
        for i in range(3):
            mine, theirs = mpspawn.Pipe()
            channel.send(theirs)
            theirs.close()
            assert recv(mine) == ('number', i, True)
            mine.close()
        channel.send(None)
        assert recv(channel) == 3
    finally:
        join_ok(p)
        channel.close()


def test_one_way_connection_through_a_queue_keeps_its_direction(ctx):
    q = ctx.Queue()
    reader, writer = mpspawn.Pipe(duplex=False)
    try:
        q.put(writer)
        q.put(reader)
        got_writer = q.get(True, DEADLINE)
        got_reader = q.get(True, DEADLINE)
        writer.close()
        reader.close()
        assert got_writer.writable and not got_writer.readable
        assert got_reader.readable and not got_reader.writable
        got_writer.send('through the copies')
        assert got_reader.recv() == 'through the copies'
        got_writer.close()
        got_reader.close()
    finally:
        q.close()
        q.join_thread()


def test_socket_through_a_queue_to_a_child(ctx):
    q = ctx.Queue()
    results = ctx.Queue()
    p = start(ctx, tq.use_socket_from_queue, q, results)
    mine, theirs = socket.socketpair()
    try:
        q.put(theirs)
        mine.settimeout(DEADLINE)
        data = b''
        while len(data) < len(b'hello through a socket'):
            chunk = mine.recv(100)
            assert chunk
            data += chunk
        assert data == b'hello through a socket'
        assert results.get(True, DEADLINE) == 'sent'
    finally:
        join_ok(p)
        mine.close()
        theirs.close()
        for queue in (q, results):
            queue.close()
            queue.join_thread()


@pytest.mark.mpspawn_only
def test_received_descriptors_are_close_on_exec():
    import fcntl
    a, b = mpspawn.Pipe()
    try:
        copy = reduction.ForkingPickler.loads(reduction.ForkingPickler.dumps(b))
        with copy:
            assert copy.fileno() != b.fileno()
            assert fcntl.fcntl(copy.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            copy.send('via the copy')
            assert a.recv() == 'via the copy'
    finally:
        a.close()
        b.close()


@pytest.mark.mpspawn_only
def test_resource_sharer_stops_and_restarts_cleanly():
    from mpspawn import resource_sharer
    with_sharer = set(support.open_fds())
    resource_sharer.stop()
    assert _sharer_threads() == []
    without = set(support.open_fds())
    assert without < with_sharer, 'stopping the sharer closed none of its descriptors'
    a, b = mpspawn.Pipe()
    try:
        copy = reduction.ForkingPickler.loads(reduction.ForkingPickler.dumps(b))
        copy.send('after restart')
        assert a.recv() == 'after restart'
        copy.close()
        assert len(_sharer_threads()) == 1
    finally:
        a.close()
        b.close()
    resource_sharer.stop()
    assert set(support.open_fds()) == without
    _start_resource_sharer()            # for the rest of the module


@pytest.mark.mpspawn_only
def test_unfetched_descriptors_are_closed_when_the_sharer_stops():
    from mpspawn import resource_sharer
    a, b = mpspawn.Pipe()
    before = set(support.open_fds())
    pickled = reduction.ForkingPickler.dumps(b)     # keeps a duplicate of b
    assert len(set(support.open_fds()) - before) == 1
    resource_sharer.stop()
    assert set(support.open_fds()) < before
    a.close()
    b.close()
    with pytest.raises(Exception):
        reduction.ForkingPickler.loads(pickled)
    _start_resource_sharer()


def _sharer_threads():
    import threading
    return [t for t in threading.enumerate() if t.name == 'ResourceSharer']


STUCK_CLIENT_SCRIPT = '''
import os
import socket
import mpspawn
from mpspawn import reduction, resource_sharer

if __name__ == '__main__':
    a, b = mpspawn.Pipe()
    pickled = reduction.ForkingPickler.dumps(b)        # starts the sharer
    address = resource_sharer._resource_sharer._address
    stuck = socket.socket(socket.AF_UNIX)
    stuck.connect(address)
    stuck.recv(100)                     # the challenge: the thread now waits...
    # ...for an answer that never comes.
    print('exiting')
'''


@pytest.mark.mpspawn_only
def test_exit_does_not_hang_on_a_client_that_never_authenticates(tmpdir):
    script = support.write_file(str(tmpdir.join('stuck.py')), STUCK_CLIENT_SCRIPT)
    result = support.run_python([script], timeout=60)
    assert result.returncode == 0 and 'exiting' in result.out, result
    assert result.elapsed < 30, result.elapsed


@pytest.mark.mpspawn_only
def test_failed_put_lets_go_of_the_connections_it_pickled(ctx):
    # Nothing was sent, so nobody will fetch these descriptors: the leak
    # check fails this test if they stay with the resource sharer.
    q = ctx.Queue()
    a, b = mpspawn.Pipe()
    try:
        with pytest.raises(TypeError):
            q.put([a, b, tq.Unpicklable()])
        q.put([a, 'fine'])
        got, word = q.get(True, DEADLINE)
        got.send('via the copy')
        assert b.recv() == 'via the copy'
        got.close()
    finally:
        a.close()
        b.close()
        finish_queue(q)


def finish_queue(q):
    q.close()
    q.join_thread()
