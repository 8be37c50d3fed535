"""Item 6 of the robustness suite: bad input on the wire.

Two servers get random bytes, truncated frames, huge length prefixes, valid
frames computed with a wrong key, a pickle that would create a marker file
if it were ever unpickled, and replays of a legitimate client's answer:

* a ``Listener`` with an authkey (drive_listener.py, a process of its own
  that accepts connections one after another);
* the fork server of this test process.

Every connection must be refused cleanly: the server closes it (we read end
of file within CLOSE_BOUND seconds after shutting down our side), the
Listener's ``accept()`` raises AuthenticationError, EOFError or OSError,
the fork server forks nothing, no marker file ever appears (nothing was
unpickled before authentication), the server keeps serving legitimate
clients, and its memory stays bounded.  Generation is hypothesis's, with a
fixed seed and a bounded number of examples.
"""
import binascii
import hashlib
import hmac
import json
import os
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

import mpspawn
from mpspawn import connection, forkserver

import robust_support as rs

SEED = 20240707
EXAMPLES = 400 if rs.FULL else 150
CLOSE_BOUND = 5.0
KEY = b'robustness-suite-key-0123456789!'
RSS_SLACK_KIB = 2048
CHALLENGE_PREFIX = connection.CHALLENGE + connection._DIGEST_TAG
REFUSALS = ('AuthenticationError', 'EOFError', 'OSError', 'IOError', 'error')

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def frame(payload):
    return struct.pack('!i', len(payload)) + payload


def digest(key, challenge):
    return connection._DIGEST_TAG + hmac.new(key, challenge, hashlib.sha256).digest()


# -- what we send -------------------------------------------------------------------

random_bytes = st.binary(max_size=600)
truncated_frames = st.integers(1, 300).flatmap(
    lambda n: st.binary(max_size=n - 1).map(lambda body: struct.pack('!i', n) + body))
huge_prefixes = st.tuples(
    st.one_of(st.integers(257, 2 ** 31 - 1).map(lambda n: struct.pack('!i', n)),
              st.integers(-2 ** 31, -2).map(lambda n: struct.pack('!i', n)),
              st.integers(0, 2 ** 64 - 1).map(lambda n: struct.pack('!i', -1) +
                                               struct.pack('!Q', n))),
    st.binary(max_size=64)).map(lambda parts: parts[0] + parts[1])
wrong_keys = st.binary(min_size=1, max_size=64).filter(lambda k: k != KEY)


def evil_pickle(marker):
    """A protocol-0 pickle whose loading creates ``marker``."""
    return b"c__builtin__\nopen\n(S'" + marker.encode('ascii') + b"'\nS'w'\ntR."


# -- talking to a server --------------------------------------------------------------

def read_frame(sock):
    header = _recv_exactly(sock, 4)
    if header is None:
        return None
    size, = struct.unpack('!i', header)
    return _recv_exactly(sock, size)


def _recv_exactly(sock, size):
    data = b''
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def exchange(address, make_payload, authkey=None):
    """Connect, read the challenge, optionally authenticate with
    ``authkey``, send ``make_payload(challenge)``, shut down our side, and
    read until the server closes.  Returns (challenge, what the server sent
    after our payload)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CLOSE_BOUND)
    try:
        sock.connect(address)
        challenge = read_frame(sock)
        assert challenge is not None and challenge.startswith(CHALLENGE_PREFIX), challenge
        challenge = challenge[len(CHALLENGE_PREFIX):]
        if authkey is not None:
            sock.sendall(frame(digest(authkey, challenge)))
            assert read_frame(sock) == connection.WELCOME
        try:
            sock.sendall(make_payload(challenge))
            sock.shutdown(socket.SHUT_WR)
        except socket.error:
            pass        # the server closed already: that is a refusal too
        received = b''
        while True:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                raise AssertionError('the server kept the connection open for %.0f s after '
                                     'the client was done' % CLOSE_BOUND)
            except socket.error:
                break   # reset: closed
            if not chunk:
                break
            received += chunk
        return challenge, received
    finally:
        sock.close()


# -- the Listener ----------------------------------------------------------------------

@pytest.fixture(scope='module')
def listener(tmpdir_factory):
    directory = tmpdir_factory.mktemp('listener')
    address_file = str(directory.join('address'))
    driver = rs.Driver('drive_listener.py', [address_file, binascii.hexlify(KEY).decode()])
    assert driver.wait_for_line('LISTENING', 60), driver.finish(1)
    with open(address_file) as f:
        address = str(json.load(f))
    state = {'address': address, 'driver': driver, 'marker': str(directory.join('unpickled')),
             'legit': 0}
    yield state
    client = connection.Client(address, authkey=KEY)
    client.send('stop')
    client.recv()
    client.close()
    run = driver.finish(timeout=30, settle=5)
    assert run.returncode == 0, run


def accepted(state):
    return rs.read_results(''.join(state['driver'].lines()), 'ACCEPTED')


def check_listener(state):
    assert not os.path.exists(state['marker']), 'the server unpickled before authenticating'
    assert state['driver'].proc.poll() is None, 'the listener died'


def listener_still_serves(state):
    client = connection.Client(state['address'], authkey=KEY)
    try:
        client.send(('ping', state['legit']))
        assert client.recv() == 'ok'
    finally:
        client.close()
    state['legit'] += 1


@seed(SEED)
@FUZZ
@given(payload=st.one_of(random_bytes, truncated_frames, huge_prefixes))
def test_listener_refuses_garbage(listener, payload):
    _, received = exchange(listener['address'], lambda challenge: payload)
    assert received in (b'', frame(connection.FAILURE)), received
    check_listener(listener)


@seed(SEED)
@FUZZ
@given(key=wrong_keys, extra=st.binary(max_size=100))
def test_listener_refuses_a_wrong_key(listener, key, extra):
    _, received = exchange(listener['address'],
                           lambda challenge: frame(digest(key, challenge)) + extra)
    assert received == frame(connection.FAILURE), received
    check_listener(listener)


def test_listener_never_unpickles_before_authentication(listener):
    evil = evil_pickle(listener['marker'])
    for payload in (frame(evil), frame(connection._DIGEST_TAG + evil), evil,
                    frame(b'x' * 8) + frame(evil)):
        exchange(listener['address'], lambda challenge: payload)
        check_listener(listener)
    # The pickle does create the marker once it may be unpickled: after
    # authentication (so the check above can fail).
    client = connection.Client(listener['address'], authkey=KEY)
    client.send_bytes(evil)
    client.close()
    assert rs.time.sleep(0.5) is None and os.path.exists(listener['marker'])
    os.unlink(listener['marker'])
    listener['legit'] += 1


def test_listener_refuses_replays(listener):
    for _ in range(10):
        # A legitimate client's answer to one challenge...
        recorded = {}

        def answer(challenge):
            recorded['digest'] = digest(KEY, challenge)
            return frame(recorded['digest'])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CLOSE_BOUND)
        sock.connect(listener['address'])
        challenge = read_frame(sock)[len(CHALLENGE_PREFIX):]
        sock.sendall(answer(challenge))
        assert read_frame(sock) == connection.WELCOME
        sock.close()            # the server's own challenge is never answered
        # ...replayed on a new connection (a fresh challenge) is refused.
        _, received = exchange(listener['address'], lambda challenge: frame(recorded['digest']))
        assert received == frame(connection.FAILURE)
        check_listener(listener)


def test_listener_outcomes_and_memory(listener, report):
    """Runs after the fuzzing tests of this module: every refused connection
    raised one of the expected errors in accept(), the server still serves,
    and its memory did not grow."""
    listener_still_serves(listener)
    outcomes = accepted(listener)
    refused = [o for o in outcomes if o['outcome'] != 'authenticated']
    kinds = {}
    for o in refused:
        kinds[o['outcome']] = kinds.get(o['outcome'], 0) + 1
    growth = outcomes[-1]['rss_kib'] - outcomes[min(5, len(outcomes) - 1)]['rss_kib']
    report('Item 6: bad input on the wire (hypothesis, seed %d, %d examples per test)'
           % (SEED, EXAMPLES), [
               ('server', 'Listener(authkey=...)'), ('connections', len(outcomes)),
               ('refused', len(refused)), ('accept() raised', kinds),
               ('forked', '-'), ('RSS growth (KiB)', growth), ('marker file', 'never')])
    assert len(refused) >= 2 * EXAMPLES
    assert set(kinds) <= set(REFUSALS), kinds
    assert growth <= RSS_SLACK_KIB, outcomes


# -- the fork server ---------------------------------------------------------------------

@pytest.fixture(scope='module')
def server(tmpdir_factory):
    forkserver.ensure_running()
    fs = forkserver._forkserver
    state = {'address': fs._forkserver_address, 'pid': fs._forkserver_pid,
             'authkey': fs._forkserver_authkey,
             'marker': str(tmpdir_factory.mktemp('forkserver').join('unpickled')),
             'rss_before': rs.rss_kib(fs._forkserver_pid), 'connections': 0}
    assert not _server_children(state)
    return state


def _server_children(state):
    with open('/proc/%d/task/%d/children' % (state['pid'], state['pid'])) as f:
        return f.read().split()


def check_server(state):
    state['connections'] += 1
    assert not _server_children(state), 'the fork server forked for a bad request'
    assert not os.path.exists(state['marker'])
    assert forkserver._forkserver._forkserver_pid == state['pid']


@seed(SEED)
@FUZZ
@given(payload=st.one_of(random_bytes, truncated_frames, huge_prefixes))
def test_fork_server_refuses_garbage(server, payload):
    exchange(server['address'], lambda challenge: payload)
    check_server(server)


@seed(SEED)
@FUZZ
@given(key=wrong_keys, extra=st.binary(max_size=100))
def test_fork_server_refuses_a_wrong_key(server, key, extra):
    _, received = exchange(server['address'],
                           lambda challenge: frame(digest(key, challenge)) + extra)
    assert received == frame(connection.FAILURE), received
    check_server(server)


@seed(SEED)
@FUZZ
@given(request=st.one_of(random_bytes, truncated_frames, huge_prefixes,
                         st.integers(0, 10 ** 6).map(lambda n: frame(b'#FORK#%d' % n))))
def test_fork_server_authenticated_garbage_forks_nothing(server, request):
    """Even with the key, a malformed request (or a request whose
    descriptors never come) forks nothing."""
    exchange(server['address'], lambda challenge: request, authkey=server['authkey'])
    check_server(server)


def test_fork_server_refuses_replays_and_pickles(server):
    for _ in range(10):
        recorded = []
        exchange(server['address'],
                 lambda challenge: recorded.append(digest(server['authkey'], challenge)) or b'',
                 authkey=None)
        _, received = exchange(server['address'], lambda challenge: frame(recorded[0]))
        assert received == frame(connection.FAILURE)
        check_server(server)
    evil = evil_pickle(server['marker'])
    for payload in (frame(evil), evil, frame(connection._DIGEST_TAG + evil[:32])):
        exchange(server['address'], lambda challenge: payload)
        check_server(server)


def test_fork_server_still_serves_with_bounded_memory(server, report):
    p = mpspawn.get_context('forkserver').Process(target=os._exit, args=(7,))
    p.start()
    p.join(30)
    assert p.exitcode == 7
    growth = rs.rss_kib(server['pid']) - server['rss_before']
    report('Item 6: bad input on the wire (hypothesis, seed %d, %d examples per test)'
           % (SEED, EXAMPLES), [
               ('server', 'fork server'), ('connections', server['connections']),
               ('refused', server['connections']), ('accept() raised', '-'),
               ('forked', 0), ('RSS growth (KiB)', growth), ('marker file', 'never')])
    assert growth <= RSS_SLACK_KIB
