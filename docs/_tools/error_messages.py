"""List the error messages mpspawn raises or prints, and those that
docs/troubleshooting.rst does not mention.

A message is the string given to ``raise SomeError(...)``, to
``sys.stderr.write(...)`` or to ``warnings.warn(...)`` in mpspawn/ (found by
reading the source, nothing is imported).  It counts as documented when its
longest literal fragment -- the text between the ``%s``/``{}`` placeholders
-- appears in the troubleshooting page (whitespace ignored).

    python docs/_tools/error_messages.py            # the undocumented ones
    python docs/_tools/error_messages.py --all      # every message found

Runs on Python 2.7 and 3; tests/test_packaging.py runs it too.
"""
from __future__ import print_function

import ast
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PACKAGE = os.path.join(ROOT, 'mpspawn')
TROUBLESHOOTING = os.path.join(ROOT, 'docs', 'troubleshooting.rst')

# Printed by the self-check as its report, not errors.
SKIPPED_FILES = ('selfcheck.py',)
PLACEHOLDER = re.compile(r'%(\([^)]*\))?[-#0 +]*\d*(\.\d+)?[sdrifxXeEgGc]|\{[^}]*\}')
MIN_FRAGMENT = 8
MAX_FRAGMENT = 100
# Exceptions made ahead of raising them (error = WorkerLostError(...)).
EXCEPTION_SUFFIXES = ('Error', 'BrokenProcessPool')


def _literal(node):
    """The text of a message expression: a string, ``'...' % args`` or
    ``'...'.format(...)``; None for anything else."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return _literal(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left), _literal(node.right)
        if left is not None or right is not None:
            return (left or '') + '{}' + (right or '')
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == 'format':
        return _literal(node.func.value)
    value = getattr(node, 's', None) if type(node).__name__ == 'Str' else None
    if value is None and type(node).__name__ == 'Constant':
        value = node.value
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    return value if isinstance(value, type(u'')) or isinstance(value, str) else None


def _message_of_call(call):
    func = call.func
    name = getattr(func, 'attr', None) or getattr(func, 'id', None)
    if name in ('write', 'warn'):
        owner = getattr(getattr(func, 'value', None), 'attr', None) or \
            getattr(getattr(func, 'value', None), 'id', None)
        if (name == 'write' and owner != 'stderr') or (name == 'warn' and owner != 'warnings'):
            return None
    if not call.args:
        return None
    return _literal(call.args[0])


def messages():
    """[(path relative to the root, line, exception or 'stderr', text)]."""
    found = []
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = sorted(d for d in dirnames if d != '__pycache__')
        for filename in sorted(filenames):
            if not filename.endswith('.py') or filename in SKIPPED_FILES:
                continue
            path = os.path.join(dirpath, filename)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            rel = os.path.relpath(path, ROOT)
            # Exceptions of raise statements, found through the statement.
            raised = set(id(getattr(n, 'exc', None) or getattr(n, 'type', None))
                         for n in ast.walk(tree) if isinstance(n, ast.Raise))
            for node in ast.walk(tree):
                if isinstance(node, ast.Raise):
                    exc = getattr(node, 'exc', None) or getattr(node, 'type', None)
                    if isinstance(exc, ast.Call):
                        text = _message_of_call(exc)
                        kind = getattr(exc.func, 'id', None) or getattr(exc.func, 'attr', '?')
                        if kind == 'pickling_error_class':
                            kind = 'PicklingError'
                        if text is None and isinstance(exc.func, ast.Call):
                            # pickling_error_class()(message)
                            text = _message_of_call(exc)
                        if text and not kind.startswith('_'):
                            found.append((rel, node.lineno, kind, text))
                elif isinstance(node, ast.Call):
                    func = node.func
                    name = getattr(func, 'id', None) or getattr(func, 'attr', None) or ''
                    if name.endswith(EXCEPTION_SUFFIXES) and not name.startswith('_') and \
                            id(node) not in raised:
                        text = _message_of_call(node)
                        if text:
                            found.append((rel, node.lineno, name, text))
                    elif getattr(func, 'attr', None) in ('write', 'warn'):
                        text = _message_of_call(node)
                        if text:
                            kind = 'stderr' if func.attr == 'write' else 'warning'
                            found.append((rel, node.lineno, kind, text))
    return found


def fragment(text):
    """The longest literal piece of a message, whitespace collapsed."""
    pieces = [' '.join(p.split()) for p in PLACEHOLDER.split(text) if p]
    piece = max(pieces, key=len) if pieces else ''
    # A long message is recognised by its beginning (the page may quote the
    # rest in prose).
    return piece[:MAX_FRAGMENT].rsplit(' ', 1)[0] if len(piece) > MAX_FRAGMENT else piece


def undocumented(doc_path=TROUBLESHOOTING):
    with open(doc_path) as f:
        doc = ' '.join(f.read().split())
    missing = []
    for rel, line, kind, text in messages():
        piece = fragment(text)
        if len(piece) >= MIN_FRAGMENT and piece not in doc:
            missing.append((rel, line, kind, piece))
    return missing


def main(argv):
    if '--all' in argv:
        for rel, line, kind, text in messages():
            print('%s:%d: %s: %s' % (rel, line, kind, ' '.join(text.split())))
        return 0
    missing = undocumented()
    for rel, line, kind, piece in missing:
        print('%s:%d: %s: %s' % (rel, line, kind, piece))
    print('%d message(s) not in docs/troubleshooting.rst' % len(missing))
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
