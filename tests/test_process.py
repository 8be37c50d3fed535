"""Conformance: the Process API, for every start method.

Runs against mpspawn on 2.7 and against the standard library on Python 3.
"""
import functools
import os
import signal
import sys
import time

import pytest

import mpspawn
import support
import targets


def start(ctx, target, *args, **kwargs):
    p = ctx.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    return p


def test_start_join_exitcode_zero(ctx):
    p = start(ctx, targets.noop)
    p.join()
    assert p.exitcode == 0
    assert not p.is_alive()


@pytest.mark.parametrize('code', [0, 3, 77])
def test_sys_exit_code(ctx, code):
    p = start(ctx, targets.exit_with, code)
    p.join()
    assert p.exitcode == code


def test_sys_exit_none_and_message(ctx):
    p = start(ctx, targets.exit_with, None)
    p.join()
    assert p.exitcode == 0
    p = start(ctx, targets.exit_with, 'a message for stderr')
    p.join()
    assert p.exitcode == 1


def test_os_exit_code(ctx):
    p = start(ctx, targets.os_exit, 7)
    p.join()
    assert p.exitcode == 7


def test_exception_gives_one(ctx):
    p = start(ctx, targets.raise_error, 'boom')
    p.join()
    assert p.exitcode == 1


@pytest.mark.parametrize('signame', ['SIGTERM', 'SIGUSR1', 'SIGKILL'])
def test_death_by_signal(ctx, signame):
    signum = getattr(signal, signame)
    p = start(ctx, targets.kill_self, signum)
    p.join()
    assert p.exitcode == -signum


def test_terminate_and_kill(ctx):
    p = start(ctx, targets.sleep, 30)
    assert p.is_alive()
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM
    p = start(ctx, targets.sleep, 30)
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL


def test_terminate_ignored_then_kill(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets.ignore_sigterm_then_sleep, w)
    w.close()
    assert r.recv() == 'ready'
    p.terminate()
    p.join(0.3)
    assert p.is_alive() and p.exitcode is None
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    r.close()


def test_join_timeout_returns_while_running(ctx):
    p = start(ctx, targets.sleep, 30)
    t0 = time.time()
    p.join(0.2)
    elapsed = time.time() - t0
    assert p.is_alive()
    assert p.exitcode is None
    assert elapsed < 10
    p.kill()
    p.join()


def test_pid_ident_sentinel(ctx):
    p = ctx.Process(target=targets.noop)
    assert p.pid is None and p.ident is None
    with pytest.raises(ValueError):
        p.sentinel
    p.start()
    assert isinstance(p.pid, int) and p.pid == p.ident and p.pid != os.getpid()
    from mpspawn.connection import wait
    assert wait([p.sentinel], timeout=30) == [p.sentinel]
    p.join()


def test_default_names_and_identity(ctx):
    p = ctx.Process(target=targets.noop)
    q = ctx.Process(target=targets.noop, name='explicit')
    assert p.name.startswith(type(p).__name__ + '-')
    assert q.name == 'explicit'
    p.name = 'renamed'
    assert p.name == 'renamed'


def test_child_sees_its_identity(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets.report_process, args=(w,), name='worker-7')
    p.daemon = True
    p.start()
    w.close()
    info = r.recv()
    p.join()
    r.close()
    assert info['name'] == 'worker-7'
    assert info['pid'] == info['ident'] == p.pid
    assert info['daemon'] is True
    assert info['authkey'] == bytes(mpspawn.current_process().authkey)
    assert info['parent_pid'] == os.getpid()
    assert info['parent_name'] == mpspawn.current_process().name
    assert info['parent_alive'] is True
    assert info['start_method'] == ctx.get_start_method()


def test_authkey_setter_reaches_child(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets.report_process, args=(w,))
    p.authkey = b'0123456789abcdef'
    p.start()
    w.close()
    info = r.recv()
    p.join()
    r.close()
    assert info['authkey'] == b'0123456789abcdef'


def test_daemon_keyword(ctx):
    p = ctx.Process(target=targets.noop, daemon=True)
    assert p.daemon is True
    p2 = ctx.Process(target=targets.noop)
    assert p2.daemon is False


def test_daemon_cannot_change_after_start(ctx):
    p = start(ctx, targets.noop)
    with pytest.raises(AssertionError):
        p.daemon = True
    p.join()


def test_main_process_identity():
    me = mpspawn.current_process()
    assert me.name == 'MainProcess'
    assert me.pid == os.getpid()
    assert me.is_alive()
    assert mpspawn.parent_process() is None


def test_parent_process_in_child_alive_while_parent_is(ctx):
    r, w = ctx.Pipe()
    p = start(ctx, targets.watch_parent, w, 0.3)
    assert r.recv() == 'ready'
    alive, waited = r.recv()
    p.join()
    r.close()
    w.close()
    assert alive is True
    assert waited >= 0.25


def test_start_twice(ctx):
    p = start(ctx, targets.noop)
    with pytest.raises(AssertionError):
        p.start()
    p.join()


def test_join_before_start(ctx):
    p = ctx.Process(target=targets.noop)
    with pytest.raises(AssertionError):
        p.join()


def test_close(ctx):
    p = start(ctx, targets.sleep, 30)
    with pytest.raises(ValueError):
        p.close()
    p.kill()
    p.join()
    p.close()
    p.close()  # twice is fine
    for action in (p.is_alive, p.join, p.start, p.terminate, p.kill):
        with pytest.raises(ValueError):
            action()
    for attr in ('pid', 'exitcode', 'sentinel'):
        with pytest.raises(ValueError):
            getattr(p, attr)
    assert 'closed' in repr(p)


def test_close_unstarted(ctx):
    p = ctx.Process(target=targets.noop)
    p.close()
    with pytest.raises(ValueError):
        p.start()


def test_repr_states(ctx):
    p = ctx.Process(target=targets.exit_with, args=(4,), name='r')
    assert 'initial' in repr(p) and "name='r'" in repr(p)
    p.start()
    p.join()
    text = repr(p)
    assert 'stopped' in text and 'exitcode=4' in text and 'pid=%d' % p.pid in text
    p2 = start(ctx, targets.kill_self, signal.SIGKILL)
    p2.join()
    assert 'exitcode=-SIGKILL' in repr(p2)


def test_active_children(ctx):
    p = start(ctx, targets.sleep, 30)
    assert p in mpspawn.active_children()
    p.kill()
    p.join()
    assert p not in mpspawn.active_children()


def test_run_overridden_in_subclass(ctx):
    r, w = ctx.Pipe(duplex=False)
    cls = targets.doubler_for(ctx)
    p = cls(w, 21)
    p.start()
    w.close()
    assert r.recv() == ('run', 42, cls.__name__)
    p.join()
    r.close()
    assert p.exitcode == 0


def test_run_in_parent_calls_target():
    calls = []
    p = mpspawn.Process(target=calls.append, args=(1,))
    p.run()
    assert calls == [1]


def test_args_and_kwargs(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets.send_back, args=(w, 1, 'two', [3.0]),
                    kwargs={'four': {'five': (6,)}})
    p.start()
    w.close()
    assert r.recv() == ((1, 'two', [3.0]), {'four': {'five': (6,)}})
    p.join()
    r.close()


@pytest.mark.parametrize('kind', ['bound', 'classmethod', 'staticmethod'])
def test_methods_as_targets(ctx, kind):
    r, w = ctx.Pipe(duplex=False)
    worker = targets.Worker('v')
    target, expected = {
        'bound': (worker.method, ('method', 'v', 'x')),
        'classmethod': (targets.Worker.class_method, ('classmethod', 'Worker', 'x')),
        'staticmethod': (targets.Worker.static_method, ('staticmethod', 'x')),
    }[kind]
    p = start(ctx, target, w, 'x')
    w.close()
    assert r.recv() == expected
    p.join()
    r.close()


def test_partial_and_methods_as_arguments(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets.call_and_send, w, targets.PARTIAL_ADD, 5)
    w.close()
    assert r.recv() == 15
    p.join()
    r.close()
    r, w = ctx.Pipe(duplex=False)
    bound = functools.partial(targets.Worker('b').method)
    p = start(ctx, targets.call_and_send, w, targets.apply_bound, bound)
    w.close()
    assert r.recv() == 'applied'
    p.join()
    r.close()


def test_exitcode_none_while_running(ctx):
    p = start(ctx, targets.sleep, 30)
    assert p.exitcode is None
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM


def test_many_children_at_once(ctx):
    procs = [start(ctx, targets.exit_with, i) for i in range(8)]
    for i, p in enumerate(procs):
        p.join()
        assert p.exitcode == i


def test_daemonic_process_cannot_have_children(ctx):
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets.try_start_grandchild, args=(w,), daemon=True)
    p.start()
    w.close()
    assert r.recv() == 'refused: daemonic processes are not allowed to have children'
    p.join()
    r.close()


EXIT_SCRIPT = '''
import os
import sys
import time
import mpspawn as multiprocessing

def sleeper(path):
    with open(path, 'w') as f:
        f.write(str(os.getpid()))
    time.sleep(%(sleep)s)

if __name__ == '__main__':
    ctx = multiprocessing.get_context(sys.argv[1])
    p = ctx.Process(target=sleeper, args=(sys.argv[2],), daemon=%(daemon)s)
    p.start()
    while not os.path.exists(sys.argv[2]) or not open(sys.argv[2]).read():
        time.sleep(0.01)
    print('PARENT EXITING')
'''


def test_exit_terminates_daemonic_children(tmpdir, start_method):
    support.write_file(str(tmpdir.join('daemon_exit.py')), EXIT_SCRIPT % {'sleep': 60, 'daemon': True})
    pidfile = str(tmpdir.join('pid'))
    result = support.run_python(['daemon_exit.py', start_method, pidfile], cwd=str(tmpdir))
    assert result.returncode == 0, result
    child = int(open(pidfile).read())
    assert support.wait_until(lambda: support.process_info(child) is None, timeout=5)


def test_exit_joins_non_daemonic_children(tmpdir, start_method):
    support.write_file(str(tmpdir.join('join_exit.py')), EXIT_SCRIPT % {'sleep': 0.5, 'daemon': False})
    pidfile = str(tmpdir.join('pid'))
    result = support.run_python(['join_exit.py', start_method, pidfile], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert result.elapsed >= 0.5
    child = int(open(pidfile).read())
    assert support.process_info(child) is None
