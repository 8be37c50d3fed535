"""Item 1 of the robustness suite: children SIGKILLed at random points.

For each scenario, drive_killed_children.py runs under spawn and under
forkserver at the same time (each in a session of its own), kills a child
at a random point per run (fixed seed) and reports every run.  Here we hold
it to:

* no hang: every blocking call the driver made returned within its bound,
  and the driver (and with it every process of its tree) ended;
* the killed child's exit code is -9 (SIGKILL) and it was reaped (no
  zombie);
* a survivor -- a child using other objects of the same context -- kept
  answering after every kill;
* the resource tracker cleaned what the dead left: once the trees have
  ended, /dev/shm holds none of the semaphores or shared-memory blocks the
  killed children created;
* the outcomes are the documented ones (docs/robustness.rst): a queue whose
  user was killed mid-operation may be wedged or corrupt (as in Python 3),
  never silently wrong; a lock held by the dead stays held; a Pool fails the
  lost task with WorkerLostError and keeps working; a Manager keeps working.
"""
import pytest

import robust_support as rs

RUNS = {'queue_put': 6, 'queue_get': 8, 'lock': 10, 'pool': 10, 'manager': 10, 'starting': 16}
if rs.FULL:
    RUNS = dict((name, 50) for name in RUNS)
METHODS = ['spawn', 'forkserver']
SEED = 20240707

ALLOWED_OUTCOMES = {
    'queue_put': ('queue works', 'queue wedged (Empty)', 'queue broken ('),
    'queue_get': ('queue works', 'queue wedged (Empty)', 'queue broken ('),
    'lock': ('lock free', 'lock held by the dead (acquire timed out)'),
    'pool': ('map completed', 'map failed: WorkerLostError'),  # (and '; next map lost ...')
    'manager': ('manager works',),
    'starting': ('exit code -9', 'exit code 0'),
}
# Errors a run may meet (anything else fails the test).
ALLOWED_ERRORS = {
    'queue_put': ('OSError', 'EOFError', 'UnpicklingError'),
    'queue_get': ('OSError', 'EOFError', 'UnpicklingError'),
    'lock': (),
    'pool': ('WorkerLostError',),
    'manager': (),
    'starting': (),
}


@pytest.mark.parametrize('scenario', sorted(RUNS))
def test_kill_children_at_random_points(scenario, progress, report):
    runs = rs.run_drivers(
        [('drive_killed_children.py', [method, scenario, RUNS[scenario], SEED])
         for method in METHODS],
        timeout=110 if not rs.FULL else 1200, echo=progress)
    problems = []
    for method, run in zip(METHODS, runs):
        summary = run.summary()
        if run.timed_out or run.returncode != 0 or summary is None:
            problems.append('%s driver did not finish cleanly: %r' % (method, run))
            continue
        report('Item 1: children killed at random points (SIGKILL, seed %d)' % SEED, [
            ('method', method), ('scenario', scenario), ('runs', summary['runs']),
            ('hangs', summary['hangs']), ('errors raised', summary['errors']),
            ('outcomes', summary['outcomes']), ('exit codes', summary['exitcodes']),
            ('survivor failures', summary['survivor_failures']),
            ('zombies', summary['zombies'])])
        if summary['hangs']:
            hangs = [r['hangs'] for r in run.results() if r['hangs']]
            problems.append('%s: %d hang(s): %s' % (method, summary['hangs'], hangs))
        if summary['runs'] != RUNS[scenario]:
            problems.append('%s: %d of %d runs' % (method, summary['runs'], RUNS[scenario]))
        if summary['survivor_failures']:
            problems.append('%s: the survivor failed after %d kill(s)'
                            % (method, summary['survivor_failures']))
        if summary['zombies']:
            problems.append('%s: %d unreaped child(ren)' % (method, summary['zombies']))
        for outcome in summary['outcomes']:
            if not outcome.startswith(ALLOWED_OUTCOMES[scenario]):
                problems.append('%s: unexpected outcome %r' % (method, outcome))
        for error in summary['errors']:
            if error not in ALLOWED_ERRORS[scenario]:
                problems.append('%s: unexpected error %r' % (method, error))
        for outcome in summary['outcomes']:
            if 'unusable' in outcome:
                problems.append('%s: %r' % (method, outcome))
        if scenario != 'pool' and scenario != 'starting':
            codes = set(summary['exitcodes'])
            if codes != set(['-9']):
                problems.append('%s: killed children exit codes %r' % (method, codes))
        if run.leftovers:
            problems.append('%s: processes outlived the driver: %r' % (method, run.leftovers))
    if runs[0].shm_left:
        problems.append('/dev/shm entries left after the trees ended: %s'
                        % sorted(runs[0].shm_left))
    assert not problems, '\n'.join(problems)


def test_killed_children_resources_are_cleaned_by_the_tracker():
    """The killed children's own lock and shared-memory block are unlinked
    by the resource tracker when the tree ends, and it says so."""
    run, = rs.run_drivers([('drive_killed_children.py', ['spawn', 'lock', 3, SEED])],
                          timeout=60)
    assert run.returncode == 0, run
    assert 'resource_tracker: cleaning up 6 leaked resource(s)' in run.err, run
    assert not run.shm_left, run
