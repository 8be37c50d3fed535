"""How a child finds what the main module defined: every way a 2.7 program
can be started (DESIGN.md section 3), as real files run by a real
interpreter, for every start method.

Conformance: each case also runs on Python 3 against the standard library.
"""
import os
import py_compile
import sys
import zipfile

import pytest

import support
from support import run_python, write_file

# A target that uses a module-level import and constant: 2.7's runpy clears
# such globals to None when its temporary module dies.
WORKER_BODY = '''
import os
import json
import mpspawn as multiprocessing

FACTOR = 6

def work(conn, x):
    conn.send(json.dumps({'value': x * FACTOR, 'module': __name__,
                          'pid': os.getpid()}))
    conn.close()

def run(method):
    ctx = multiprocessing.get_context(method)
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=work, args=(w, 7))
    p.start()
    w.close()
    result = json.loads(r.recv())
    p.join()
    print('RESULT %s %s %s' % (result['value'], result['module'], p.exitcode))
'''

SCRIPT = WORKER_BODY + '''
if __name__ == '__main__':
    import sys
    run(sys.argv[1])
'''


def check_result(result, module_in_child):
    assert result.returncode == 0, result
    assert 'RESULT 42 %s 0' % module_in_child in result.out, result


def test_script_relative_path(tmpdir, start_method):
    write_file(str(tmpdir.join('app.py')), SCRIPT)
    result = run_python(['app.py', start_method], cwd=str(tmpdir))
    check_result(result, '__main__' if start_method == 'fork' else '__mp_main__')


def test_script_absolute_path_from_elsewhere(tmpdir, start_method):
    script = write_file(str(tmpdir.join('sub', 'app.py')), SCRIPT)
    result = run_python([script, start_method], cwd=str(tmpdir))
    check_result(result, '__main__' if start_method == 'fork' else '__mp_main__')


def test_script_without_suffix(tmpdir, start_method):
    write_file(str(tmpdir.join('tool')), SCRIPT)
    result = run_python(['tool', start_method], cwd=str(tmpdir))
    check_result(result, '__main__' if start_method == 'fork' else '__mp_main__')


def test_compiled_script_only(tmpdir, start_method):
    source = write_file(str(tmpdir.join('compiled_app.py')), SCRIPT)
    compiled = str(tmpdir.join('compiled_app.pyc'))
    py_compile.compile(source, cfile=compiled, doraise=True)
    os.remove(source)
    result = run_python(['compiled_app.pyc', start_method], cwd=str(tmpdir))
    check_result(result, '__main__' if start_method == 'fork' else '__mp_main__')


def test_module_with_dash_m(tmpdir, start_method):
    write_file(str(tmpdir.join('appmod.py')), SCRIPT)
    result = run_python(['-m', 'appmod', start_method], cwd=str(tmpdir))
    check_result(result, '__main__' if start_method == 'fork' else '__mp_main__')


def test_package_module_with_relative_imports(tmpdir, start_method):
    write_file(str(tmpdir.join('pkg', '__init__.py')), '')
    write_file(str(tmpdir.join('pkg', 'helpers.py')), 'FACTOR = 6\n')
    write_file(str(tmpdir.join('pkg', 'mod.py')), '''
        from __future__ import absolute_import
        import json
        import os
        import sys
        from . import helpers
        from .helpers import FACTOR
        import mpspawn as multiprocessing

        def work(conn, x):
            conn.send(json.dumps({'value': x * helpers.FACTOR, 'factor': FACTOR,
                                  'module': __name__}))
            conn.close()

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w, 7))
            p.start()
            w.close()
            result = json.loads(r.recv())
            p.join()
            print('RESULT %s %s %s' % (result['value'], result['module'], p.exitcode))
    ''')
    result = run_python(['-m', 'pkg.mod', start_method], cwd=str(tmpdir))
    check_result(result, '__main__' if start_method == 'fork' else '__mp_main__')


# Packages, directories and zip files run a __main__ module, which children do
# not run again (it usually has no guard): their targets live in a module.
MAIN_USING_HELPER = '''
import sys
import worker
if __name__ == '__main__':
    worker.run(sys.argv[1])
'''


def _write_worker(directory):
    write_file(os.path.join(directory, 'worker.py'), WORKER_BODY)


def test_package_with_dash_m(tmpdir, start_method):
    write_file(str(tmpdir.join('runpkg', '__init__.py')), '')
    write_file(str(tmpdir.join('runpkg', 'worker.py')), WORKER_BODY)
    write_file(str(tmpdir.join('runpkg', '__main__.py')), '''
        import sys
        from runpkg import worker
        worker.run(sys.argv[1])
    ''')
    result = run_python(['-m', 'runpkg', start_method], cwd=str(tmpdir))
    check_result(result, 'runpkg.worker')


def test_directory_app(tmpdir, start_method):
    appdir = str(tmpdir.join('appdir'))
    _write_worker(appdir)
    write_file(os.path.join(appdir, '__main__.py'), MAIN_USING_HELPER)
    result = run_python(['appdir', start_method], cwd=str(tmpdir))
    check_result(result, 'worker')


def test_zip_app(tmpdir, start_method):
    archive = str(tmpdir.join('app.zip'))
    with zipfile.ZipFile(archive, 'w') as zf:
        zf.writestr('worker.py', WORKER_BODY)
        zf.writestr('__main__.py', MAIN_USING_HELPER)
    result = run_python([archive, start_method], cwd=str(tmpdir))
    check_result(result, 'worker')


def test_main_classes_round_trip(tmpdir, spawning_ctx):
    """An instance of a class defined in the script goes to the child and
    comes back (the child names the module __mp_main__)."""
    write_file(str(tmpdir.join('roundtrip.py')), '''
        import sys
        import mpspawn as multiprocessing

        class Point(object):
            def __init__(self, x, y):
                self.x, self.y = x, y

        def mirror(conn, point):
            conn.send(Point(point.y, point.x))
            conn.close()

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=mirror, args=(w, Point(1, 2)))
            p.start()
            w.close()
            back = r.recv()
            p.join()
            print('BACK %s %s %s' % (type(back).__name__, back.x, back.y))
    ''')
    result = run_python(['roundtrip.py', spawning_ctx.get_start_method()], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'BACK Point 2 1' in result.out, result


def test_missing_main_guard_fails_cleanly(tmpdir, spawning_ctx):
    """No fork bomb: the child raises the bootstrapping RuntimeError once,
    the parent sees exit code 1 and carries on."""
    write_file(str(tmpdir.join('noguard.py')), '''
        import sys
        import mpspawn as multiprocessing

        def work():
            pass

        ctx = multiprocessing.get_context(sys.argv[1])
        p = ctx.Process(target=work)
        p.start()
        p.join()
        print('CHILD EXIT %s' % p.exitcode)
    ''')
    result = run_python(['noguard.py', spawning_ctx.get_start_method()],
                        cwd=str(tmpdir), timeout=60)
    assert result.returncode == 0, result
    assert result.out.count('CHILD EXIT 1') == 1, result
    assert result.err.count('An attempt has been made to start a new process') == 1, result


def test_unguarded_main_is_rerun_once_per_child(tmpdir, spawning_ctx):
    """Top-level code of the script runs in each spawned child (as
    __mp_main__), guarded code does not."""
    write_file(str(tmpdir.join('counting.py')), '''
        import os
        import sys
        import mpspawn as multiprocessing

        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'imports.log'), 'a') as f:
            f.write(__name__ + '\\n')

        def work():
            pass

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            procs = [ctx.Process(target=work) for i in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            print('EXITS %s' % [p.exitcode for p in procs])
    ''')
    result = run_python(['counting.py', spawning_ctx.get_start_method()], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'EXITS [0, 0, 0]' in result.out
    lines = tmpdir.join('imports.log').read().split()
    assert lines[0] == '__main__'
    if spawning_ctx.get_start_method() == 'spawn':
        assert sorted(lines[1:]) == ['__mp_main__'] * 3


def test_sys_path_and_cwd_changes_reach_child(tmpdir, spawning_ctx):
    extra = tmpdir.mkdir('extra_path')
    write_file(str(extra.join('late_module.py')), '''
        def value():
            return 'late import works'
    ''')
    elsewhere = tmpdir.mkdir('elsewhere')
    write_file(str(tmpdir.join('paths.py')), '''
        import os
        import sys
        import mpspawn as multiprocessing

        def work(conn):
            import late_module
            conn.send((late_module.value(), os.getcwd()))
            conn.close()

        if __name__ == '__main__':
            sys.path.append(sys.argv[2])
            os.chdir(sys.argv[3])
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('GOT %r' % (r.recv(),))
            p.join()
    ''')
    result = run_python(['paths.py', spawning_ctx.get_start_method(), str(extra),
                         str(elsewhere)], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert "late import works" in result.out, result
    assert os.path.realpath(str(elsewhere)) in result.out or str(elsewhere) in result.out, result


def test_interpreter_flags_forwarded(tmpdir, spawning_ctx):
    write_file(str(tmpdir.join('flags.py')), '''
        import sys
        import mpspawn as multiprocessing

        def work(conn):
            conn.send((sys.flags.optimize, sys.flags.dont_write_bytecode,
                       sys.flags.no_user_site))
            conn.close()

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('FLAGS %r' % (r.recv(),))
            p.join()
    ''')
    result = run_python(['-O', '-B', '-s', 'flags.py', spawning_ctx.get_start_method()],
                        cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'FLAGS (1, 1, 1)' in result.out or 'FLAGS (1, True, 1)' in result.out, result


def test_output_flushed_before_start(tmpdir, spawning_ctx):
    """Unflushed parent output is written once, before the child's."""
    write_file(str(tmpdir.join('flush.py')), '''
        import sys
        import mpspawn as multiprocessing

        def work():
            sys.stdout.write('child line\\n')

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            sys.stdout.write('parent line\\n')
            p = ctx.Process(target=work)
            p.start()
            p.join()
    ''')
    # Buffered output, or the test could not fail (PYTHONUNBUFFERED may be set).
    result = run_python(['flush.py', spawning_ctx.get_start_method()], cwd=str(tmpdir),
                        env={'PYTHONUNBUFFERED': ''})
    assert result.returncode == 0, result
    assert result.out.split() == ['parent', 'line', 'child', 'line'], result


def test_exception_traceback_on_child_stderr(tmpdir, start_method):
    write_file(str(tmpdir.join('fails.py')), '''
        import sys
        import mpspawn as multiprocessing

        def work():
            raise ValueError('distinctive failure text')

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            p = ctx.Process(target=work, name='failing-child')
            p.start()
            p.join()
            print('EXIT %s' % p.exitcode)
    ''')
    result = run_python(['fails.py', start_method], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'EXIT 1' in result.out
    assert 'Process failing-child:' in result.err
    assert 'Traceback' in result.err and 'distinctive failure text' in result.err


def test_log_level_carried_to_child(tmpdir, spawning_ctx):
    write_file(str(tmpdir.join('logs.py')), '''
        import sys
        import mpspawn as multiprocessing

        def work(conn):
            conn.send(multiprocessing.get_logger().getEffectiveLevel())
            conn.close()

        if __name__ == '__main__':
            multiprocessing.get_logger().setLevel(13)
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('LEVEL %s' % r.recv())
            p.join()
    ''')
    result = run_python(['logs.py', spawning_ctx.get_start_method()], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'LEVEL 13' in result.out, result


# -- mpspawn goes beyond Python 3 here -------------------------------------------

@pytest.mark.mpspawn_only
@pytest.mark.parametrize('how', ['dash_c', 'stdin'])
def test_interactive_main_target_clear_error_at_start(tmpdir, spawning_ctx, how):
    code = '\n'.join([
        'import sys, pickle',
        'import mpspawn as multiprocessing',
        'def work():',
        '    pass',
        'ctx = multiprocessing.get_context(%r)' % spawning_ctx.get_start_method(),
        'p = ctx.Process(target=work)',
        'try:',
        '    p.start()',
        'except pickle.PicklingError as exc:',
        '    print("REFUSED: %s" % exc)',
        'else:',
        '    p.join()',
        '    print("STARTED %s" % p.exitcode)',
        'print("CHILDREN %d" % len(multiprocessing.active_children()))',
    ]) + '\n'
    if how == 'dash_c':
        result = run_python(['-c', code], cwd=str(tmpdir))
    else:
        result = run_python(['-'], cwd=str(tmpdir), stdin_data=code.encode('ascii'))
    assert result.returncode == 0, result
    assert 'REFUSED' in result.out and "'work'" in result.out, result
    assert 'not run from a file' in result.out, result
    assert 'CHILDREN 0' in result.out


@pytest.mark.mpspawn_only
def test_directory_app_target_in_main_clear_error(tmpdir, spawning_ctx):
    appdir = str(tmpdir.join('badapp'))
    write_file(os.path.join(appdir, '__main__.py'), '''
        import pickle
        import sys
        import mpspawn as multiprocessing

        def work():
            pass

        ctx = multiprocessing.get_context(sys.argv[1])
        p = ctx.Process(target=work)
        try:
            p.start()
        except pickle.PicklingError as exc:
            print('REFUSED: %s' % exc)
        else:
            p.join()
    ''')
    result = run_python(['badapp', spawning_ctx.get_start_method()], cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'REFUSED' in result.out and 'do not run again' in result.out, result
