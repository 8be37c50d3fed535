"""Release hygiene: the version is in one place, ``python setup.py sdist
bdist_wheel`` builds a universal wheel and a complete sdist, and that wheel
installs into a fresh Python 2.7 virtualenv where ``python -m mpspawn`` (the
self-check) passes.

The build runs on a copy of the source tree in a temporary directory, so the
checkout is never written to.  The virtualenv is made with ``virtualenv``
(the one importable here, ``$MPSPAWN_VIRTUALENV``, one on ``PATH``, or the
one in the tox environment ``./run-tests`` makes); pip installs ``six`` into
it from the package index.
"""
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import zipfile

import pytest

import mpspawn
import support

REPO = os.path.dirname(support.TESTS_DIR)
# What a release is built from (the rest of the checkout is not shipped).
SOURCE_FILES = ['setup.py', 'setup.cfg', 'MANIFEST.in', 'README.rst', 'LICENSE',
                'CHANGELOG.rst', 'tox.ini', 'run-tests']
SOURCE_DIRS = ['mpspawn', 'docs', 'examples', 'tests', 'bench']
VERSION_RE = re.compile(r"^__version__ = '([^']+)'", re.M)


def read(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return f.read()


def source_version():
    return VERSION_RE.search(read('mpspawn', '__init__.py')).group(1)


def run(cmd, cwd, timeout, env=None):
    """Run ``cmd`` in its own session with a clean Python environment; kill
    it (and what it started) after ``timeout`` seconds.  Returns
    (returncode, combined output)."""
    clean = dict((k, v) for k, v in os.environ.items()
                 if not k.startswith(('PYTHON', 'MPSPAWN_', 'VIRTUAL_ENV', 'PIP_REQUIRE')))
    clean.update(env or {})
    proc = subprocess.Popen(cmd, cwd=cwd, env=clean, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=os.setsid, close_fds=True)
    output = {}

    def communicate():
        output['out'] = proc.communicate(b'')[0]
    reader = threading.Thread(target=communicate)
    reader.daemon = True
    reader.start()
    reader.join(timeout)
    timed_out = reader.is_alive()
    support.kill_session(proc.pid)
    reader.join(10)
    text = (output.get('out') or b'').decode('utf-8', 'replace')
    if timed_out:
        raise AssertionError('%s did not finish within %ss:\n%s' % (' '.join(cmd), timeout, text))
    return proc.returncode, text


def copy_source(dest):
    ignore = shutil.ignore_patterns('*.pyc', '*.pyo', '__pycache__', '_build', '*.egg-info', 'results')
    for name in SOURCE_FILES:
        if os.path.exists(os.path.join(REPO, name)):
            shutil.copy2(os.path.join(REPO, name), os.path.join(dest, name))
    for name in SOURCE_DIRS:
        shutil.copytree(os.path.join(REPO, name), os.path.join(dest, name), ignore=ignore)


def have_module(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


@pytest.fixture(scope='module')
def dist(tmpdir_factory):
    """The sdist and wheel built by ``python setup.py sdist bdist_wheel``."""
    if not have_module('setuptools') or not have_module('wheel'):
        pytest.skip('building a wheel needs setuptools and wheel in %s' % sys.executable)
    root = tmpdir_factory.mktemp('build')
    src = root.mkdir('src')
    copy_source(str(src))
    out_dir = str(root.join('dist'))
    code, output = run([sys.executable, 'setup.py', 'sdist', '--dist-dir', out_dir,
                        'bdist_wheel', '--dist-dir', out_dir], cwd=str(src), timeout=90)
    assert code == 0, output
    files = os.listdir(out_dir)
    wheels = [f for f in files if f.endswith('.whl')]
    sdists = [f for f in files if f.endswith('.tar.gz')]
    assert len(wheels) == 1 and len(sdists) == 1, (files, output)
    return os.path.join(out_dir, wheels[0]), os.path.join(out_dir, sdists[0])


def test_version_lives_in_one_place():
    version = source_version()
    assert re.match(r'^\d+\.\d+\.\d+([ab]\d+|rc\d+|\.dev\d+)?$', version), version
    if support.IS_MPSPAWN:
        assert mpspawn.__version__ == version
    # setup.py and the docs read it from mpspawn/__init__.py; nobody repeats it.
    for path in (('setup.py',), ('docs', 'conf.py')):
        text = read(*path)
        assert version not in text, path
        assert '__init__.py' in text, path
    # The changelog has an entry for it.
    assert re.search(r'^%s\b' % re.escape(version), read('CHANGELOG.rst'), re.M)


def test_wheel_is_universal_and_complete(dist):
    wheel, sdist = dist
    version = source_version()
    assert os.path.basename(wheel) == 'mpspawn-%s-py2.py3-none-any.whl' % version
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = zf.read('mpspawn-%s.dist-info/METADATA' % version).decode('utf-8')
    modules = set()
    for dirpath, dirnames, filenames in os.walk(os.path.join(REPO, 'mpspawn')):
        dirnames[:] = [d for d in dirnames if d != '__pycache__']
        for name in filenames:
            if name.endswith('.py'):
                modules.add(os.path.relpath(os.path.join(dirpath, name), REPO).replace(os.sep, '/'))
    assert modules and modules <= names, sorted(modules - names)
    assert not [n for n in names if n.startswith(('tests/', 'examples/', 'docs/', 'bench/'))]
    assert 'Requires-Dist: six' in metadata
    assert re.search(r'^Requires-Python: .*!=3\.5\.\*', metadata, re.M)
    with tarfile.open(sdist) as tf:
        members = set(m.name.split('/', 1)[1] for m in tf.getmembers() if '/' in m.name)
    for needed in ('setup.py', 'README.rst', 'LICENSE', 'CHANGELOG.rst', 'mpspawn/__init__.py',
                   'examples/fork_hazard.py', 'docs/index.rst', 'tests/test_examples.py'):
        assert needed in members, needed


def find_virtualenv():
    """A command that runs virtualenv, or None."""
    if have_module('virtualenv'):
        return [sys.executable, '-m', 'virtualenv']
    candidates = [os.environ.get('MPSPAWN_VIRTUALENV')]
    for directory in os.environ.get('PATH', '').split(os.pathsep):
        candidates.append(os.path.join(directory, 'virtualenv'))
    tox_venv = os.environ.get('MPSPAWN_TOX_VENV') or os.path.join(REPO, '.venv-tox')
    candidates.append(os.path.join(tox_venv, 'bin', 'virtualenv'))
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return [path]
    return None


def base_interpreter():
    """The interpreter this (virtual) environment was made from."""
    prefix = getattr(sys, 'real_prefix', None) or getattr(sys, 'base_prefix', sys.prefix)
    candidate = os.path.join(prefix, 'bin', 'python%d.%d' % sys.version_info[:2])
    return candidate if os.path.exists(candidate) else sys.executable


@pytest.mark.slow
@pytest.mark.skipif(not support.PY2, reason='installs into a Python 2.7 virtualenv: runs '
                    'under 2.7 (on Python 3, mpspawn is the standard library)')
def test_wheel_installs_and_self_checks_in_a_fresh_virtualenv(dist, tmpdir):
    virtualenv = find_virtualenv()
    if virtualenv is None:
        pytest.skip('no virtualenv found (not importable by %s, not on PATH, no '
                    '$MPSPAWN_VIRTUALENV, no .venv-tox made by ./run-tests)' % sys.executable)
    wheel, _ = dist
    venv = str(tmpdir.join('venv'))
    code, output = run(virtualenv + ['--no-download', '--no-periodic-update', '-q',
                                     '-p', base_interpreter(), venv],
                       cwd=str(tmpdir), timeout=90)
    if code != 0 and 'no-periodic-update' in output:
        code, output = run(virtualenv + ['--no-download', '-q', '-p', base_interpreter(), venv],
                           cwd=str(tmpdir), timeout=90)
    assert code == 0, output
    python = os.path.join(venv, 'bin', 'python')
    code, output = run([python, '-m', 'pip', 'install', '--disable-pip-version-check',
                        '--no-input', wheel], cwd=str(tmpdir), timeout=120)
    assert code == 0, output
    # An empty working directory: `-m` puts it first on sys.path.
    workdir = tmpdir.mkdir('work')
    code, output = run([python, '-c', 'import mpspawn, six; print(mpspawn.__file__)'],
                       cwd=str(workdir), timeout=30)
    assert code == 0, output
    assert os.path.realpath(output.strip()).startswith(os.path.realpath(venv)), output
    code, output = run([python, '-m', 'mpspawn'], cwd=str(workdir), timeout=90)
    assert code == 0, output
    assert output.startswith('mpspawn %s on Python 2.7' % source_version()), output
    assert 'self-check passed' in output, output


def test_troubleshooting_page_lists_every_error_message():
    """docs/troubleshooting.rst mentions every message mpspawn raises or
    prints (found by reading the source with docs/_tools/error_messages.py).
    A new message needs an entry there: its cause and its fix."""
    sys.path.insert(0, os.path.join(REPO, 'docs', '_tools'))
    try:
        import error_messages
    finally:
        sys.path.pop(0)
    assert len(error_messages.messages()) > 100
    missing = ['%s:%d: %s: %s' % entry for entry in error_messages.undocumented()]
    assert not missing, 'not in docs/troubleshooting.rst:\n' + '\n'.join(missing)
