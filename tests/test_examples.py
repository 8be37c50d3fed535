"""Every script in examples/ runs as a user would run it (``python
examples/x.py`` from the repository root, with a real interpreter: 2.7
against mpspawn, Python 3 against the standard library) and prints what it
promises.

An example whose feature is not available in the implementation under test
is skipped with the reason, and starts running as soon as the feature is.
"""
import importlib
import os
import re

import pytest

import mpspawn
import support
from support import run_python

REPO = os.path.dirname(support.TESTS_DIR)
EXAMPLES = os.path.join(REPO, 'examples')
# Modules the examples import, not examples themselves.
HELPER_MODULES = {'preloaded_module.py'}
TIMEOUT = 90

NON_FORK_METHODS = support.NON_FORK_METHODS
HAVE_FORKSERVER = 'forkserver' in support.ALL_START_METHODS


def missing_module(*names):
    """Why the first of ``names`` that cannot be imported is missing, or None."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            return '%s is not available: %s' % (name, exc)
    return None


def needs(*names):
    reason = missing_module(*names)
    return pytest.mark.skipif(reason is not None, reason=reason or '')


needs_forkserver = pytest.mark.skipif(
    not HAVE_FORKSERVER, reason='the forkserver start method is not available')


def run_example(name, *args, **kwds):
    result = run_python([os.path.join('examples', name)] + list(args), cwd=REPO,
                        timeout=TIMEOUT, **kwds)
    assert result.returncode == 0, result
    return result


def test_every_example_has_a_test():
    scripts = set(f for f in os.listdir(EXAMPLES) if f.endswith('.py')) - HELPER_MODULES
    tested = set(re.findall(r"run_example\('([a-z_]+\.py)'",
                            open(os.path.abspath(__file__.rstrip('c'))).read()))
    assert scripts == tested


def test_fork_hazard():
    out = run_example('fork_hazard.py').out
    assert 'spawn worked in every case' in out
    sections = out.split('a thread holds a lock of the application')
    assert len(sections) == 2, out
    in_handler, own_lock = sections
    for method in support.ALL_START_METHODS:
        expected = 'HANG' if method == 'fork' else 'ok'
        assert re.search(r'^  %s +%s' % (method, expected), own_lock, re.M), out
        # Python 3.7+ re-creates logging's locks in a forked child; 2.7 does not.
        if method != 'fork' or support.IS_MPSPAWN:
            assert re.search(r'^  %s +%s' % (method, expected), in_handler, re.M), out


@needs('mpspawn.pool')
@pytest.mark.parametrize('method', NON_FORK_METHODS)
def test_pool_over_a_function_of_the_script(method):
    out = run_example('pool_in_script.py', method).out
    assert 'lengths: [3, 5, 5, 3, 5, 4, 3, 4, 3]' in out
    assert 'spawned has 7 letters' in out
    assert 'total letters: 35' in out


@needs_forkserver
@needs('mpspawn.forkserver', 'mpspawn.queues')
def test_forkserver_preload():
    env = None
    if not support.IS_MPSPAWN:
        # Python 3.11's fork server ignores the parent's sys.path when it
        # preloads (and hides the ImportError): see the example's docstring.
        env = {'PYTHONPATH': os.pathsep.join([support.PACKAGE_PARENT, EXAMPLES])}
    out = run_example('forkserver_preload.py', env=env).out
    assert out.count('module already imported: True') == 4, out
    assert 'the module was imported once, in the fork server' in out


@needs('mpspawn.managers')
@pytest.mark.parametrize('method', NON_FORK_METHODS)
def test_manager_shared_between_spawned_children(method):
    out = run_example('manager_shared.py', method).out
    assert ("word counts: [('a', 2), ('and', 1), ('cat', 2), ('dog', 2), ('end', 1), "
            "('sat', 2), ('the', 3)]") in out
    assert '4 children reported; all distinct processes: True' in out
    assert 'exit codes: [0, 0, 0, 0]' in out


def test_vendored_copy():
    out = run_example('vendored.py').out
    package = 'app._vendor.mpspawn' if support.IS_MPSPAWN else 'multiprocessing'
    for method in NON_FORK_METHODS:
        assert re.search(r'^%s +child process class from %s\.context; top-level mpspawn '
                         r'imported: False; exit code 0$' % (method, re.escape(package)),
                         out, re.M), out
    assert 'parent: top-level mpspawn imported: False' in out


@needs('mpspawn.futures')
@pytest.mark.parametrize('method', NON_FORK_METHODS)
def test_executor_with_a_killed_worker(method):
    out = run_example('executor_killed_worker.py', method).out
    assert 'results: [0, 2, 4, 6, 8]' in out
    assert 'the task failed with BrokenProcessPool' in out
    if support.IS_MPSPAWN:
        assert 'exit code -9 (killed by SIGKILL)' in out
    assert 'the broken executor refuses new work (BrokenProcessPool)' in out
    assert 'a new executor works: 42' in out


def test_examples_use_the_package_under_test():
    """The examples import whatever ``mpspawn`` the interpreter finds; the
    suite points them at the copy under test."""
    # From examples/, as a script there finds its modules (sys.path[0]).
    result = run_python(['-c', 'import mpspawn, os; '
                         'print(os.path.dirname(os.path.abspath(mpspawn.__file__)))'],
                        cwd=EXAMPLES, timeout=TIMEOUT)
    assert result.out.strip() == os.path.dirname(os.path.abspath(mpspawn.__file__))


def test_readme_example(tmpdir):
    """The ten-line example of README.rst runs as printed."""
    with open(os.path.join(REPO, 'README.rst')) as f:
        readme = f.read()
    section = readme.split('A ten-line example', 1)[1]
    block = section.split('.. code-block:: python', 1)[1].split('\n\n', 1)[1]
    lines = []
    for line in block.split('\n'):
        if line and not line.startswith('    '):
            break
        lines.append(line[4:])
    code = '\n'.join(lines).strip() + '\n'
    assert len(code.splitlines()) <= 10, code
    script = support.write_file(str(tmpdir.join('readme_example.py')), code)
    result = run_python([script], cwd=str(tmpdir), timeout=TIMEOUT)
    assert result.returncode == 0, result
    assert result.out.strip() == '[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]'
