"""Conformance: the context API (get_context, start methods, module-level
functions) and the errors Python 3 gives for its misuse.

Tests that change the process-wide default start method run in a script.
"""
import os
import sys

import pytest

import mpspawn
import support
from support import run_python, write_file


def test_get_context_returns_named_context(start_method):
    ctx = mpspawn.get_context(start_method)
    assert ctx.get_start_method() == start_method
    assert ctx.get_context() is ctx
    assert mpspawn.get_context(start_method) is ctx


@pytest.mark.parametrize('bad', ['spwan', '', 'thread', 42])
def test_unknown_start_method(bad):
    with pytest.raises(ValueError):
        mpspawn.get_context(bad)


def test_concrete_context_cannot_set_start_method(ctx):
    with pytest.raises(ValueError):
        ctx.set_start_method('spawn')


def test_all_start_methods():
    methods = mpspawn.get_all_start_methods()
    assert 'spawn' in methods
    assert set(methods) <= set(['fork', 'spawn', 'forkserver'])
    if sys.platform.startswith('linux'):
        assert methods[0] == 'fork'
        assert 'fork' in methods


def test_module_api_exists():
    for name in ['Process', 'current_process', 'active_children', 'parent_process',
                 'freeze_support', 'Manager', 'Pipe', 'cpu_count', 'log_to_stderr',
                 'get_logger', 'allow_connection_pickling', 'BufferTooShort',
                 'TimeoutError', 'Lock', 'RLock', 'Semaphore', 'BoundedSemaphore',
                 'Condition', 'Event', 'Barrier', 'Queue', 'JoinableQueue',
                 'SimpleQueue', 'Pool', 'Value', 'Array', 'RawValue', 'RawArray',
                 'SUBDEBUG', 'SUBWARNING', 'ProcessError', 'AuthenticationError',
                 'get_context', 'get_start_method', 'set_start_method',
                 'get_all_start_methods', 'set_executable', 'set_forkserver_preload']:
        assert hasattr(mpspawn, name), name
    assert issubclass(mpspawn.BufferTooShort, mpspawn.ProcessError)
    assert issubclass(mpspawn.AuthenticationError, mpspawn.ProcessError)
    assert issubclass(mpspawn.TimeoutError, mpspawn.ProcessError)


def test_cpu_count():
    n = mpspawn.cpu_count()
    assert isinstance(n, int) and n >= 1


def test_logger():
    logger = mpspawn.get_logger()
    assert logger.name == 'multiprocessing'
    assert logger is mpspawn.get_logger()


def test_log_to_stderr_in_child(tmpdir, start_method):
    write_file(str(tmpdir.join('logging_child.py')), '''
        import logging
        import sys
        import mpspawn as multiprocessing

        def work():
            multiprocessing.get_logger().warning('hello from the child')

        if __name__ == '__main__':
            multiprocessing.log_to_stderr(logging.INFO)
            ctx = multiprocessing.get_context(sys.argv[1])
            p = ctx.Process(target=work, name='logger-child')
            p.start()
            p.join()
    ''')
    result = run_python(['logging_child.py', start_method], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert '[WARNING/logger-child] hello from the child' in result.err, result


DEFAULTS_SCRIPT = '''
import sys
import mpspawn as multiprocessing

print('NONE %r' % multiprocessing.get_start_method(allow_none=True))
print('DEFAULT %s' % multiprocessing.get_start_method())
try:
    multiprocessing.set_start_method('spawn')
except RuntimeError as exc:
    print('SECOND SET REFUSED %s' % exc)
multiprocessing.set_start_method('spawn', force=True)
print('FORCED %s' % multiprocessing.get_start_method())
multiprocessing.set_start_method(None, force=True)
print('RESET %r' % multiprocessing.get_start_method(allow_none=True))
'''


def test_set_and_get_start_method(tmpdir):
    write_file(str(tmpdir.join('defaults.py')), DEFAULTS_SCRIPT)
    result = run_python(['defaults.py'], cwd=str(tmpdir))
    assert result.returncode == 0, result
    default = mpspawn.get_all_start_methods()[0]
    assert 'NONE None' in result.out
    assert 'DEFAULT %s' % default in result.out
    assert 'SECOND SET REFUSED context has already been set' in result.out
    assert 'FORCED spawn' in result.out
    assert 'RESET None' in result.out


def test_set_start_method_before_use(tmpdir):
    write_file(str(tmpdir.join('setfirst.py')), '''
        import os
        import mpspawn as multiprocessing

        def work(conn):
            conn.send(multiprocessing.get_start_method())
            conn.close()

        if __name__ == '__main__':
            multiprocessing.set_start_method('spawn')
            r, w = multiprocessing.Pipe(duplex=False)
            p = multiprocessing.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('CHILD METHOD %s' % r.recv())
            p.join()
            print('TYPE %s' % type(p).__name__)
    ''')
    result = run_python(['setfirst.py'], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'CHILD METHOD spawn' in result.out, result


def test_environment_variable_changes_default(tmpdir):
    write_file(str(tmpdir.join('env.py')), '''
        import mpspawn as multiprocessing

        def work(conn):
            import sys
            conn.send(sorted(m for m in sys.modules if m.endswith('__mp_main__')))
            conn.close()

        if __name__ == '__main__':
            print('NONE %r' % multiprocessing.get_start_method(allow_none=True))
            r, w = multiprocessing.Pipe(duplex=False)
            p = multiprocessing.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('CHILD %r' % (r.recv(),))
            p.join()
            print('METHOD %s' % multiprocessing.get_start_method())
            multiprocessing.set_start_method('fork', force=True)
    ''')
    result = run_python(['env.py'], cwd=str(tmpdir), env={'MPSPAWN_START_METHOD': 'spawn'})
    assert result.returncode == 0, result
    assert 'NONE None' in result.out
    assert "CHILD ['__mp_main__']" in result.out, result
    assert 'METHOD spawn' in result.out


def test_environment_variable_unknown_method(tmpdir):
    result = run_python(['-c', 'import mpspawn'], cwd=str(tmpdir),
                        env={'MPSPAWN_START_METHOD': 'sapwn'})
    assert result.returncode != 0
    assert 'sapwn' in result.err


def test_set_executable_honoured(tmpdir):
    log = str(tmpdir.join('wrapper.log'))
    wrapper = write_file(str(tmpdir.join('python-wrapper')), '''
        #!/bin/sh
        echo "wrapper used" >> %s
        exec %s "$@"
    ''' % (log, sys.executable))
    os.chmod(wrapper, 0o755)
    write_file(str(tmpdir.join('setexe.py')), '''
        import sys
        import mpspawn as multiprocessing

        def work():
            pass

        if __name__ == '__main__':
            ctx = multiprocessing.get_context('spawn')
            ctx.set_executable(sys.argv[1])
            p = ctx.Process(target=work)
            p.start()
            p.join()
            print('EXIT %s' % p.exitcode)
    ''')
    result = run_python(['setexe.py', wrapper], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'EXIT 0' in result.out
    assert 'wrapper used' in open(log).read()


@pytest.mark.mpspawn_only
def test_exec_failure_raised_in_parent(tmpdir):
    """Python 3 loses the exec error (the child just exits 255)."""
    write_file(str(tmpdir.join('badexe.py')), '''
        import mpspawn as multiprocessing

        def work():
            pass

        if __name__ == '__main__':
            ctx = multiprocessing.get_context('spawn')
            ctx.set_executable('/nonexistent/bin/python')
            p = ctx.Process(target=work)
            try:
                p.start()
            except OSError as exc:
                print('RAISED %s %s' % (type(exc).__name__, exc.errno))
            print('CHILDREN %d' % len(multiprocessing.active_children()))
    ''')
    result = run_python(['badexe.py'], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'RAISED' in result.out and ' 2' in result.out, result
    assert 'CHILDREN 0' in result.out
