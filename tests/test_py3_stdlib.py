"""On Python 3, mpspawn is the standard library: the same objects, no second
copy of any module or of its global state."""
import os
import sys

import pytest

import mpspawn

pytestmark = pytest.mark.skipif(sys.version_info[0] < 3, reason='Python 3 only')


def _stdlib_submodules():
    if sys.version_info[0] < 3:
        return []
    import multiprocessing
    import pkgutil
    return sorted(info.name for info in pkgutil.iter_modules(multiprocessing.__path__))


@pytest.mark.parametrize('name', _stdlib_submodules())
def test_submodule_is_the_stdlib_module(name):
    import importlib
    if name == 'popen_spawn_win32' and sys.platform != 'win32':
        pytest.skip('Windows only')
    ours = importlib.import_module('mpspawn.' + name)
    real = importlib.import_module('multiprocessing.' + name)
    assert ours is real
    assert getattr(mpspawn, name) is real
    assert real.__name__ == 'multiprocessing.' + name
    assert real.__spec__.name == 'multiprocessing.' + name


def test_public_names_are_the_stdlib_objects():
    import multiprocessing
    for name in multiprocessing.__all__:
        assert getattr(mpspawn, name) is getattr(multiprocessing, name), name
    assert mpspawn.__all__ == multiprocessing.__all__


def test_futures_is_concurrent_futures():
    import concurrent.futures
    import mpspawn.futures
    assert mpspawn.futures is concurrent.futures
    assert mpspawn.futures.ProcessPoolExecutor is concurrent.futures.ProcessPoolExecutor


def test_no_second_copy_loaded():
    import multiprocessing.pool  # noqa: F401
    import mpspawn.pool  # noqa: F401
    package_dir = os.path.dirname(os.path.abspath(mpspawn.__file__))
    ours = sorted(name for name, mod in list(sys.modules.items())
                  if os.path.dirname(os.path.abspath(getattr(mod, '__file__', None) or '/')) == package_dir)
    assert set(ours) <= set(['mpspawn', 'mpspawn._compat', 'mpspawn.__main__',
                             'mpspawn.selfcheck']), ours


def test_start_method_environment_variable(tmpdir):
    from support import run_python
    result = run_python(['-c', 'import mpspawn, multiprocessing; '
                         'print(multiprocessing.get_start_method(allow_none=True)); '
                         'print(multiprocessing.get_start_method())'],
                        env={'MPSPAWN_START_METHOD': 'spawn'}, cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert result.out.split() == ['None', 'spawn'], result
