"""Spawned children: what they inherit (only the descriptors handed to
them), unpicklable arguments, vendoring, frozen executables and 2.7's
multiprocessing names."""
import os
import pickle
import shutil
import socket
import sys
import tempfile
import threading

import pytest

import mpspawn
import support
import targets
from support import run_python, write_file


def test_child_holds_only_what_it_was_handed(spawning_ctx, tmpdir):
    """The parent holds extra inheritable files, sockets and pipes open; the
    child sees none of them, only stdio and what it was given."""
    extras = []
    path = str(tmpdir.join('held-open.txt'))
    fd = os.open(path, os.O_RDWR | os.O_CREAT)  # inheritable on 2.7
    extras.append(fd)
    r, w = os.pipe()
    extras += [r, w]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    extras.append(sock.fileno())
    if sys.version_info[0] == 3:
        for e in extras:
            os.set_inheritable(e, True)
    identities = set((os.fstat(e).st_dev, os.fstat(e).st_ino) for e in extras)
    try:
        reader, writer = spawning_ctx.Pipe(duplex=False)
        p = spawning_ctx.Process(target=targets.list_fds, args=(writer,))
        p.start()
        writer.close()
        child_fds = reader.recv()
        p.join()
        reader.close()
    finally:
        for e in (fd, r, w):
            os.close(e)
        sock.close()
    leaked = dict((n, ident) for n, ident in child_fds.items() if ident in identities)
    assert not leaked, 'the child inherited %s' % leaked
    assert 0 in child_fds and 1 in child_fds and 2 in child_fds


def test_unpicklable_argument_refused_at_start(spawning_ctx):
    lock = threading.Lock()
    p = spawning_ctx.Process(target=targets.noop, args=({'a': 1, 'b': lock},))
    with pytest.raises((TypeError, pickle.PicklingError, AttributeError)):
        p.start()
    assert p not in mpspawn.active_children()


def test_unpicklable_lambda_refused_at_start(spawning_ctx):
    p = spawning_ctx.Process(target=lambda: None)
    with pytest.raises((TypeError, pickle.PicklingError, AttributeError)):
        p.start()


@pytest.mark.mpspawn_only
def test_unpicklable_error_names_where(spawning_ctx):
    lock = threading.Lock()
    p = spawning_ctx.Process(target=targets.noop, args=({'a': 1, 'b': lock},),
                             kwargs={'fine': [1, 2]})
    with pytest.raises(TypeError) as info:
        p.start()
    assert "args[0]['b']" in str(info.value)
    p = spawning_ctx.Process(target=targets.noop, kwargs={'inner': [1, (2, lock)]})
    with pytest.raises(TypeError) as info:
        p.start()
    assert "kwargs['inner'][1][1]" in str(info.value)


@pytest.mark.mpspawn_only
def test_unpicklable_lambda_error_is_clear_and_catchable_both_ways(spawning_ctx):
    import cPickle
    p = spawning_ctx.Process(target=targets.noop, args=(lambda: 1,))
    with pytest.raises(pickle.PicklingError) as info:
        p.start()
    assert isinstance(info.value, cPickle.PicklingError)
    assert 'args[0]' in str(info.value) and 'lambda' in str(info.value)


@pytest.mark.mpspawn_only
def test_forking_module_names():
    from mpspawn import forking
    for name in ['Popen', 'assert_spawning', 'exit', 'duplicate', 'close',
                 'ForkingPickler', 'prepare', 'get_preparation_data', 'main',
                 'freeze_support']:
        assert hasattr(forking, name), name
    data = forking.get_preparation_data('x')
    assert data['name'] == 'x' and 'sys_path' in data
    with pytest.raises(RuntimeError):
        forking.assert_spawning(object())
    assert forking.ForkingPickler.loads(forking.ForkingPickler.dumps([1, 'a'])) == [1, 'a']


@pytest.mark.mpspawn_only
def test_multiprocessing_27_names_resolve():
    """The public names of 2.7's multiprocessing exist with the same meaning."""
    import multiprocessing as mp27
    for name in mp27.__all__:
        assert hasattr(mpspawn, name), name


def test_vendored_copy_spawns_through_itself(tmpdir):
    app = tmpdir.mkdir('legacyapp')
    write_file(str(app.join('__init__.py')), '')
    vendor = app.mkdir('_vendor')
    write_file(str(vendor.join('__init__.py')), '')
    shutil.copytree(os.path.dirname(mpspawn.__file__), str(vendor.join('mpspawn')),
                    ignore=shutil.ignore_patterns('*.pyc', '__pycache__'))
    write_file(str(tmpdir.join('vendored_main.py')), '''
        import sys
        from legacyapp._vendor import mpspawn as multiprocessing

        def work(conn):
            conn.send(sorted(name for name in sys.modules
                             if name == 'mpspawn' or name.startswith('mpspawn.')))
            conn.close()

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('CHILD TOP-LEVEL MODULES %r' % (r.recv(),))
            p.join()
            print('EXIT %s' % p.exitcode)
            print('PARENT TOP-LEVEL %r' % ('mpspawn' in sys.modules))
    ''')
    for method in support.NON_FORK_METHODS:
        result = run_python(['vendored_main.py', method], cwd=str(tmpdir),
                            pythonpath=[])
        assert result.returncode == 0, result
        assert 'CHILD TOP-LEVEL MODULES []' in result.out, result
        assert 'EXIT 0' in result.out
        assert 'PARENT TOP-LEVEL False' in result.out


@pytest.mark.mpspawn_only
def test_freeze_support_dispatches_frozen_children(tmpdir):
    """A frozen executable (sys.frozen set, sys.executable the program itself)
    starts children, and the resource tracker, as itself with a marker
    argument; freeze_support() runs them (Python 3 only does this on Windows
    before 3.14)."""
    app = write_file(str(tmpdir.join('frozen_app.py')), '''
        import os
        import sys
        sys.frozen = True
        sys.executable = os.environ['FROZEN_EXE']
        import mpspawn as multiprocessing

        def work(conn):
            conn.send(('child ran', sys.frozen))
            conn.close()

        if __name__ == '__main__':
            multiprocessing.freeze_support()
            ctx = multiprocessing.get_context('spawn')
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w,))
            p.start()
            w.close()
            print('GOT %r' % (r.recv(),))
            p.join()
            print('EXIT %s' % p.exitcode)
    ''')
    exe = write_file(str(tmpdir.join('frozen-exe')), '''
        #!/bin/sh
        exec %s %s "$@"
    ''' % (sys.executable, app))
    os.chmod(exe, 0o755)
    result = run_python([], python=exe, cwd=str(tmpdir), env={'FROZEN_EXE': exe})
    assert result.returncode == 0, result
    assert "GOT ('child ran', True)" in result.out, result
    assert 'EXIT 0' in result.out


def test_children_import_the_parents_copy(tmpdir):
    """The parent found mpspawn through a sys.path entry added at run time
    while a different (here: broken) copy is on PYTHONPATH: spawned children
    and helper processes must use the parent's copy."""
    decoy = tmpdir.mkdir('decoy')
    write_file(str(decoy.join('mpspawn', '__init__.py')),
               'raise ImportError("the decoy copy of mpspawn was imported")\n')
    write_file(str(tmpdir.join('runtime_path.py')), '''
        import sys
        sys.path.insert(0, sys.argv[2])
        import mpspawn as multiprocessing

        def work(conn):
            conn.send('child ok')
            conn.close()

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            lock = None
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=work, args=(w,))
            p.start()
            w.close()
            print(r.recv())
            p.join()
            print('EXIT %s' % p.exitcode)
    ''')
    for method in support.NON_FORK_METHODS:
        result = run_python(['runtime_path.py', method, support.PACKAGE_PARENT],
                            cwd=str(tmpdir), pythonpath=[str(decoy)])
        assert result.returncode == 0, result
        assert 'child ok' in result.out and 'EXIT 0' in result.out, result
        assert 'decoy' not in result.err, result


@pytest.mark.mpspawn_only
def test_spawned_child_imports_little(tmpdir):
    """Start-up speed: the bootstrap of a spawned child must not import
    heavy modules (threading, socket, ctypes, logging, 2.7's multiprocessing
    or the pure-Python pickle) unless the child's own work needs them."""
    write_file(str(tmpdir.join('footprint.py')), '''
        import sys
        import mpspawn as multiprocessing

        def report(conn):
            conn.send(sorted(name for name, mod in sys.modules.items() if mod is not None))
            conn.close()

        if __name__ == '__main__':
            ctx = multiprocessing.get_context('spawn')
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=report, args=(w,))
            p.start()
            w.close()
            print('MODULES %s' % ' '.join(r.recv()))
            p.join()
    ''')
    result = run_python(['footprint.py'], cwd=str(tmpdir))
    assert result.returncode == 0, result
    modules = set(result.out.split('MODULES ', 1)[1].split())
    heavy = set(['threading', 'socket', '_socket', 'ctypes', 'logging', 'multiprocessing',
                 '_multiprocessing', 'pickle', 'Queue', 'subprocess', 'tempfile',
                 'collections', 'random'])
    assert not (modules & heavy), sorted(modules & heavy)
