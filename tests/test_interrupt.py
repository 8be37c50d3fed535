"""Conformance: Ctrl-C (SIGINT) reaches a main thread blocked in Queue.get()
or Process.join() at once.

On 2.7 an untimed threading.Condition.wait() never sees Ctrl-C and a timed
one notices it only between its sleeps; mpspawn blocks in poll(), read(),
waitpid() or the C semaphore instead.  Each case is a real script: it says
when it is about to block, the test sends SIGINT, and the script measures
how long the KeyboardInterrupt took against the time the test recorded.
"""
import os
import signal
import threading
import time

import pytest

import support

LIMIT = 0.5

SCRIPT = '''
import os
import sys
import time

import mpspawn


def main():
    method, what, ready_path, sent_path = sys.argv[1:5]
    ctx = mpspawn.get_context(method)
    children = []
    if what.startswith('join'):
        p = ctx.Process(target=time.sleep, args=(60,))
        p.start()
        children.append(p)
        block = p.join if what == 'join' else (lambda: p.join(60))
    elif what == 'simple_queue_get':
        q = ctx.SimpleQueue()
        block = q.get
    else:
        q = ctx.Queue()
        block = q.get if what == 'queue_get' else (lambda: q.get(True, 60))
    with open(ready_path + '.tmp', 'w') as f:
        f.write(str(os.getpid()))
    os.rename(ready_path + '.tmp', ready_path)
    caught = None
    try:
        block()
    except KeyboardInterrupt:
        caught = time.time()
    for p in children:
        p.terminate()
        p.join()
    if caught is None:
        print('RETURNED WITHOUT KeyboardInterrupt')
        return
    deadline = time.time() + 30
    while not os.path.exists(sent_path) and time.time() < deadline:
        time.sleep(0.01)
    with open(sent_path) as f:
        sent = float(f.read())
    print('DELAY %.4f' % (caught - sent))


if __name__ == '__main__':
    main()
'''


def _main_thread_sleeps(pid):
    info = support.process_info(pid)
    return info is not None and info[1] == 'S'


def _interrupt_when_blocked(ready_path, sent_path, errors):
    try:
        if not support.wait_until(lambda: os.path.exists(ready_path), timeout=30):
            errors.append('the script never said it was ready')
            return
        with open(ready_path) as f:
            pid = int(f.read())
        # Give it time to enter the blocking call, then make sure it sleeps.
        time.sleep(0.3)
        if not support.wait_until(lambda: _main_thread_sleeps(pid), timeout=10):
            errors.append('the script never blocked')
        sent = time.time()
        os.kill(pid, signal.SIGINT)
        with open(sent_path + '.tmp', 'w') as f:
            f.write('%.6f' % sent)
        os.rename(sent_path + '.tmp', sent_path)
    except Exception as exc:            # reported by the test
        errors.append(repr(exc))


@pytest.mark.parametrize('what', ['queue_get', 'queue_get_timeout', 'simple_queue_get',
                                  'join', 'join_timeout'])
def test_ctrl_c_interrupts_a_blocked_main_thread(start_method, what, tmpdir):
    script = support.write_file(str(tmpdir.join('blocked.py')), SCRIPT)
    ready = str(tmpdir.join('ready'))
    sent = str(tmpdir.join('sent'))
    errors = []
    thread = threading.Thread(target=_interrupt_when_blocked, args=(ready, sent, errors))
    thread.daemon = True
    thread.start()
    result = support.run_python([script, start_method, what, ready, sent], timeout=60)
    thread.join(30)
    assert not errors, errors
    lines = [line for line in result.out.splitlines() if line.startswith('DELAY ')]
    assert result.returncode == 0 and lines, result
    delay = float(lines[0].split()[1])
    assert delay < LIMIT, 'KeyboardInterrupt came %.3f s after SIGINT' % delay
