"""The benchmark's measurements and their catalogue.

``ROWS`` lists every figure of the tables (name, unit, description) and
``GROUPS`` the worker runs that produce them; run.py reads both.  Each
``measure_<group>(ctx, params, tmpdir)`` returns ``{row: [samples]}`` in
base units (seconds or bytes, per operation); a row may instead be a
string, the reason it is not available here.  ``run()`` is what
worker.py calls: it loads the system and classifies failures.

This module is imported only inside the worker's main(), so spawned
children never import it.
"""
import os
import sys
import time
import threading

if sys.version_info[0] >= 3:
    clock = time.perf_counter
else:
    clock = time.time  # gettimeofday: microsecond resolution on Linux

MiB = 1 << 20
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


# -- The catalogue: every row of the table, and the groups that measure them --
#
# A row is one figure in the table.  Every figure is a COST: time per
# operation or bytes, so lower is better and a ratio below 1.00 means
# cheaper than the reference.
#   name: (unit, description)
ROWS = [
    ('start_join_imported', 'ms',
     'start()+join() of a no-op child, target in an imported module'),
    ('start_join_main', 'ms',
     'start()+join() of a no-op child, target defined in the main script'),
    ('first_instruction', 'ms',
     'from start() to the first line of the child\'s target'),
    ('start8', 'ms',
     '8 children started at once, then all joined'),
    ('cold_start', 'ms',
     'fresh interpreter: import, first child (with helper processes), exit'),
    ('cold_first_child', 'ms',
     'the same, inside the interpreter: from import to the first join'),
    ('queue_small', 'us',
     'Queue: per small item (int), parent put -> child get, 100k items'),
    ('queue_1mib', 'ms',
     'Queue: per 1 MiB bytes payload, parent put -> child get'),
    ('pipe_rt_1cpu', 'us',
     'Pipe send+recv round trip of a small object, both ends on one CPU'),
    ('pipe_rt_2cpu', 'us',
     'the same, the two ends pinned to two different CPUs'),
    ('pool_first_result', 'ms',
     'Pool(2) creation to the first apply() result'),
    ('pool_shutdown', 'ms',
     'then Pool.close() + Pool.join()'),
    ('pool_lifecycle', 'ms',
     'the two together: Pool(2) to first result plus shutdown'),
    ('pool_map', 'us',
     'Pool(2).map per trivial item, 100k items, default chunksize'),
    ('lock', 'us',
     'uncontended Lock acquire()+release(), in a process that has run a thread'),
    ('lock_no_thread', 'us',
     'the same, before the process has run any thread'),
    ('value_incr', 'us',
     'per increment of a shared Value under its lock, 2 processes at once'),
    ('manager_dict', 'us',
     'Manager().dict(): one d[k] = v plus one d[k]'),
    ('idle_uss', 'MiB',
     'private memory (USS) of an idle child of this start method'),
    # Floors: the interpreter alone, measured by the "floor" systems.
    ('python_c_pass', 'ms', '`python -c pass`'),
    ('python_S_c_pass', 'ms', '`python -S -c pass`'),
    ('fork_exit_wait', 'ms', 'os.fork(), child os._exit(0), parent waitpid'),
    ('raw_pipe', 'ms', 'os.write of 1 MiB into a pipe read by a forked child'),
    ('pickle_small', 'us', 'pickle dumps+loads of a small tuple'),
    ('pickle_1mib', 'ms', 'pickle dumps+loads of 1 MiB bytes'),
]

UNIT_SCALE = {'ms': 1e3, 'us': 1e6, 'MiB': 1.0 / MiB}

# A group is one worker run: (name, kind, rows, full params, quick params).
# kind 'system' runs for every multiprocessing system, 'floor' for every
# interpreter.
GROUPS = [
    ('start_join', 'system', ['start_join_imported', 'start_join_main'],
     {'samples': 20}, {'samples': 2}),
    ('first_instruction', 'system', ['first_instruction'],
     {'samples': 10}, {'samples': 2}),
    ('start8', 'system', ['start8'], {'samples': 5}, {'samples': 1}),
    ('cold_start', 'system', ['cold_start', 'cold_first_child'],
     {'samples': 3}, {'samples': 1}),
    ('queue_small', 'system', ['queue_small'],
     {'samples': 3, 'items': 100000}, {'samples': 1, 'items': 2000}),
    ('queue_1mib', 'system', ['queue_1mib'],
     {'samples': 3, 'items': 100}, {'samples': 1, 'items': 3}),
    ('pipe_rt', 'system', ['pipe_rt_1cpu', 'pipe_rt_2cpu'],
     {'samples': 1, 'round_trips': 20000}, {'samples': 1, 'round_trips': 300}),
    ('pool', 'system', ['pool_first_result', 'pool_shutdown', 'pool_lifecycle'],
     {'samples': 3}, {'samples': 1}),
    ('pool_map', 'system', ['pool_map'],
     {'samples': 3, 'items': 100000}, {'samples': 1, 'items': 2000}),
    ('lock', 'system', ['lock_no_thread', 'lock'],
     {'samples': 5, 'ops': 200000}, {'samples': 1, 'ops': 2000}),
    ('value_incr', 'system', ['value_incr'],
     {'samples': 1, 'count': 50000}, {'samples': 1, 'count': 500}),
    ('manager_dict', 'system', ['manager_dict'],
     {'samples': 1, 'ops': 5000}, {'samples': 1, 'ops': 100}),
    ('idle_uss', 'system', ['idle_uss'], {'samples': 2}, {'samples': 1}),
    ('interpreter_start', 'floor', ['python_c_pass', 'python_S_c_pass'],
     {'samples': 10}, {'samples': 2}),
    ('fork_exit_wait', 'floor', ['fork_exit_wait'],
     {'samples': 50}, {'samples': 3}),
    ('raw_pipe', 'floor', ['raw_pipe'],
     {'samples': 1, 'mib': 256}, {'samples': 1, 'mib': 4}),
    ('pickle', 'floor', ['pickle_small', 'pickle_1mib'],
     {'samples': 3, 'items': 100000, 'big_items': 50},
     {'samples': 1, 'items': 1000, 'big_items': 2}),
]

# How long one worker may take before run.py kills it (seconds).
TIMEOUT_FULL = 300
TIMEOUT_QUICK = 30

# Generous deadlines for single blocking calls inside a measurement.
WAIT = 60.0


class NotAvailable(Exception):
    """The system lacks what this measurement needs."""


# -- Loading the system under test ---------------------------------------------

def load_context(impl, method, repo):
    """The multiprocessing context to measure."""
    if impl == 'mpspawn':
        sys.path.insert(0, repo)
        import mpspawn
        try:
            return mpspawn.get_context(method)
        except ValueError as exc:
            raise NotAvailable('start method %s: %s' % (method, exc))
    import multiprocessing
    if hasattr(multiprocessing, 'get_context'):
        try:
            return multiprocessing.get_context(method)
        except ValueError as exc:
            raise NotAvailable('start method %s: %s' % (method, exc))
    if method != 'fork':
        raise NotAvailable('this multiprocessing has only fork')
    return multiprocessing  # 2.7: the module is the (fork) context


def active_children(ctx):
    import multiprocessing
    if hasattr(ctx, 'active_children'):
        return ctx.active_children()
    return multiprocessing.active_children()


def join_checked(p, timeout=WAIT):
    p.join(timeout)
    if p.exitcode is None:
        raise RuntimeError('child %r did not finish within %s s' % (p, timeout))
    if p.exitcode != 0:
        raise RuntimeError('child failed with exit code %r' % (p.exitcode,))


def wait_for_file(path, process=None, timeout=WAIT):
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if process is not None and process.exitcode is not None:
            raise RuntimeError('child exited with code %r before writing %s'
                               % (process.exitcode, path))
        if time.time() > deadline:
            raise RuntimeError('no %s after %s s' % (path, timeout))
        time.sleep(0.002)


def read_file(path):
    with open(path) as f:
        return f.read()


# -- Measurements of a multiprocessing system --------------------------------
# Each takes (ctx, params, tmpdir) and returns {row: [samples]}.

def measure_start_join(ctx, params, tmpdir):
    import bench_targets
    rows = {}
    noop_in_main = sys.modules['__main__'].noop_in_main  # worker.py's
    for row, target in (('start_join_imported', bench_targets.noop),
                        ('start_join_main', noop_in_main)):
        join_checked(_start(ctx, target))  # warm-up: helper processes, imports
        samples = []
        for _ in range(params['samples']):
            t0 = clock()
            p = ctx.Process(target=target)
            p.start()
            p.join()
            samples.append(clock() - t0)
            if p.exitcode != 0:
                raise RuntimeError('child failed with exit code %r' % (p.exitcode,))
        rows[row] = samples
    return rows


def _start(ctx, target, args=()):
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def measure_first_instruction(ctx, params, tmpdir):
    import bench_targets
    join_checked(_start(ctx, bench_targets.noop))
    samples = []
    for i in range(params['samples']):
        path = os.path.join(tmpdir, 'stamp%d' % i)
        t0 = time.time()
        p = _start(ctx, bench_targets.stamp, (path,))
        join_checked(p)
        samples.append(float(read_file(path)) - t0)
    return {'first_instruction': samples}


def measure_start8(ctx, params, tmpdir):
    import bench_targets
    join_checked(_start(ctx, bench_targets.noop))
    samples = []
    for _ in range(params['samples']):
        t0 = clock()
        children = [_start(ctx, bench_targets.noop) for _ in range(8)]
        for p in children:
            p.join()
        samples.append(clock() - t0)
        for p in children:
            join_checked(p)
    return {'start8': samples}


def measure_cold_start(ctx, params, tmpdir):
    import subprocess
    spec = SPEC  # ctx was loaded only to check that the method exists
    script = os.path.join(BENCH_DIR, 'cold_start.py')
    cmd = [sys.executable, script, spec['impl'], spec['method'], spec['repo']]
    total, inner = [], []
    for _ in range(params['samples']):
        t0 = clock()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=tmpdir)
        out = proc.communicate()[0]
        total.append(clock() - t0)
        if proc.returncode != 0:
            raise RuntimeError('cold_start.py failed with exit code %r'
                               % (proc.returncode,))
        inner.append(float(out.decode('ascii').strip().splitlines()[-1]))
    return {'cold_start': total, 'cold_first_child': inner}


def _queue_run(ctx, items, payload):
    """Seconds to put ``items`` payloads in one queue and have a child get
    them all (the child is started and ready before the clock starts)."""
    import bench_targets
    q_in, q_out = ctx.Queue(), ctx.Queue()
    p = _start(ctx, bench_targets.consume, (q_in, q_out))
    try:
        if q_out.get(timeout=WAIT) != 'ready':
            raise RuntimeError('consumer did not start')
        t0 = clock()
        if payload is None:
            for i in range(items):
                q_in.put(i)
        else:
            for _ in range(items):
                q_in.put(payload)
        q_in.put(None)
        count, size = q_out.get(timeout=WAIT * 4)
        elapsed = clock() - t0
        expected = items * len(payload) if payload is not None else 0
        if count != items or size != expected:
            raise RuntimeError('child got %d items / %d bytes, expected %d / %d'
                               % (count, size, items, expected))
        join_checked(p)
    finally:
        if p.exitcode is None:
            p.terminate()
            p.join(WAIT)
    for q in (q_in, q_out):
        q.close()
        q.join_thread()
    return elapsed


def measure_queue_small(ctx, params, tmpdir):
    n = params['items']
    return {'queue_small': [_queue_run(ctx, n, None) / n
                            for _ in range(params['samples'])]}


def measure_queue_1mib(ctx, params, tmpdir):
    n = params['items']
    payload = b'x' * MiB
    return {'queue_1mib': [_queue_run(ctx, n, payload) / n
                           for _ in range(params['samples'])]}


def measure_pipe_rt(ctx, params, tmpdir):
    import bench_targets
    allowed = bench_targets.get_affinity()
    if not allowed:
        raise NotAvailable('cannot read the CPU affinity')
    cpus = sorted(allowed)
    rows = {}
    layouts = [('pipe_rt_1cpu', cpus[0], cpus[0])]
    if len(cpus) >= 2:
        layouts.append(('pipe_rt_2cpu', cpus[0], cpus[1]))
    else:
        rows['pipe_rt_2cpu'] = 'only one CPU is available'
    n = params['round_trips']
    try:
        for row, parent_cpu, child_cpu in layouts:
            samples = []
            for _ in range(params['samples']):
                here, there = ctx.Pipe()
                p = _start(ctx, bench_targets.echo, (there, [child_cpu]))
                there.close()
                bench_targets.set_affinity([parent_cpu])
                if not here.poll(WAIT) or here.recv() != 'ready':
                    raise RuntimeError('echo child did not start')
                msg = ('ping', 1)
                t0 = clock()
                for _ in range(n):
                    here.send(msg)
                    here.recv()
                samples.append((clock() - t0) / n)
                here.send(None)
                join_checked(p)
                here.close()
                bench_targets.set_affinity(cpus)
            rows[row] = samples
    finally:
        bench_targets.set_affinity(cpus)
    return rows


def measure_pool(ctx, params, tmpdir):
    import bench_targets
    first, shutdown, total = [], [], []
    for _ in range(params['samples']):
        t0 = clock()
        pool = ctx.Pool(2)
        try:
            pool.apply_async(bench_targets.noop).get(WAIT)
            t1 = clock()
            pool.close()
            pool.join()
            t2 = clock()
        except BaseException:
            pool.terminate()
            raise
        first.append(t1 - t0)
        shutdown.append(t2 - t1)
        total.append(t2 - t0)
    return {'pool_first_result': first, 'pool_shutdown': shutdown,
            'pool_lifecycle': total}


def measure_pool_map(ctx, params, tmpdir):
    import bench_targets
    n = params['items']
    pool = ctx.Pool(2)
    try:
        pool.map(bench_targets.double, range(100))  # workers up and warm
        samples = []
        for _ in range(params['samples']):
            t0 = clock()
            result = pool.map_async(bench_targets.double, range(n)).get(WAIT * 4)
            samples.append((clock() - t0) / n)
            if len(result) != n or result[-1] != 2 * (n - 1):
                raise RuntimeError('Pool.map returned a wrong result')
        pool.close()
        pool.join()
    except BaseException:
        pool.terminate()
        raise
    return {'pool_map': samples}


def measure_lock(ctx, params, tmpdir):
    lock = ctx.Lock()
    acquire, release = lock.acquire, lock.release
    n = params['ops']
    # The first named semaphore starts the resource tracker, whose own
    # start-up (an interpreter importing modules) runs on the other CPU for
    # tens of milliseconds; on two hyperthreads of one core that slows this
    # loop by 10-30%.  Measure the lock, not the helper's start-up.
    time.sleep(0.3)

    def timed_samples():
        samples = []
        for _ in range(params['samples']):
            t0 = clock()
            for _ in range(n):
                acquire()
                release()
            samples.append((clock() - t0) / n)
        return samples
    # 2.7's eval loop hands the GIL over every 100 ticks once the GIL
    # exists, which is after the first thread starts or ctypes is imported
    # (mpspawn's named semaphores need ctypes).  Every program that has
    # started a thread pays that on every bytecode, so compare the locks with
    # the interpreters in that same state, and show the other figure too.
    before_any_thread = timed_samples()
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    return {'lock_no_thread': before_any_thread, 'lock': timed_samples()}


def measure_value_incr(ctx, params, tmpdir):
    import bench_targets
    n = params['count']
    samples = []
    for s in range(params['samples']):
        value = ctx.Value('i', 0)
        paths = [os.path.join(tmpdir, 'incr%d-%d' % (s, i)) for i in range(2)]
        children = [_start(ctx, bench_targets.increment, (value, n, path))
                    for path in paths]
        for p in children:
            join_checked(p, WAIT * 4)
        stamps = [[float(x) for x in read_file(path).split()] for path in paths]
        if value.value != 2 * n:
            raise RuntimeError('lost increments: %d instead of %d'
                               % (value.value, 2 * n))
        elapsed = max(end for _, end in stamps) - min(start for start, _ in stamps)
        samples.append(elapsed / (2 * n))
    return {'value_incr': samples}


def measure_manager_dict(ctx, params, tmpdir):
    n = params['ops']
    manager = ctx.Manager()
    try:
        d = manager.dict()
        d['key'] = 0
        d['key']
        samples = []
        for _ in range(params['samples']):
            t0 = clock()
            for i in range(n):
                d['key'] = i
                d['key']
            samples.append((clock() - t0) / n)
        if d['key'] != n - 1:
            raise RuntimeError('manager dict holds a wrong value')
    finally:
        manager.shutdown()
    return {'manager_dict': samples}


def private_bytes(pid):
    """USS: the process's private (unshared) resident memory, in bytes."""
    for name in ('smaps_rollup', 'smaps'):
        try:
            f = open('/proc/%d/%s' % (pid, name))
        except (IOError, OSError):
            continue
        with f:
            total = 0
            for line in f:
                if line.startswith(('Private_Clean:', 'Private_Dirty:')):
                    total += int(line.split()[1]) * 1024
        return total
    raise NotAvailable('no /proc/<pid>/smaps on this system')


def measure_idle_uss(ctx, params, tmpdir):
    import bench_targets
    samples = []
    for i in range(params['samples']):
        ready = os.path.join(tmpdir, 'ready%d' % i)
        p = _start(ctx, bench_targets.idle, (ready,))
        try:
            wait_for_file(ready, p)
            time.sleep(0.05)  # let the child reach its sleep
            samples.append(private_bytes(p.pid))
        finally:
            p.terminate()
            p.join(WAIT)
    return {'idle_uss': samples}


# -- Floors: the interpreter's own costs ----------------------------------------

def measure_interpreter_start(ctx, params, tmpdir):
    import subprocess
    rows = {}
    for row, flags in (('python_c_pass', []), ('python_S_c_pass', ['-S'])):
        cmd = [sys.executable] + flags + ['-c', 'pass']
        subprocess.call(cmd)  # warm the page cache
        samples = []
        for _ in range(params['samples']):
            t0 = clock()
            if subprocess.call(cmd) != 0:
                raise RuntimeError('%s failed' % (cmd,))
            samples.append(clock() - t0)
        rows[row] = samples
    return rows


def measure_fork_exit_wait(ctx, params, tmpdir):
    samples = []
    for _ in range(params['samples']):
        t0 = clock()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        samples.append(clock() - t0)
    return {'fork_exit_wait': samples}


def measure_raw_pipe(ctx, params, tmpdir):
    chunk = b'x' * MiB
    n = params['mib']
    samples = []
    for _ in range(params['samples']):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(w)
                while os.read(r, 1 << 16):
                    pass
            finally:
                os._exit(0)
        os.close(r)
        t0 = clock()
        for _ in range(n):
            view = memoryview(chunk)
            while len(view):
                view = view[os.write(w, view):]
        os.close(w)
        os.waitpid(pid, 0)
        samples.append((clock() - t0) / n)
    return {'raw_pipe': samples}


def measure_pickle(ctx, params, tmpdir):
    if sys.version_info[0] == 2:
        import cPickle as pickle
        protocol = 2  # what mpspawn and 2.7's multiprocessing use
    else:
        import pickle
        protocol = pickle.DEFAULT_PROTOCOL  # what Python 3's ForkingPickler uses
    dumps, loads = pickle.dumps, pickle.loads
    rows = {}
    for row, obj, n in (('pickle_small', (12345, 'item', 1.5, None), params['items']),
                        ('pickle_1mib', b'x' * MiB, params['big_items'])):
        samples = []
        for _ in range(params['samples']):
            t0 = clock()
            for _ in range(n):
                loads(dumps(obj, protocol))
            samples.append((clock() - t0) / n)
        rows[row] = samples
    return rows


# -- Worker entry point -----------------------------------------------------------

SPEC = None


def run(spec):
    """Run one group as ``spec`` says; the result dict printed by main()."""
    import shutil
    import tempfile
    global SPEC
    SPEC = spec
    measure = globals()['measure_' + spec['group']]
    tmpdir = tempfile.mkdtemp(prefix='mpspawn-bench-')
    ctx = None
    try:
        try:
            if spec['impl'] != 'floor':
                ctx = load_context(spec['impl'], spec['method'], spec['repo'])
            rows = measure(ctx, spec['params'], tmpdir)
        except NotAvailable as exc:
            return {'na': str(exc)}
        except (ImportError, NotImplementedError) as exc:
            return {'na': 'not implemented (%s: %s)' % (type(exc).__name__, exc)}
        except Exception as exc:
            import traceback
            traceback.print_exc()
            return {'error': '%s: %s' % (type(exc).__name__, exc)}
        return {'rows': rows}
    finally:
        if ctx is not None:
            for p in active_children(ctx):
                p.terminate()
                p.join(WAIT)
        shutil.rmtree(tmpdir, ignore_errors=True)
