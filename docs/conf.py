"""Sphinx configuration for the mpspawn documentation.

How the API reference reads mpspawn's own (Python 2.7) modules
---------------------------------------------------------------

The reference is generated from the docstrings with ``sphinx.ext.autodoc``,
which documents objects by importing them.  Sphinx runs on Python 3, and on
Python 3 ``import mpspawn`` *is* the standard library (mpspawn/__init__.py
calls ``_compat.become_stdlib``): a plain autodoc run would document
CPython's multiprocessing, not mpspawn.  Writing the reference by hand
instead would let it drift from the code.

So this file loads the 2.7 sources themselves under their own names, only
for the documentation process:

* ``mpspawn`` becomes a bare package object whose ``__path__`` is the source
  directory; its ``__init__.py`` is not run (that is where the switch to the
  standard library happens).  The module-level API is then bound from the
  default context, exactly as ``__init__.py`` does on 2.7.
* Every submodule is loaded from its source file by ``_SourceLoader``, one
  top-level statement at a time.  The modules are written for 2.7 and route
  every version difference through ``_compat``, which has a Python 3 branch,
  so nearly all of them import cleanly; a top-level statement that only
  makes sense on 2.7 (say, registering a pickle reducer for a 2.7-only type)
  is skipped and listed with ``sphinx-build -v``.  Function and class
  definitions, which are what autodoc needs, always execute.  If a skipped
  statement ever hides a documented object, autodoc warns, and with ``-W``
  the build fails: the reference cannot silently lose an entry.
* Nothing is started: the modules only define things when imported.

Where 2.7 behaviour differs from Python 3, the docstrings say so, and the
reference pages add notes (``.. note:: 2.7``) around the generated entries.
"""
import ast
import importlib.abc
import importlib.util
import os
import re
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_ROOT = os.path.dirname(HERE)
PACKAGE_DIR = os.path.join(SOURCE_ROOT, 'mpspawn')

# The version lives in one place: mpspawn/__init__.py.
with open(os.path.join(PACKAGE_DIR, '__init__.py')) as _f:
    _init_source = _f.read()
release = re.search(r"^__version__ = '([^']+)'", _init_source, re.M).group(1)
version = release

project = 'mpspawn'
author = 'the mpspawn developers'
copyright = '2026, the mpspawn developers'
extensions = ['sphinx.ext.autodoc']
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
nitpicky = True
# Names the docs mention that belong to other projects (no intersphinx: the
# build must not need the network).
nitpick_ignore_regex = [
    (r'py:.*', r'(threading|concurrent\.futures|ctypes|pickle|cPickle|socket|logging|'
               r'multiprocessing|mmap|array|queue|Queue|types|weakref)(\..*)?'),
    (r'py:class', r'(object|Exception|RuntimeError|OSError|MemoryError|ValueError|'
                  r'TypeError|set|dict|list|bytes|str|int|float|bool|tuple|callable)'),
]
autodoc_member_order = 'bysource'
autodoc_default_options = {'undoc-members': False}
# The 2.7 sources do not always name __init__ arguments in the class line.
autoclass_content = 'both'
add_module_names = True

# -- loading the 2.7 sources (see the module docstring) ----------------------

skipped_statements = []


class _SourceLoader(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mpspawn.*`` in the source tree and executes each module's
    top-level statements one by one, skipping those that fail on Python 3."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith('mpspawn.'):
            return None
        parts = fullname.split('.')[1:]
        base = os.path.join(PACKAGE_DIR, *parts)
        if os.path.isfile(os.path.join(base, '__init__.py')):
            return importlib.util.spec_from_file_location(
                fullname, os.path.join(base, '__init__.py'), loader=self,
                submodule_search_locations=[base])
        if os.path.isfile(base + '.py'):
            return importlib.util.spec_from_file_location(fullname, base + '.py', loader=self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        filename = module.__spec__.origin
        with open(filename) as f:
            tree = ast.parse(f.read(), filename)
        for statement in tree.body:
            code = compile(ast.Module(body=[statement], type_ignores=[]), filename, 'exec')
            try:
                exec(code, module.__dict__)
            except Exception as exc:
                if isinstance(statement, (ast.FunctionDef, ast.ClassDef)):
                    raise
                skipped_statements.append((module.__name__, statement.lineno, exc))


def _load_mpspawn_sources():
    for name in [n for n in sys.modules if n == 'mpspawn' or n.startswith('mpspawn.')]:
        del sys.modules[name]
    sys.meta_path.insert(0, _SourceLoader())
    package = types.ModuleType('mpspawn', ast.get_docstring(ast.parse(_init_source)))
    package.__path__ = [PACKAGE_DIR]
    package.__file__ = os.path.join(PACKAGE_DIR, '__init__.py')
    package.__package__ = 'mpspawn'
    package.__version__ = release
    sys.modules['mpspawn'] = package
    # What __init__.py does on 2.7: the module-level API is the default
    # context's methods.
    context = importlib.import_module('mpspawn.context')
    names = [n for n in dir(context._default_context) if not n.startswith('_')]
    for name in names:
        setattr(package, name, getattr(context._default_context, name))
    package.__all__ = names


_load_mpspawn_sources()


def _report_skipped(app, *args):
    from sphinx.util import logging
    logger = logging.getLogger(__name__)
    for module, line, exc in skipped_statements:
        logger.verbose('mpspawn docs: skipped %s line %d on Python 3 (%s: %s)',
                       module, line, type(exc).__name__, exc)


def setup(app):
    app.connect('builder-inited', _report_skipped)
