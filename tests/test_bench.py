"""The benchmark (bench/run.py) keeps working: its --quick mode runs on the
current interpreter and writes a complete JSON report.

Never a timing assertion: only that every measurement produced samples or
says why it could not ("n/a"), and none failed.
"""
import json
import os
import sys

import support

BENCH = os.path.join(os.path.dirname(support.TESTS_DIR), 'bench', 'run.py')
HERE = 'py2' if sys.version_info[0] == 2 else 'py3'

# Rows every system reports (as samples or as n/a), and the floors.
SYSTEM_ROWS = ['start_join_imported', 'start_join_main', 'first_instruction',
               'start8', 'cold_start', 'cold_first_child', 'queue_small',
               'queue_1mib', 'pipe_rt_1cpu', 'pipe_rt_2cpu', 'pool_first_result',
               'pool_shutdown', 'pool_lifecycle', 'pool_map', 'lock', 'lock_no_thread',
               'value_incr', 'manager_dict', 'idle_uss']
FLOOR_ROWS = ['python_c_pass', 'python_S_c_pass', 'fork_exit_wait', 'raw_pipe',
              'pickle_small', 'pickle_1mib']


def run_quick(tmpdir, *extra):
    out_path = str(tmpdir.join('bench.json'))
    args = [BENCH, '--quick', '--systems', HERE, '--python' + HERE[-1], sys.executable,
            '--json', out_path] + list(extra)
    result = support.run_python(args, timeout=100)
    assert result.returncode == 0, result
    with open(out_path) as f:
        return json.load(f), result


def test_quick_run_writes_complete_json(tmpdir):
    report, result = run_quick(tmpdir)

    for key in ('command', 'started', 'machine', 'interpreters', 'systems',
                'system_order', 'reference', 'rows', 'results', 'targets', 'text',
                'quick', 'rounds'):
        assert key in report, key
    assert report['quick'] is True and report['rounds'] == 1
    assert '--quick' in report['command']
    assert report['machine']['cpu_count'] >= 1
    assert list(report['interpreters']) == [HERE]
    info = report['interpreters'][HERE]
    assert info['version'].startswith('%d.%d' % sys.version_info[:2])

    floor = 'floor' + HERE[-1]
    expected_systems = {
        'py2': ['mpspawn-fork', 'mpspawn-spawn', 'mpspawn-forkserver', 'stdlib2-fork'],
        'py3': ['stdlib3-spawn', 'stdlib3-forkserver', 'stdlib3-fork'],
    }[HERE] + [floor]
    assert report['system_order'] == expected_systems
    assert sorted(report['results']) == sorted(expected_systems)

    problems = []
    for system in expected_systems:
        rows = FLOOR_ROWS if system == floor else SYSTEM_ROWS
        got = report['results'][system]
        assert sorted(got) == sorted(rows), system
        for row in rows:
            entry = got[row]
            if 'error' in entry:
                problems.append('%s %s: %s' % (system, row, entry['error']))
            elif 'na' not in entry:
                assert entry['n'] == len(entry['samples']) >= 1
                assert entry['min'] <= entry['median'] <= entry['max']
    assert not problems, '\n'.join(problems) + '\n' + result.err

    # The standard library has every feature: nothing may be n/a there
    # (except a second CPU for the pinned pipe on a one-CPU machine).
    for system in expected_systems:
        if system.startswith('stdlib') or system == floor:
            missing = [row for row, entry in report['results'][system].items()
                       if 'median' not in entry and row != 'pipe_rt_2cpu']
            assert not missing, (system, missing)

    # The table names every system, and progress went to stderr.
    for system in expected_systems:
        assert system in report['text']
    assert '[round 1/1' in result.err
    assert not [e for e in report['events'] if 'warning' in e], report['events']

    # A saved run prints again, here with the minimum as the figure.
    again = support.run_python([BENCH, '--from-json', str(tmpdir.join('bench.json')),
                                '--stat', 'min'], timeout=60)
    assert again.returncode == 0, again
    assert 'Systems: min cost per operation' in again.out
    assert 'Issue 6 targets' in again.out


def test_unknown_system_is_refused(tmpdir):
    result = support.run_python([BENCH, '--quick', '--systems', 'nonesuch'], timeout=60)
    assert result.returncode != 0
    assert 'unknown system' in result.err
