"""Item 4 of the robustness suite: soak and load.

Each cycle kind runs in a driver (drive_soak.py) that samples, ten times
along the way, the parent's open descriptors, threads, resident set size and
our /dev/shm entries.  Flat means: after the first checkpoint (which pays
for lazy imports and helpers), descriptors, threads and /dev/shm entries
never rise again, and the RSS grows by at most RSS_SLACK_KIB over the rest
of the run.  Reduced counts by default; MPSPAWN_SOAK_FULL=1 runs issue 7's
full counts (1,000 spawn cycles, 200 Pool cycles, 100,000 Lock cycles).
"""
import pytest

import robust_support as rs

COUNTS = {
    'spawn_cycles': 1000 if rs.FULL else 200,
    'forkserver_cycles': 1000 if rs.FULL else 300,
    'pool_cycles': 200 if rs.FULL else 40,
    'lock_cycles': 100000 if rs.FULL else 20000,
    # Rounds of 64 spawned children alive at once.
    'concurrent_children': 5 if rs.FULL else 2,
}
RSS_SLACK_KIB = 1024


@pytest.mark.parametrize('what', sorted(COUNTS))
def test_resources_stay_flat(what, progress, report):
    run, = rs.run_drivers([('drive_soak.py', [what, COUNTS[what]])],
                          timeout=200 if not rs.FULL else 1400, echo=progress)
    points = run.results('CHECKPOINT')
    assert run.returncode == 0 and not run.timed_out and points, run
    first, rest = points[1], points[1:]
    last = points[-1]
    cycles = last['cycle']
    per_cycle_ms = 1000.0 * (last['seconds'] - points[0]['seconds']) / cycles
    report('Item 4: soak and load (parent of the cycles; first = after the first tenth)', [
        ('cycles', '%s x %d' % (what, cycles)),
        ('ms per cycle', '%.2f' % per_cycle_ms),
        ('fds start/first/max/end', '%d/%d/%d/%d' % (points[0]['fds'], first['fds'],
                                                     max(p['fds'] for p in rest), last['fds'])),
        ('threads first/max/end', '%d/%d/%d' % (first['threads'],
                                                max(p['threads'] for p in rest), last['threads'])),
        ('/dev/shm first/max/end', '%d/%d/%d' % (first['shm'], max(p['shm'] for p in rest),
                                                 last['shm'])),
        ('RSS KiB start/first/end', '%d/%d/%d' % (points[0]['rss_kib'], first['rss_kib'],
                                                  last['rss_kib'])),
        ('RSS growth after first (KiB)', last['rss_kib'] - first['rss_kib'])])
    for key in ('fds', 'threads', 'shm'):
        assert max(p[key] for p in rest) <= first[key], (key, points)
    assert last['rss_kib'] - first['rss_kib'] <= RSS_SLACK_KIB, points
    assert not run.leftovers and not run.shm_left, run
