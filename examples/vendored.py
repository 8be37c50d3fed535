"""Vendoring: ship a private copy of mpspawn inside your application.

Copy the ``mpspawn`` package directory into your tree under any name, for
example ``app/_vendor/mpspawn``, and import it from there.  Nothing else is
needed: spawned children, the fork server and the resource tracker are
started as ``<package>.module`` with the package's own name
(``app._vendor.mpspawn.spawn``, ...), and each child imports the parent's
copy before anything else, so a different mpspawn installed on the machine
is never mixed in.

This script builds such an application in a temporary directory (copying
the mpspawn that ``import mpspawn`` finds here), runs it with a
``PYTHONPATH`` that holds only the application, and prints what its
children imported.

    python examples/vendored.py
"""
from __future__ import print_function

import os
import shutil
import subprocess
import sys
import tempfile

import mpspawn

APP_MAIN = '''
from __future__ import print_function
import sys

from app._vendor import mpspawn as multiprocessing


def child_report(conn):
    conn.send((multiprocessing.current_process().__class__.__module__,
               'mpspawn' in sys.modules))
    conn.close()


if __name__ == '__main__':
    for method in multiprocessing.get_all_start_methods():
        if method == 'fork':
            continue
        ctx = multiprocessing.get_context(method)
        reader, writer = ctx.Pipe(duplex=False)
        child = ctx.Process(target=child_report, args=(writer,))
        child.start()
        writer.close()
        module, top_level = reader.recv()
        child.join()
        print('%-10s child process class from %s; top-level mpspawn imported: %s; exit code %s'
              % (method, module, top_level, child.exitcode))
    print('parent: top-level mpspawn imported: %s' % ('mpspawn' in sys.modules))
'''


def build_app(root):
    """root/app/_vendor/mpspawn: a copy of the package, and root/run_app.py."""
    vendor = os.path.join(root, 'app', '_vendor')
    os.makedirs(vendor)
    for package in (os.path.join(root, 'app'), vendor):
        open(os.path.join(package, '__init__.py'), 'w').close()
    source = os.path.dirname(os.path.abspath(mpspawn.__file__))
    shutil.copytree(source, os.path.join(vendor, 'mpspawn'),
                    ignore=shutil.ignore_patterns('*.pyc', '*.pyo', '__pycache__'))
    main_path = os.path.join(root, 'run_app.py')
    with open(main_path, 'w') as f:
        f.write(APP_MAIN)
    return main_path


def main():
    root = tempfile.mkdtemp(prefix='vendored-example-')
    try:
        main_path = build_app(root)
        env = dict(os.environ, PYTHONPATH=root)
        env.pop('MPSPAWN_START_METHOD', None)
        print('running %s with PYTHONPATH=%s' % (os.path.basename(main_path), root))
        sys.stdout.flush()
        return subprocess.call([sys.executable, main_path], cwd=root, env=env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
