"""The robustness suite (faults, load, bad input): its time budget, live
progress lines, and the report printed at the end of the session.

Run it with ``./run-tests -e robustness`` (or ``pytest tests/robustness``
on Python 2.7).  It is not part of the main suite's collection (tox.ini's
``norecursedirs``).  Environment:

* ``MPSPAWN_SOAK_FULL=1``: the full counts of issue 7 (1,000 spawn cycles,
  200 Pool cycles, 100,000 Lock cycles, 50 kills per scenario); slow, and
  exempt from the budget.
* ``MPSPAWN_ROBUSTNESS_BUDGET``: seconds the session may take (default 240);
  a test that would start after that fails, and a running test's timeout is
  cut to what is left of it (5 s at least).
* ``MPSPAWN_ROBUSTNESS_REPORT``: a path; the report is also written there as
  JSON.
"""
import collections
import json
import os
import sys

import pytest

import robust_support

# Tests over all start methods live in the main suite; these are 2.7-only.
if sys.version_info[0] != 2:
    collect_ignore_glob = ['test_*.py']

BUDGET = float(os.environ.get('MPSPAWN_ROBUSTNESS_BUDGET', '240'))
if robust_support.FULL:
    BUDGET = float(os.environ.get('MPSPAWN_ROBUSTNESS_BUDGET', '3600'))
PER_TEST_TIMEOUT = 150 if not robust_support.FULL else 1500
_state = {'start': None, 'config': None, 'report': []}


def pytest_configure(config):
    _state['config'] = config


def pytest_sessionstart(session):
    _state['start'] = robust_support.monotonic()


def _elapsed():
    return robust_support.monotonic() - (_state['start'] or robust_support.monotonic())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    # No test may run past the session's budget: its timeout is cut to what
    # is left (pytest-timeout reads the marker once this returns).
    remaining = BUDGET - _elapsed()
    item.add_marker(pytest.mark.timeout(max(5.0, min(PER_TEST_TIMEOUT, remaining))))
    yield


def pytest_runtest_setup(item):
    if _elapsed() > BUDGET:
        pytest.fail('the robustness session is over its %.0f s budget '
                    '(MPSPAWN_ROBUSTNESS_BUDGET)' % BUDGET, pytrace=False)


def write_line(text):
    """A line on the terminal now, even while output is captured."""
    config = _state['config']
    reporter = config.pluginmanager.getplugin('terminalreporter') if config else None
    capture = config.pluginmanager.getplugin('capturemanager') if config else None
    if reporter is None:
        sys.stderr.write(text + '\n')
        return
    if capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(text)
    else:
        reporter.write_line(text)


@pytest.fixture
def progress():
    """progress(text): a timestamped line on the terminal at once."""
    def say(text):
        write_line('    [%5.1fs] %s' % (_elapsed(), text))
    return say


@pytest.fixture
def report():
    """report(section, [(column, value), ...]): a row of a table in the
    end-of-session report."""
    def add(section, row):
        _state['report'].append((section, collections.OrderedDict(row)))
    return add


def pytest_terminal_summary(terminalreporter):
    if not _state['report']:
        return
    tr = terminalreporter
    tr.section('robustness report (%.0f s; %s counts)' % (
        _elapsed(), 'FULL' if robust_support.FULL else 'reduced'))
    sections = []
    for section, row in _state['report']:
        if section not in sections:
            sections.append(section)
    for section in sections:
        rows = [row for s, row in _state['report'] if s == section]
        tr.write_line('')
        tr.write_line(section)
        columns = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        cells = [[_cell(row.get(c, '')) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        tr.write_line('  ' + ' | '.join(c.ljust(w) for c, w in zip(columns, widths)))
        tr.write_line('  ' + '-+-'.join('-' * w for w in widths))
        for r in cells:
            tr.write_line('  ' + ' | '.join(c.ljust(w) for c, w in zip(r, widths)))
    path = os.environ.get('MPSPAWN_ROBUSTNESS_REPORT')
    if path:
        with open(path, 'w') as f:
            json.dump([{'section': s, 'row': r} for s, r in _state['report']], f,
                      indent=1, sort_keys=True)


def _cell(value):
    if isinstance(value, dict):
        return ', '.join('%s %s' % (k, v) for k, v in sorted(value.items())) or '-'
    if isinstance(value, float):
        return '%.3g' % value
    return str(value)
