"""Spawned children: their command line, the preparation data sent ahead of
the process object, the child-side bootstrap and the rebuilding of the
parent's ``__main__`` module as ``__mp_main__``.

The child runs ``python -c 'from <package>.spawn import spawn_main; ...'``
with its inherited descriptors numbered from 3.  Preparation data is one
dict; every key is applied by ``prepare()``.
"""
import os
import sys
import types

from . import process, util, _compat

__all__ = ['_main', 'freeze_support', 'set_executable', 'get_executable',
           'get_preparation_data', 'get_command_line', 'import_main_path']

# The package's own name, so a vendored copy (app._vendor.mpspawn) works.
PACKAGE = __name__.rpartition('.')[0]


def _package_root():
    """The sys.path entry this package was imported from."""
    path = os.path.dirname(os.path.abspath(__file__))
    for _ in PACKAGE.split('.'):
        path = os.path.dirname(path)
    return path


# Children must import this very copy before the preparation data gives them
# the parent's sys.path: the parent may have found it through a sys.path
# entry added at run time, and another version may be installed.
PACKAGE_ROOT = _package_root()

FORK_FLAG = '--multiprocessing-fork'
FORKSERVER_FLAG = '--mpspawn-forkserver'
TRACKER_FLAG = '--mpspawn-resource-tracker'

WINEXE = sys.platform == 'win32' and getattr(sys, 'frozen', False)
WINSERVICE = sys.executable.lower().endswith("pythonservice.exe")

_python_exe = sys.executable


def set_executable(exe):
    global _python_exe
    _python_exe = exe


def get_executable():
    return _python_exe


def is_forking(argv):
    """Whether ``argv`` is that of a spawned child."""
    return len(argv) >= 2 and argv[1] == FORK_FLAG


def _frozen_kwargs(args):
    kwds = {}
    for arg in args:
        name, value = arg.split('=', 1)
        kwds[name] = None if value == 'None' else int(value)
    return kwds


def freeze_support():
    """In a frozen executable started as one of our helper processes, run
    that process and exit.  Does nothing otherwise."""
    argv = sys.argv
    if _compat.IS_WINDOWS:
        # Windows children are 2.7's own (see popen_spawn_win32).
        from multiprocessing import forking
        forking.freeze_support()
        return
    if is_forking(argv):
        spawn_main(**_frozen_kwargs(argv[2:]))
        sys.exit()
    helpers = {FORKSERVER_FLAG: 'forkserver', TRACKER_FLAG: 'resource_tracker'}
    if len(argv) >= 3 and argv[1] in helpers:
        import ast
        import importlib
        module = importlib.import_module('%s.%s' % (PACKAGE, helpers[argv[1]]))
        module.main(*ast.literal_eval(argv[2]))
        sys.exit()


def helper_command(module, args, frozen_flag):
    """The command line that runs ``<package>.<module>.main(*args)`` in a
    fresh interpreter (or the frozen executable with ``frozen_flag``);
    ``args`` are plain literals."""
    exe = get_executable()
    if getattr(sys, 'frozen', False):
        return [exe, frozen_flag, repr(tuple(args))]
    code = _bootstrap_source('from %s.%s import main; main(%s)' % (
        PACKAGE, module, ', '.join(repr(a) for a in args)))
    return [exe] + _compat.interpreter_flags() + ['-c', code]


def _bootstrap_source(statement):
    return 'import sys; sys.path.insert(0, %r); %s' % (PACKAGE_ROOT, statement)


def get_command_line(**kwds):
    """The command line of a spawned child."""
    if getattr(sys, 'frozen', False):
        return ([get_executable(), FORK_FLAG] +
                ['%s=%r' % item for item in sorted(kwds.items())])
    args = ', '.join('%s=%r' % item for item in sorted(kwds.items()))
    code = _bootstrap_source('from %s.spawn import spawn_main; spawn_main(%s)' % (PACKAGE, args))
    return [get_executable()] + _compat.interpreter_flags() + ['-c', code, FORK_FLAG]


def spawn_main(pipe_handle, parent_pid=None, tracker_fd=None):
    """Entry point of a spawned child: read the preparation data and the
    process object from ``pipe_handle``, run it and exit with its code."""
    assert is_forking(sys.argv), "Not forking"
    if tracker_fd is not None:
        from . import resource_tracker
        resource_tracker._resource_tracker._fd = tracker_fd
    # The parent keeps the other end open while it lives.
    parent_sentinel = os.dup(pipe_handle)
    exitcode = _main(pipe_handle, parent_sentinel)
    sys.exit(exitcode)


def _main(fd, parent_sentinel):
    from . import reduction
    with os.fdopen(fd, 'rb') as from_parent:
        process.current_process()._inheriting = True
        try:
            preparation_data = reduction.load(from_parent)
            prepare(preparation_data)
            self = reduction.load(from_parent)
        finally:
            del process.current_process()._inheriting
    return self._bootstrap(parent_sentinel)


def _check_not_importing_main():
    if getattr(process.current_process(), '_inheriting', False):
        raise RuntimeError('''
        An attempt has been made to start a new process before the
        current process has finished its bootstrapping phase.

        This probably means that you are not using fork to start your
        child processes and you have forgotten to use the proper idiom
        in the main module:

            if __name__ == '__main__':
                freeze_support()
                ...

        The "freeze_support()" line can be omitted if the program
        is not going to be frozen to produce an executable.

        The main module of a spawned child is imported again under the name
        __mp_main__, so code at its top level that starts processes must sit
        under that guard (see "Safe importing of main module" in Python's
        multiprocessing documentation).''')


# -- preparation data ----------------------------------------------------------------

def get_preparation_data(name):
    """What a spawned child needs to look like its parent before unpickling
    the process object."""
    _check_not_importing_main()
    current = process.current_process()
    data = dict(
        log_to_stderr=util._log_to_stderr,
        authkey=current.authkey,
        name=name,
        sys_argv=list(sys.argv),
        orig_dir=process.ORIGINAL_DIR,
        dir=os.getcwd(),
        start_method=_start_method(),
    )
    sys_path = list(sys.path)
    if '' in sys_path and process.ORIGINAL_DIR is not None:
        sys_path[sys_path.index('')] = process.ORIGINAL_DIR
    data['sys_path'] = sys_path
    if util._logger is not None:
        data['log_level'] = util._logger.getEffectiveLevel()
    data.update(main_module_data())
    return data


def _start_method():
    from . import context
    return context._default_context.get_start_method()


def main_module_data():
    """How the child rebuilds ``__main__``: {'init_main_from_name': name},
    {'init_main_from_path': absolute path}, or {} when it cannot."""
    main_module = sys.modules.get('__main__')
    if main_module is None:
        return {}
    # A debugger or IDE may have swapped __main__ after start-up.
    sys.modules['__mp_main__'] = main_module
    name = _compat.main_module_name(main_module)
    if name is not None:
        return {'init_main_from_name': name}
    path = getattr(main_module, '__file__', None)
    if not path or path.startswith('<'):
        return {}
    if not os.path.isabs(path) and process.ORIGINAL_DIR is not None:
        path = os.path.join(process.ORIGINAL_DIR, path)
    path = os.path.normpath(path)
    data = {'init_main_from_path': path}
    if _module_stem(path) != '__main__':
        compiled = _compiled_main(path)
        if compiled is not None:
            data['init_main_code'] = compiled
    return data


# path -> ((mtime, size), (bytecode magic, marshalled code)); a script has
# no .pyc, so without this every spawned child compiles it again.
_compiled_mains = {}


def _compiled_main(path):
    """The main script's code, compiled once per version of the file, as
    (bytecode magic, marshal data) for children to load instead of compiling."""
    import marshal
    try:
        st = os.stat(path)
        version = (st.st_mtime, st.st_size)
        cached = _compiled_mains.get(path)
        if cached is None or cached[0] != version:
            cached = (version, (_compat.bytecode_magic(), marshal.dumps(_read_code(path))))
            _compiled_mains[path] = cached
    except Exception:
        return None     # the child reads the file itself and reports errors
    return cached[1]


def main_is_rebuilt(data):
    """Whether a child prepared with ``data`` re-imports ``__main__``."""
    name = data.get('init_main_from_name')
    if name is not None:
        return not _is_main_name(name)
    path = data.get('init_main_from_path')
    if path is not None:
        return _module_stem(path) != '__main__'
    return False


def _is_main_name(name):
    return name == '__main__' or name.endswith('.__main__')


def _module_stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def prepare(data):
    """Make this (child) process look like the parent described by ``data``."""
    if 'name' in data:
        process.current_process().name = data['name']
    if 'authkey' in data:
        process.current_process().authkey = data['authkey']
    if data.get('log_to_stderr'):
        util.log_to_stderr()
    if 'log_level' in data:
        util.get_logger().setLevel(data['log_level'])
    if 'sys_path' in data:
        sys.path = data['sys_path']
    if 'sys_argv' in data:
        sys.argv = data['sys_argv']
    if 'dir' in data:
        os.chdir(data['dir'])
    if 'orig_dir' in data:
        process.ORIGINAL_DIR = data['orig_dir']
    if 'start_method' in data:
        from . import context
        context._default_context.set_start_method(data['start_method'], force=True)
    if 'init_main_from_name' in data:
        _fixup_main_from_name(data['init_main_from_name'])
    elif 'init_main_from_path' in data:
        _fixup_main_from_path(data['init_main_from_path'], data.get('init_main_code'))


# -- rebuilding __main__ --------------------------------------------------------------
#
# The parent's main module runs again in the child under the name
# __mp_main__ (so its `if __name__ == '__main__':` block does not), and
# __main__ is aliased to it so that pickles naming __main__ resolve.  The code
# is executed directly in a module object registered in sys.modules: 2.7's
# runpy would return a dict whose values it sets to None when its temporary
# module dies, breaking every function that uses a module-level global.

def _install_main(module):
    sys.modules['__main__'] = sys.modules['__mp_main__'] = module


def _fixup_main_from_name(mod_name):
    if _is_main_name(mod_name) or _main_already_rebuilt(name=mod_name):
        return
    import pkgutil
    loader = pkgutil.get_loader(mod_name)
    if loader is None:
        raise ImportError('No module named %s (the main module of the parent)' % mod_name)
    code = loader.get_code(mod_name)
    filename = loader.get_filename(mod_name)
    module = types.ModuleType('__mp_main__')
    module.__file__ = filename
    module.__loader__ = loader
    module.__package__ = mod_name.rpartition('.')[0]
    if loader.is_package(mod_name):
        module.__path__ = [os.path.dirname(filename)]
        module.__package__ = mod_name
    _run_main_code(module, code)


def _fixup_main_from_path(main_path, compiled=None):
    if _module_stem(main_path) == '__main__' or _main_already_rebuilt(path=main_path):
        return
    module = types.ModuleType('__mp_main__')
    module.__file__ = main_path
    module.__package__ = None
    _run_main_code(module, _load_main_code(main_path, compiled))


def _load_main_code(path, compiled):
    """The parent's compiled main code if this interpreter can load it
    (another interpreter may have been chosen with set_executable)."""
    if compiled is not None:
        import marshal
        magic, data = compiled
        if magic == _compat.bytecode_magic():
            return marshal.loads(data)
    return _read_code(path)


def _main_already_rebuilt(name=None, path=None):
    """Whether this process (a child of a fork server that preloaded the
    main module) already has it as __mp_main__: then it is not run again."""
    current = sys.modules.get('__main__')
    if current is None or getattr(current, '__name__', None) != '__mp_main__':
        return False
    if name is not None:
        return _compat.main_module_name(current) == name
    return getattr(current, '__file__', None) == path


def import_main_path(main_path):
    """Set sys.modules['__main__'] to the module at ``main_path``."""
    _fixup_main_from_path(main_path)


def _run_main_code(module, code):
    module.__builtins__ = _compat.builtins_module
    previous = sys.modules.get('__main__')
    _install_main(module)
    try:
        _compat.exec_code(code, module.__dict__)
    except BaseException:
        if previous is not None:
            sys.modules['__main__'] = previous
        raise


def _read_code(path):
    """The code object of a script: source, or a compiled .pyc/.pyo."""
    import imp
    import marshal
    with open(path, 'rb') as f:
        head = f.read(4)
        if head == imp.get_magic():
            f.read(4)  # the source's modification time
            return marshal.load(f)
        source = head + f.read()
    return compile(source, path, 'exec', dont_inherit=True)
