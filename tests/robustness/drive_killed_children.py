"""Driver: SIGKILL children at random points (fixed seed) while they use a
Queue, a Lock, a Pool or a Manager, or while they are being started.

Usage: python drive_killed_children.py METHOD SCENARIO RUNS SEED

Every blocking call made here is bounded (``bounded``): a call that outlives
its bound counts as a hang.  After each kill the driver checks what a user
would: the dead child's exit code, whether the shared object still works
(or how it fails), and that a survivor -- a child using other objects of the
same context throughout -- still answers.  One RESULT line per run, then a
SUMMARY line.
"""
import collections
import os
import random
import signal
import sys
import threading

import mpspawn
from mpspawn import connection, queues

import robust_support as rs
import robust_targets as targets

Empty = queues.Empty

# A timed get() that finds an item cut short by a killed writer waits for the
# rest until the stall limit passes (5 s by default): 1 s keeps runs short.
queues._STALL_LIMIT = 1.0
# Bound of every timed get() made here: its timeout, the stall limit, slack.
GET_BOUND = 2 + queues._STALL_LIMIT + 3


def _name(exc):
    return type(exc).__name__


class Runner(object):

    def __init__(self, method, seed):
        self.ctx = mpspawn.get_context(method)
        self.method = method
        self.rng = random.Random(seed)
        self.seed = seed
        self.record = None

    # -- bookkeeping -------------------------------------------------------------

    def begin(self):
        self.record = {'errors': [], 'hangs': [], 'outcome': None, 'survivor_ok': None,
                       'exitcode': None, 'zombies': 0}

    def call(self, what, seconds, func, *args, **kwds):
        """Run a blocking call under a bound; record a hang or an error
        (Empty, the normal end of a timed get, is no error).  Returns (ok,
        value)."""
        try:
            with rs.bounded(seconds, what):
                return True, func(*args, **kwds)
        except rs.Hang as exc:
            self.record['hangs'].append(str(exc))
            return False, exc
        except Empty as exc:
            return False, exc
        except Exception as exc:
            self.record['errors'].append('%s: %s' % (what, _name(exc)))
            return False, exc

    # -- a child that survives every run ----------------------------------------

    def start_survivor(self):
        ctx = self.ctx
        self.s_in, self.s_out, self.s_lock = ctx.Queue(), ctx.Queue(), ctx.Lock()
        self.survivor = ctx.Process(target=targets.survivor,
                                    args=(self.s_in, self.s_out, self.s_lock))
        self.survivor.start()

    def check_survivor(self, token):
        ok, _ = self.call('survivor put', 5, self.s_in.put, token)
        if ok:
            ok, answer = self.call('survivor get', 10, self.s_out.get, timeout=8)
            ok = ok and answer == ('echo', token)
        self.record['survivor_ok'] = bool(ok and self.survivor.is_alive())

    def stop_survivor(self):
        self.call('survivor stop', 5, self.s_in.put, None)
        self.call('survivor join', 15, self.survivor.join, 10)
        if self.survivor.exitcode != 0:
            self.record['errors'].append('survivor exit code %r' % self.survivor.exitcode)

    # -- helpers -------------------------------------------------------------------

    def start_child(self, target, *args):
        reader, writer = self.ctx.Pipe(duplex=False)
        p = self.ctx.Process(target=target, args=(writer,) + args)
        ok, _ = self.call('child start', 15, p.start)
        writer.close()
        if ok:
            ok, ready = self.call('child ready', 15, reader.poll, 12)
            if not ready:
                self.record['errors'].append('child never ready')
        reader.close()
        return p

    def kill_later(self, pid, delay):
        timer = threading.Timer(delay, _kill_quietly, (pid,))
        timer.daemon = True
        timer.start()
        return timer

    def reap(self, p, timer):
        timer.join(5)
        ok, _ = self.call('join of the killed child', 12, p.join, 10)
        self.record['exitcode'] = p.exitcode
        if p.exitcode is None:
            self.record['hangs'].append('killed child not reaped')
            _kill_quietly(p.pid)
            p.join(5)

    def zombies(self, exclude):
        me = os.getpid()
        return sum(1 for pid, fields in rs.proc_stats()
                   if pid not in exclude and int(fields[1]) == me and fields[0] == 'Z')

    # -- scenarios ------------------------------------------------------------------

    def queue_put(self, run):
        """The child puts small and large items; the parent reads meanwhile."""
        q = self.ctx.Queue()
        p = self.start_child(targets.put_forever, q, self.seed * 1000 + run)
        delay = self.rng.uniform(0.0, 0.25)
        timer = self.kill_later(p.pid, delay)
        self.drain_until_dead(q, p)
        self.reap(p, timer)
        self.drain(q)
        self.probe_queue(q)
        q.close()
        return delay

    def queue_get(self, run):
        """The parent puts small and large items; the child reads them."""
        q = self.ctx.Queue()
        p = self.start_child(targets.get_forever, q)
        delay = self.rng.uniform(0.0, 0.25)
        timer = self.kill_later(p.pid, delay)
        items = targets._items(self.seed * 1000 + run)
        while p.is_alive():
            ok, _ = self.call('put while the reader lives', 5, q.put, next(items))
            if not ok:
                break
            if q.qsize() > 20:
                connection.wait([p.sentinel], 0.01)
        self.reap(p, timer)
        self.drain(q)
        self.probe_queue(q)
        q.close()
        return delay

    def drain_until_dead(self, q, p):
        while True:
            ok, value = self.call('get while the writer lives', GET_BOUND, q.get,
                                  timeout=0.02)
            if not ok and not isinstance(value, Empty):
                return
            if not p.is_alive():
                return

    def drain(self, q):
        """Read what the dead child left, until Empty or an error."""
        for _ in range(10000):
            ok, value = self.call('get after the kill', GET_BOUND, q.get, timeout=0.3)
            if not ok:
                return

    def probe_queue(self, q):
        ok, _ = self.call('probe put', 5, q.put, b'probe')
        if not ok:
            self.record['outcome'] = 'put failed'
            return
        ok, value = self.call('probe get', GET_BOUND, q.get, timeout=0.5)
        if ok and value == b'probe':
            self.record['outcome'] = 'queue works'
        elif isinstance(value, Empty):
            self.record['outcome'] = 'queue wedged (Empty)'
        else:
            self.record['outcome'] = 'queue broken (%s)' % (
                _name(value) if not ok else 'wrong item')
        if self.record['outcome'] != 'queue works':
            # What Python 3's documentation prescribes for a queue whose
            # items may never be read: do not wait for the feeder at exit.
            q.cancel_join_thread()

    def lock(self, run):
        lock = self.ctx.Lock()
        p = self.start_child(targets.lock_forever, lock)
        delay = self.rng.uniform(0.0, 0.1)
        timer = self.kill_later(p.pid, delay)
        self.reap(p, timer)
        ok, got = self.call('acquire after the kill', 5, lock.acquire, True, 1.0)
        if ok and got:
            lock.release()
            self.record['outcome'] = 'lock free'
        elif ok:
            self.record['outcome'] = 'lock held by the dead (acquire timed out)'
        return delay

    def pool(self, run):
        pool = self.pool_obj
        result = pool.map_async(targets.square_slowly, range(60), chunksize=1)
        delay = self.rng.uniform(0.0, 0.12)     # the map takes about 0.15 s
        workers = [w.pid for w in pool._pool]
        victim = self.rng.choice(workers)
        timer = self.kill_later(victim, delay)
        ok, value = self.call('map_async().get', 40, result.get, 30)
        timer.join(5)
        if ok:
            self.record['outcome'] = 'map completed' if value == [x * x for x in range(60)] \
                else 'map gave wrong results'
        else:
            self.record['outcome'] = 'map failed: %s' % _name(value)
            if _name(value) == 'WorkerLostError':
                self.record['errors'].pop()
                self.record['errors'].append('map_async().get: WorkerLostError')
        if not ok and _name(value) == 'WorkerLostError':
            self.record['exitcode'] = value.exitcode
        # The pool replaces the worker and keeps working.  A kill that lands
        # after the map (the worker was idle) may take a task of the next
        # map with it: that one fails too, the one after must not.
        for attempt in (1, 2):
            ok, value = self.call('map after the kill', 40, pool.map, targets.square, range(20))
            if ok or _name(value) != 'WorkerLostError' or attempt == 2:
                break
            self.record['errors'].pop()
            self.record['outcome'] += '; next map lost a task to the kill'
        if not (ok and value == [x * x for x in range(20)]):
            self.record['outcome'] += '; pool unusable afterwards'
        return delay

    def manager(self, run):
        d, l = self.mgr_dict, self.mgr_list
        p = self.start_child(targets.manager_forever, d, l, self.seed * 1000 + run)
        delay = self.rng.uniform(0.0, 0.2)
        timer = self.kill_later(p.pid, delay)
        self.reap(p, timer)
        ok1, _ = self.call('manager set', 10, d.__setitem__, 'probe', run)
        ok2, value = self.call('manager get', 10, d.get, 'probe')
        ok3, _ = self.call('manager list append', 10, l.append, -run)
        ok4, length = self.call('manager len', 10, len, l)
        self.record['outcome'] = 'manager works' if (ok1 and ok2 and ok3 and ok4 and
                                                     value == run) else 'manager broken'
        return delay

    def starting(self, run):
        """Kill the child while it starts: from the moment its pid appears."""
        payload = b'p' * self.rng.choice([10, 100000, 2000000])
        p = self.ctx.Process(target=targets.payload_size, args=(payload,))
        # Until run() begins: ~30 ms for a spawned child, a few for a forked one.
        delay = self.rng.uniform(0.0, 0.06 if self.method == 'spawn' else 0.008)
        if self.method == 'forkserver':
            from mpspawn import forkserver
            forkserver.ensure_running()
            parent = forkserver._forkserver._forkserver_pid
        else:
            parent = os.getpid()
        known = _children_of(parent)
        hunter = threading.Thread(target=_hunt, args=(parent, known, delay))
        hunter.daemon = True
        hunter.start()
        ok, value = self.call('start', 20, p.start)
        hunter.join(10)
        if not ok:
            self.record['outcome'] = 'start raised %s' % _name(value)
            return delay
        self.call('join', 12, p.join, 10)
        self.record['exitcode'] = p.exitcode
        if p.exitcode is None:
            self.record['hangs'].append('started child not reaped')
            p.kill()
            p.join(5)
        self.record['outcome'] = 'exit code %s' % p.exitcode
        # The next child starts normally.
        q = self.ctx.Process(target=targets.getpid)
        self.call('next start', 20, q.start)
        self.call('next join', 20, q.join, 15)
        if q.exitcode != 0:
            self.record['errors'].append('next child exit code %r' % q.exitcode)
        return delay


def _kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _children_of(parent):
    """Children of ``parent``, from the kernel's per-thread lists (fast
    enough to catch a fork server's child while it starts)."""
    pids = set()
    try:
        tasks = os.listdir('/proc/%d/task' % parent)
    except OSError:
        return pids
    for tid in tasks:
        try:
            with open('/proc/%d/task/%s/children' % (parent, tid)) as f:
                pids.update(int(pid) for pid in f.read().split())
        except (IOError, OSError):
            pass
    return pids


def _hunt(parent, known, delay):
    """Kill the first new child of ``parent``, ``delay`` s after it appears."""
    import time
    deadline = rs.monotonic() + 10
    while rs.monotonic() < deadline:
        new = _children_of(parent) - known
        if new:
            time.sleep(delay)
            for pid in new:
                _kill_quietly(pid)
            return
        time.sleep(0.0002)


def main():
    method, scenario, runs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    runner = Runner(method, seed)
    runner.begin()
    runner.start_survivor()
    if scenario == 'pool':
        runner.pool_obj = runner.ctx.Pool(2)
    if scenario == 'manager':
        runner.mgr = runner.ctx.Manager()
        runner.mgr_dict = runner.mgr.dict()
        runner.mgr_list = runner.mgr.list()
    base_children = set([runner.survivor.pid])
    summary = {'method': method, 'scenario': scenario, 'runs': 0, 'hangs': 0,
               'errors': collections.Counter(), 'outcomes': collections.Counter(),
               'exitcodes': collections.Counter(), 'survivor_failures': 0, 'zombies': 0}
    for run in range(runs):
        runner.begin()
        delay = getattr(runner, scenario)(run)
        runner.check_survivor(run)
        record = runner.record
        record['zombies'] = runner.zombies(base_children)
        record['run'] = run
        record['kill_delay'] = round(delay, 4)
        rs.emit('RESULT', record)
        rs.progress('%s %s run %d/%d: %s' % (method, scenario, run + 1, runs, record['outcome']))
        summary['runs'] += 1
        summary['hangs'] += len(record['hangs'])
        summary['errors'].update(e.split(': ', 1)[-1] for e in record['errors'])
        if record['outcome']:
            summary['outcomes'][record['outcome']] += 1
        if record['exitcode'] is not None:
            summary['exitcodes'][str(record['exitcode'])] += 1
        summary['survivor_failures'] += 0 if record['survivor_ok'] else 1
        summary['zombies'] += record['zombies']
    runner.begin()
    if scenario == 'pool':
        runner.call('pool close', 5, runner.pool_obj.close)
        runner.call('pool join', 20, runner.pool_obj.join)
    if scenario == 'manager':
        runner.call('manager shutdown', 20, runner.mgr.shutdown)
    runner.stop_survivor()
    summary['hangs'] += len(runner.record['hangs'])
    summary['errors'].update(runner.record['errors'])
    rs.emit('SUMMARY', summary)
    rs.emit('EXITING', {'at': rs.monotonic()})


if __name__ == '__main__':
    main()
