"""mpspawn benchmark driver (runs on Python 2.7 and 3).

    python bench/run.py [--systems NAME[,NAME...]] [--quick] [--rounds N]
                        [--json OUT.json] [--reference NAME] [--groups G,...]
                        [--python2 PATH] [--python3 PATH] [--stat median|min]
    python bench/run.py --from-json OUT.json [--stat min] [--reference NAME]

Times process start-up, queues, pipes, pools, locks, shared values,
managers and child memory for several *systems* (an interpreter, an
implementation and a start method), side by side on one machine, and
prints medians, spreads and ratios against a reference system.  See
bench/README.rst for what each measurement means and how to read the
tables; the measurements themselves are in bench/measures.py.

Every (round, measurement group, system) runs in a fresh worker process
of that system's interpreter; the systems take turns within every group
and their order rotates from round to round, so a slow patch on a busy
machine hits all of them alike.  A system that lacks a feature reports
"n/a" with the reason, and the run goes on.
"""
from __future__ import print_function

import argparse
import glob
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
WORKER = os.path.join(BENCH_DIR, 'worker.py')

sys.path.insert(0, BENCH_DIR)
import measures as catalogue  # noqa: E402  (the measurement catalogue)

# name: (interpreter, implementation, start method)
SYSTEMS = [
    ('mpspawn-fork', 'py2', 'mpspawn', 'fork'),
    ('mpspawn-spawn', 'py2', 'mpspawn', 'spawn'),
    ('mpspawn-forkserver', 'py2', 'mpspawn', 'forkserver'),
    ('stdlib2-fork', 'py2', 'stdlib', 'fork'),
    ('stdlib3-spawn', 'py3', 'stdlib', 'spawn'),
    ('stdlib3-forkserver', 'py3', 'stdlib', 'forkserver'),
    ('stdlib3-fork', 'py3', 'stdlib', 'fork'),
]
# The interpreter floors are measured by one pseudo-system per interpreter.
FLOORS = {'py2': 'floor2', 'py3': 'floor3'}
ALIASES = {
    'all': [s[0] for s in SYSTEMS],
    'py2': [s[0] for s in SYSTEMS if s[1] == 'py2'],
    'py3': [s[0] for s in SYSTEMS if s[1] == 'py3'],
    'mpspawn': [s[0] for s in SYSTEMS if s[2] == 'mpspawn'],
}
DEFAULT_REFERENCE = 'stdlib3-spawn'
DEFAULT_PY3_VERSION = '3.11'

# Issue 6's targets, as bounds on COST ratios (throughput "at least 1.2x"
# becomes "costs at most 1/1.2"):
#   (what, system, row, reference system, reference row, upper bound)
TARGETS = [
    ('spawn start+join <= 1.5x `python2.7 -c pass`',
     'mpspawn-spawn', 'start_join_imported', 'floor2', 'python_c_pass', 1.5),
    ('spawn start+join <= 0.5x CPython 3 spawn',
     'mpspawn-spawn', 'start_join_imported', 'stdlib3-spawn', 'start_join_imported', 0.5),
    ('forkserver start+join <= 0.5x CPython 3 forkserver',
     'mpspawn-forkserver', 'start_join_imported', 'stdlib3-forkserver',
     'start_join_imported', 0.5),
    ('Queue small items >= 1.2x CPython 3 spawn',
     'mpspawn-spawn', 'queue_small', 'stdlib3-spawn', 'queue_small', 1 / 1.2),
    ('Queue small items >= 1.0x 2.7\'s own Queue',
     'mpspawn-fork', 'queue_small', 'stdlib2-fork', 'queue_small', 1.0),
    ('Queue 1 MiB payloads >= 1.0x CPython 3 spawn',
     'mpspawn-spawn', 'queue_1mib', 'stdlib3-spawn', 'queue_1mib', 1.0),
    ('Pool.map >= 1.0x 2.7\'s own fork Pool',
     'mpspawn-fork', 'pool_map', 'stdlib2-fork', 'pool_map', 1.0),
    ('Pool(2) to first result + shutdown <= 1.0x CPython 3 spawn Pool',
     'mpspawn-spawn', 'pool_lifecycle', 'stdlib3-spawn', 'pool_lifecycle', 1.0),
    ('Lock acquire+release >= 0.9x 2.7\'s own Lock (thread run)',
     'mpspawn-spawn', 'lock', 'stdlib2-fork', 'lock', 1 / 0.9),
    ('Manager dict round trips >= 1.0x CPython 3 spawn',
     'mpspawn-spawn', 'manager_dict', 'stdlib3-spawn', 'manager_dict', 1.0),
    ('idle spawned child USS <= 1.0x CPython 3 spawned child',
     'mpspawn-spawn', 'idle_uss', 'stdlib3-spawn', 'idle_uss', 1.0),
]


def progress(msg):
    sys.stderr.write(msg + '\n')
    sys.stderr.flush()


# -- Interpreters ---------------------------------------------------------------

def clean_env():
    """The environment of every benchmarked process: no PYTHON* or MPSPAWN_*
    variable (in particular bytecode writing stays on, and no PYTHONPATH)."""
    return dict((k, v) for k, v in os.environ.items()
                if not k.startswith(('PYTHON', 'MPSPAWN_')))


def pyenv_pythons(prefix):
    root = os.environ.get('PYENV_ROOT') or os.path.expanduser('~/.pyenv')
    found = glob.glob(os.path.join(root, 'versions', prefix + '.*', 'bin', 'python'))

    def version_key(path):
        version = path.split(os.sep)[-3]
        return [int(x) if x.isdigit() else 0 for x in version.split('.')]
    return sorted(found, key=version_key, reverse=True)


def which(name):
    for directory in os.environ.get('PATH', '').split(os.pathsep):
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def default_python2():
    found = pyenv_pythons('2.7') or [which('python2.7')]
    return found[0]


def default_python3():
    """A clean venv (no site-packages of the base install, no pip) of
    CPython 3.11, created once under ~/.cache/mpspawn-bench.  The base
    install may import third-party start-up hooks from .pth files in its
    site-packages, which every spawned child would pay for."""
    base = (pyenv_pythons(DEFAULT_PY3_VERSION) or [which('python' + DEFAULT_PY3_VERSION)])[0]
    if base is None:
        return None
    version = subprocess.check_output(
        [base, '-S', '-c', 'import platform; print(platform.python_version())'],
        env=clean_env()).decode('ascii').strip()
    cache = os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache')
    venv = os.path.join(cache, 'mpspawn-bench', 'venv-' + version)
    python = os.path.join(venv, 'bin', 'python')
    if not os.path.exists(python):
        progress('creating %s (python -m venv --without-pip)' % venv)
        subprocess.check_call([base, '-m', 'venv', '--without-pip', venv],
                              env=clean_env())
    return python


PROBE = ('import json, os, platform, sys; print(json.dumps({'
         '"executable": sys.executable, "version": platform.python_version(),'
         '"implementation": platform.python_implementation(),'
         '"prefix": sys.prefix, "base_prefix": getattr(sys, "base_prefix", sys.prefix),'
         '"flags": str(sys.flags)}))')


def probe(python):
    out = subprocess.check_output([python, '-c', PROBE], env=clean_env())
    info = json.loads(out.decode('utf-8').strip().splitlines()[-1])
    info['path'] = python
    return info


def byte_compile(python, paths):
    """Write bytecode for the code under test (bytecode writing may be off
    in the calling environment)."""
    rc = subprocess.call([python, '-m', 'compileall', '-q'] + paths,
                         env=clean_env(), stdout=open(os.devnull, 'w'))
    if rc != 0:
        progress('warning: compileall with %s exited %d' % (python, rc))


# -- Running one worker -----------------------------------------------------------

def run_worker(python, spec, timeout, tmpdir):
    """Run worker.py for ``spec`` in its own session, with TMPDIR=``tmpdir``;
    kill that session if it outlives ``timeout``.  Returns the worker's
    result dict, with a 'warning' if processes or temp files outlived it."""
    env = clean_env()
    env['TMPDIR'] = tmpdir
    proc = subprocess.Popen([python, WORKER, json.dumps(spec)], cwd=REPO,
                            env=env, stdin=open(os.devnull),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=os.setsid, close_fds=True)
    killed = []

    def kill():
        killed.append(True)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    timer = threading.Timer(timeout, kill)
    timer.start()
    try:
        out, err = proc.communicate()
    finally:
        timer.cancel()
    lingering = not killed and not _group_gone(proc.pid, 5.0)
    if lingering:
        kill()
    out = out.decode('utf-8', 'replace')
    err = err.decode('utf-8', 'replace')
    result = None
    for line in out.splitlines():
        if line.startswith('BENCH-RESULT '):
            result = json.loads(line[len('BENCH-RESULT '):])
    if result is None:
        why = ('timed out after %s s' % timeout if killed
               else 'worker exited with code %s' % proc.returncode)
        tail = err.strip().splitlines()[-1:] or ['']
        result = {'error': '%s %s' % (why, tail[0])}
    elif lingering:
        result['warning'] = 'processes outlived the worker by 5 s: killed'
    elif killed:
        result['warning'] = 'helper processes outlived the worker by %s s' % timeout
    left = sorted(os.listdir(tmpdir))
    if left:
        warning = 'left in its TMPDIR (removed): %s' % ', '.join(left)
        result['warning'] = '; '.join(filter(None, [result.get('warning'), warning]))
        for name in left:
            path = os.path.join(tmpdir, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    if 'error' in result and err.strip():
        result['stderr'] = err[-2000:]
    return result


def _group_gone(pgid, timeout):
    """Wait until no live process of group ``pgid`` is left (zombies waiting
    for init to reap them do not count)."""
    deadline = time.time() + timeout
    while _group_alive(pgid):
        if time.time() > deadline:
            return False
        time.sleep(0.01)
    return True


def _group_alive(pgid):
    if not os.path.isdir('/proc/self'):
        try:
            os.killpg(pgid, 0)
        except OSError:
            return False
        return True
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (IOError, OSError):
            continue
        # fields after the command: state ppid pgrp ...
        if int(fields[2]) == pgid and fields[0] != 'Z':
            return True
    return False


# -- Statistics and formatting -------------------------------------------------------

def percentile(sorted_values, fraction):
    """Linear interpolation between closest ranks."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = fraction * (len(sorted_values) - 1)
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summarise(samples):
    values = sorted(float(v) for v in samples)
    return {'n': len(values), 'median': percentile(values, 0.5),
            'q1': percentile(values, 0.25), 'q3': percentile(values, 0.75),
            'min': values[0], 'max': values[-1]}


def fmt_value(value):
    if value >= 100:
        return '%.0f' % value
    if value >= 10:
        return '%.1f' % value
    if value >= 1:
        return '%.2f' % value
    return '%.3f' % value


def render_table(header, rows, left=(0,)):
    """Plain-text columns; those numbered in ``left`` are left-aligned."""
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = []
    for row in [header, None] + rows:
        if row is None:
            lines.append('  '.join('-' * w for w in widths))
        else:
            cells = [c.ljust(w) if i in left else c.rjust(w)
                     for i, (c, w) in enumerate(zip(row, widths))]
            lines.append('  '.join(cells).rstrip())
    return '\n'.join(lines)


class Notes(object):
    """Footnotes for n/a and error cells."""

    def __init__(self):
        self.texts = []

    def mark(self, text):
        if text not in self.texts:
            self.texts.append(text)
        return '[%d]' % (self.texts.index(text) + 1)

    def render(self):
        return '\n'.join('[%d] %s' % (i + 1, t) for i, t in enumerate(self.texts))


def cell_status(results, system, row):
    """(summary or None, note text or None) for one cell."""
    entry = results.get(system, {}).get(row)
    if entry is None:
        return None, None
    if 'median' in entry:
        return entry, None
    if 'na' in entry:
        return None, 'n/a: ' + entry['na']
    return None, 'error: ' + entry.get('error', '?')


def tables(report, notes):
    """The text of the result tables (figures: report['statistic'])."""
    stat = report.get('statistic', 'median')
    results = report['results']
    reference = report['reference']
    units = dict((name, unit) for name, unit, _ in catalogue.ROWS)
    out = []
    order = report['system_order']
    systems = [s for s in order if report['systems'][s]['impl'] != 'floor']
    floors = [s for s in order if report['systems'][s]['impl'] == 'floor']
    ref_interp = report['systems'].get(reference, {}).get('interpreter')
    floor_ref = FLOORS.get(ref_interp) if ref_interp else None
    if floor_ref not in floors:
        floor_ref = floors[0] if floors else None

    for title, columns, ref in (('Systems', systems, reference),
                                ('Interpreter floors', floors, floor_ref)):
        row_names = [name for name, _, _ in catalogue.ROWS
                     if any(name in results.get(s, {}) for s in columns)]
        if not columns or not row_names:
            continue
        header = ['%s (ratio to %s)' % (stat, ref), 'unit'] + columns
        body, spread_body = [], []
        for row in row_names:
            scale = catalogue.UNIT_SCALE[units[row]]
            ref_entry, _ = cell_status(results, ref, row)
            cells, spreads = [], []
            for system in columns:
                entry, note = cell_status(results, system, row)
                if entry is None:
                    if note is None:
                        cells.append('-')
                    else:
                        cells.append(note.split(':')[0] + notes.mark(note))
                    spreads.append('-')
                    continue
                text = fmt_value(entry[stat] * scale)
                if ref_entry is not None and ref_entry[stat] > 0:
                    text += ' (%.2fx)' % (entry[stat] / ref_entry[stat])
                cells.append(text)
                iqr = (entry['q3'] - entry['q1']) / entry['median'] * 100 if entry['median'] else 0
                spreads.append('%.0f%% n=%d' % (iqr, entry['n']))
            body.append([row, units[row]] + cells)
            spread_body.append([row] + spreads)
        out.append('%s: %s cost per operation, lower is better; (x) = ratio to %s'
                   % (title, stat, ref))
        out.append(render_table(header, body))
        out.append('')
        out.append('%s: spread (interquartile range as %% of the median) and samples'
                   % title)
        out.append(render_table(['spread'] + columns, spread_body))
        out.append('')
    return '\n'.join(out)


def evaluate_targets(results, stat='median'):
    checked = []
    for what, system, row, ref_system, ref_row, bound in TARGETS:
        entry, note = cell_status(results, system, row)
        ref_entry, ref_note = cell_status(results, ref_system, ref_row)
        item = {'target': what, 'system': system, 'row': row,
                'reference': ref_system, 'reference_row': ref_row,
                'max_cost_ratio': bound}
        if entry is None or ref_entry is None or not ref_entry[stat]:
            item['status'] = 'not measured'
            item['why'] = note or ref_note or 'not in this run'
        else:
            item['cost_ratio'] = entry[stat] / ref_entry[stat]
            item['status'] = 'met' if item['cost_ratio'] <= bound else 'MISSED'
        checked.append(item)
    return checked


def targets_text(checked, stat='median'):
    rows = []
    for item in checked:
        if 'cost_ratio' in item:
            ratio = '%.2f' % item['cost_ratio']
        else:
            ratio = '-'
        rows.append([item['target'], item['system'], item['reference'], ratio,
                     '<= %.2f' % item['max_cost_ratio'],
                     item['status'] if 'cost_ratio' in item
                     else item['why']])
    return ('Issue 6 targets: cost of system / cost of reference, %s figures '
            '(lower is better)\n' % stat
            + render_table(['target', 'system', 'reference', 'ratio', 'bound', 'status'],
                           rows, left=(0, 1, 2, 5)))


# -- Main -------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        description='Benchmark mpspawn against 2.7\'s and Python 3\'s multiprocessing.')
    parser.add_argument('--systems', action='append', default=None,
                        help='systems to run, comma separated (repeatable): %s, '
                        'or the groups %s (default: all)'
                        % (', '.join(s[0] for s in SYSTEMS), ', '.join(sorted(ALIASES))))
    parser.add_argument('--groups', default=None,
                        help='measurement groups to run, comma separated: %s'
                        % ', '.join(g[0] for g in catalogue.GROUPS))
    parser.add_argument('--no-floors', action='store_true',
                        help='skip the interpreter floors')
    parser.add_argument('--quick', action='store_true',
                        help='tiny counts and one round: a smoke test in seconds')
    parser.add_argument('--rounds', type=int, default=None,
                        help='rounds over all systems (default 5; 1 with --quick)')
    parser.add_argument('--reference', default=None,
                        help='system the ratios are against (default %s)' % DEFAULT_REFERENCE)
    parser.add_argument('--json', default=None,
                        help='write the full results here (default '
                        'bench/results/run-<time>.json)')
    parser.add_argument('--python2', default=None,
                        help='Python 2.7 interpreter (default: pyenv 2.7.x or python2.7)')
    parser.add_argument('--python3', default=None,
                        help='Python 3 interpreter (default: a clean venv of CPython %s '
                        'under ~/.cache/mpspawn-bench)' % DEFAULT_PY3_VERSION)
    parser.add_argument('--stat', choices=['median', 'min'], default='median',
                        help='the figure the tables and targets use (default median; '
                        'min estimates the cost without interference on a busy machine)')
    parser.add_argument('--from-json', metavar='FILE', default=None,
                        help='print the tables of an earlier run (with --stat, '
                        '--reference) instead of running')
    parser.add_argument('--timeout', type=float, default=None,
                        help='seconds one worker may take (default %d; %d with --quick)'
                        % (catalogue.TIMEOUT_FULL, catalogue.TIMEOUT_QUICK))
    return parser.parse_args(argv)


def select_systems(args):
    wanted = []
    for item in args.systems or ['all']:
        for name in item.replace(' ', ',').split(','):
            if not name:
                continue
            names = ALIASES.get(name, [name])
            for n in names:
                if n not in [s[0] for s in SYSTEMS]:
                    raise SystemExit('unknown system %r; choose from %s'
                                     % (n, ', '.join([s[0] for s in SYSTEMS] + sorted(ALIASES))))
                if n not in wanted:
                    wanted.append(n)
    return [s for s in SYSTEMS if s[0] in wanted]


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.from_json:
        return show_earlier(args)
    quick = args.quick
    rounds = args.rounds or (1 if quick else 5)
    timeout = args.timeout or (catalogue.TIMEOUT_QUICK if quick else catalogue.TIMEOUT_FULL)
    selected = select_systems(args)
    groups = catalogue.GROUPS
    if args.groups:
        names = args.groups.split(',')
        unknown = set(names) - set(g[0] for g in groups)
        if unknown:
            raise SystemExit('unknown group(s) %s' % ', '.join(sorted(unknown)))
        groups = [g for g in groups if g[0] in names]

    # Interpreters actually needed.
    interpreters = {}
    needed = sorted(set(s[1] for s in selected))
    for key in needed:
        given = getattr(args, 'python2' if key == 'py2' else 'python3')
        path = given or (default_python2() if key == 'py2' else default_python3())
        if not path:
            progress('warning: no %s interpreter found; skipping its systems' % key)
            continue
        interpreters[key] = probe(path)
        progress('%s = CPython %s  %s' % (key, interpreters[key]['version'], path))
    selected = [s for s in selected if s[1] in interpreters]
    systems = {}
    for name, interp, impl, method in selected:
        systems[name] = {'interpreter': interp, 'impl': impl, 'method': method,
                         'python': interpreters[interp]['path']}
    if not args.no_floors:
        for interp in sorted(interpreters):
            systems[FLOORS[interp]] = {'interpreter': interp, 'impl': 'floor',
                                       'method': None,
                                       'python': interpreters[interp]['path']}
    order = [s[0] for s in selected] + [FLOORS[i] for i in sorted(interpreters)
                                        if FLOORS[i] in systems]
    if not order:
        raise SystemExit('nothing to run')
    reference = args.reference or (DEFAULT_REFERENCE if DEFAULT_REFERENCE in systems
                                   else order[0])
    if reference not in systems:
        raise SystemExit('reference %r is not among the systems run' % reference)

    for interp, info in sorted(interpreters.items()):
        paths = [BENCH_DIR]
        if interp == 'py2':
            paths.insert(0, os.path.join(REPO, 'mpspawn'))
        byte_compile(info['path'], paths)

    report = {
        'command': [sys.executable] + sys.argv if argv is None else ['run.py'] + list(argv),
        'started': time.strftime('%Y-%m-%dT%H:%M:%S%z'),
        'machine': {'cpu_count': _cpu_count(), 'platform': platform.platform(),
                    'machine': platform.machine(), 'loadavg_start': _loadavg()},
        'driver_python': platform.python_version(),
        'quick': quick, 'rounds': rounds, 'timeout': timeout,
        'interpreters': interpreters,
        'systems': dict((name, systems[name]) for name in order),
        'system_order': order,
        'reference': reference,
        'rows': dict((name, {'unit': unit, 'description': desc})
                     for name, unit, desc in catalogue.ROWS),
        'git': _git_head(),
    }

    # The work list: for each round, each group, every system it applies to.
    samples = dict((name, {}) for name in order)
    failures = dict((name, {}) for name in order)  # row -> {'na'|'error': why}
    gave_up = set()  # (system, group) that failed: not retried
    events = []
    jobs = []
    for r in range(rounds):
        for group, kind, rows, full, quick_params in groups:
            applicable = [n for n in order
                          if (systems[n]['impl'] == 'floor') == (kind == 'floor')]
            if applicable:
                shift = r % len(applicable)
                applicable = applicable[shift:] + applicable[:shift]
            for name in applicable:
                jobs.append((r, group, rows, quick_params if quick else full, name))

    # Workers get a private TMPDIR, so what they leave behind is seen (and
    # removed) and other programs' temp files do not disturb them.
    run_tmp = tempfile.mkdtemp(prefix='mpspawn-bench-run-')
    t_start = time.time()
    try:
        _run_jobs(jobs, systems, timeout, run_tmp, report, samples, failures,
                  gave_up, events)
    finally:
        shutil.rmtree(run_tmp, ignore_errors=True)
    report['elapsed'] = time.time() - t_start

    results = {}
    for name in order:
        results[name] = {}
        for group, kind, rows, _, _ in groups:
            for row in rows:
                if samples[name].get(row):
                    entry = summarise(samples[name][row])
                    entry['samples'] = samples[name][row]
                    results[name][row] = entry
                elif row in failures[name]:
                    failure = failures[name][row]
                    results[name][row] = dict((k, v) for k, v in failure.items()
                                              if k in ('na', 'error'))
    report['events'] = events
    report['results'] = results
    report['machine']['loadavg_end'] = _loadavg()
    report['statistic'] = args.stat
    report['targets'] = evaluate_targets(results, args.stat)
    report['text'] = report_text(report)
    print(report['text'])

    path = args.json
    if path is None:
        results_dir = os.path.join(BENCH_DIR, 'results')
        if not os.path.isdir(results_dir):
            os.makedirs(results_dir)
        path = os.path.join(results_dir, 'run-%s.json' % time.strftime('%Y%m%d-%H%M%S'))
    with open(path, 'w') as f:
        json.dump(report, f, indent=1, sort_keys=True)
    progress('wrote %s' % path)
    return report


def show_earlier(args):
    """Print the tables of a saved run, with another statistic or reference."""
    with open(args.from_json) as f:
        report = json.load(f)
    if args.reference:
        if args.reference not in report['systems']:
            raise SystemExit('reference %r is not in that run' % args.reference)
        report['reference'] = args.reference
    report['statistic'] = args.stat
    report['targets'] = evaluate_targets(report['results'], args.stat)
    print(report_text(report))
    return report


def report_text(report):
    """Header, tables, targets and notes of a report."""
    rounds, quick = report['rounds'], report['quick']
    interpreters = report['interpreters']
    notes = Notes()
    text = [
        'mpspawn benchmark: %s rounds%s, %s CPUs, load %s -> %s, %.0f s'
        % (rounds, ' (quick)' if quick else '', report['machine']['cpu_count'],
           report['machine']['loadavg_start'], report['machine']['loadavg_end'],
           report['elapsed']),
        'command: %s' % ' '.join(report['command']),
    ]
    for interp, info in sorted(interpreters.items()):
        text.append('%s = CPython %s (%s)' % (interp, info['version'], info['path']))
    text.append('')
    text.append(tables(report, notes))
    text.append(targets_text(report['targets'], report.get('statistic', 'median')))
    if notes.texts:
        text.append('')
        text.append('Notes')
        text.append(notes.render())
    return '\n'.join(text)


def _run_jobs(jobs, systems, timeout, run_tmp, report, samples, failures,
              gave_up, events):
    """Run every job, collecting samples, failures and events."""
    rounds = report['rounds']
    for index, (r, group, rows, params, name) in enumerate(jobs):
        system = systems[name]
        if (name, group) in gave_up:
            continue  # n/a or failed in an earlier round
        spec = {'group': group, 'impl': system['impl'], 'method': system['method'],
                'repo': REPO, 'params': params}
        t0 = time.time()
        result = run_worker(system['python'], spec, timeout, run_tmp)
        took = time.time() - t0
        prefix = '[round %d/%d %3d/%d] %-18s %-18s' % (r + 1, rounds, index + 1,
                                                     len(jobs), group, name)
        if 'rows' in result:
            parts = []
            for row, values in sorted(result['rows'].items()):
                if isinstance(values, list):
                    samples[name].setdefault(row, []).extend(values)
                    unit = report['rows'][row]['unit']
                    median = summarise(values)['median'] * catalogue.UNIT_SCALE[unit]
                    parts.append('%s %s %s' % (row, fmt_value(median), unit))
                else:  # one row of the group is not available: the reason
                    failures[name][row] = {'na': values}
                    parts.append('%s n/a (%s)' % (row, values))
            progress('%s %s  (%.1f s)' % (prefix, ', '.join(parts), took))
            if 'warning' in result:
                progress('    warning: ' + result['warning'])
                events.append({'system': name, 'group': group, 'round': r + 1,
                               'warning': result['warning']})
        else:
            gave_up.add((name, group))
            events.append(dict(result, system=name, group=group, round=r + 1))
            for row in rows:
                failures[name].setdefault(row, result)
            progress('%s %s  (%.1f s)' % (prefix, 'n/a (%s)' % result['na'] if 'na' in result
                                         else 'ERROR %s' % result['error'], took))
            if 'stderr' in result:
                progress('    ' + result['stderr'].strip().replace('\n', '\n    '))


def _cpu_count():
    try:
        return os.sysconf('SC_NPROCESSORS_ONLN')
    except (ValueError, OSError, AttributeError):
        return None


def _loadavg():
    try:
        return '%.2f' % os.getloadavg()[0]
    except (OSError, AttributeError):
        return '?'


def _git_head():
    try:
        out = subprocess.check_output(['git', 'rev-parse', 'HEAD'], cwd=REPO,
                                      stderr=open(os.devnull, 'w'))
        status = subprocess.check_output(['git', 'status', '--porcelain', '--', 'mpspawn'],
                                         cwd=REPO, stderr=open(os.devnull, 'w'))
        return out.decode('ascii').strip() + (' + uncommitted changes in mpspawn/'
                                              if status.strip() else '')
    except (OSError, subprocess.CalledProcessError):
        return None


if __name__ == '__main__':
    main()
