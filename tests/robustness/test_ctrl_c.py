"""Item 3 of the robustness suite: Ctrl-C.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the
parent, its children, the pool workers, the manager's server.  While the
parent's main thread is blocked in Pool.map, Queue.get, Process.join or a
Manager call, KeyboardInterrupt must reach it within half a second, and once
the exception has ended the script no process of its tree may remain
(helpers and workers included).  A second variant signals the parent alone
(what ``kill -INT <pid>`` does).
"""
import os
import signal

import pytest

import robust_support as rs

PROMPT = 0.5


@pytest.mark.parametrize('target', ['group', 'parent'])
@pytest.mark.parametrize('what', ['pool_map', 'queue_get', 'join', 'manager_call'])
@pytest.mark.parametrize('method', ['spawn', 'forkserver'])
def test_ctrl_c_interrupts_blocking_calls(method, what, target, report):
    driver = rs.Driver('drive_ctrl_c.py', [method, what])
    try:
        assert driver.wait_for_line('BLOCKED', 60) is not None, driver.finish(1)
        rs.time.sleep(0.4)     # let the call reach its wait
        sent = rs.monotonic()
        if target == 'group':
            os.killpg(driver.sid, signal.SIGINT)
        else:
            os.kill(driver.sid, signal.SIGINT)
        line = driver.wait_for_line('INTERRUPTED', 10)
    finally:
        # A parent-only SIGINT leaves the joined child running: Python 3's
        # exit then waits for that non-daemonic child, as ours does.
        run = driver.finish(timeout=45, settle=5)
    assert line is not None, run
    delay = rs.read_results(line, 'INTERRUPTED')[0]['at'] - sent
    report('Item 3: Ctrl-C (SIGINT) while the main thread is blocked', [
        ('method', method), ('blocked in', what), ('SIGINT to', target),
        ('KeyboardInterrupt after (s)', '%.3f' % delay),
        ('script ended after (s)', '%.1f' % run.elapsed),
        ('processes left', len(run.leftovers))])
    assert delay < PROMPT, run
    assert 'KeyboardInterrupt' in run.err, run
    assert not run.timed_out, run
    assert not run.leftovers, run
