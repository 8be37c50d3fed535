"""Item 2 of the robustness suite: the parent is SIGKILLed.

drive_killed_parent.py starts every helper mpspawn has (resource tracker,
fork server, manager server, Pool workers -- one of them inside a 60 s
task) and, in one variant, two ordinary children.  We SIGKILL the parent
alone and watch:

* every helper but the resource tracker is gone within HELPER_GRACE
  seconds; the tracker lives exactly as long as some process of the tree
  does (it must clean up after the last one), then ends;
* ordinary children behave as in Python 3: nothing kills them (daemonic or
  not: daemonic children are terminated only by a parent's *normal* exit),
  ``parent_process().is_alive()`` turns False, and the parent's lock and
  queue keep working for them until they finish;
* once the tree has ended, /dev/shm holds none of its entries.
"""
import json
import os
import signal

import pytest

import robust_support as rs

HELPER_GRACE = 5.0


def _alive(pid):
    return pid in rs.process_table()


@pytest.mark.parametrize('with_children', [False, True], ids=['helpers-only', 'with-children'])
@pytest.mark.parametrize('method', ['spawn', 'forkserver'])
def test_helpers_end_with_a_killed_parent(method, with_children, tmpdir, progress, report):
    shm_before = rs.shm_entries()
    driver = rs.Driver('drive_killed_parent.py', [method, int(with_children), str(tmpdir)])
    try:
        line = driver.wait_for_line('READY', 60)
        assert line is not None, driver.finish(1)
        ready = rs.read_results(line, 'READY')[0]
        assert ready['shm'], 'the parent made no /dev/shm entry: nothing to check'
        os.kill(ready['parent'], signal.SIGKILL)
        killed_at = rs.monotonic()
        gone_after = {}
        helpers = [(kind, pid) for kind, pids in ready['helpers'].items() for pid in pids]
        while rs.monotonic() - killed_at < 30:
            now = rs.monotonic() - killed_at
            for kind_pid in helpers:
                if kind_pid not in gone_after and not _alive(kind_pid[1]):
                    gone_after[kind_pid] = now
            if len(gone_after) == len(helpers):
                break
            rs.time.sleep(0.02)
        children_gone = rs.monotonic() - killed_at
    finally:
        run = driver.finish(timeout=60, settle=15)
    progress('%s: %s' % (method, ', '.join('%s %d gone after %.2f s' % (k, p, t) for (k, p), t
                                           in sorted(gone_after.items()))))
    problems = []
    slowest = {}
    for (kind, pid) in helpers:
        took = gone_after.get((kind, pid))
        slowest[kind] = max(slowest.get(kind, 0), took if took is not None else float('inf'))
        limit = HELPER_GRACE
        if kind == 'resource tracker' and with_children:
            limit = 20      # it waits for the children, which finish their work first
        if took is None or took > limit:
            problems.append('%s (pid %d) outlived the parent by %s s' % (
                kind, pid, 'more than 30' if took is None else '%.1f' % took))
    markers = {}
    if with_children:
        for daemon in (False, True):
            path = tmpdir.join('child-daemon-%s.json' % daemon)
            if not path.check():
                problems.append('the %sdaemonic child did not finish its work after the '
                                "parent's death" % ('' if daemon else 'non-'))
                continue
            markers[daemon] = json.loads(path.read())
            m = markers[daemon]
            if m['parent_alive'] or not m['lock_ok'] or not m['queue_ok']:
                problems.append('child after the parent died: %r' % m)
    if run.leftovers:
        problems.append('processes left once the tree should have ended: %r' % run.leftovers)
    shm_left = rs.shm_entries() - shm_before
    deadline = rs.monotonic() + 5
    while shm_left and rs.monotonic() < deadline:
        rs.time.sleep(0.05)
        shm_left = rs.shm_entries() - shm_before
    if shm_left:
        problems.append('/dev/shm entries left: %s' % sorted(shm_left))
    report("Item 2: parent SIGKILLed (seconds until each helper was gone)", [
        ('method', method), ('children', 'two (one daemonic)' if with_children else 'none')]
        + [(kind, '%.2f' % t if t != float('inf') else 'still alive')
           for kind, t in sorted(slowest.items())]
        + [('children finished', 'yes' if len(markers) == 2 else ('-' if not with_children
                                                                  else 'NO')),
           ('/dev/shm clean', 'no' if shm_left else 'yes')])
    assert not problems, '\n'.join(problems) + '\n%r' % run
