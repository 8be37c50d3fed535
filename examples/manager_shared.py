"""A Manager whose objects are shared by spawned children.

The manager's server process owns a dict, a list and a lock; the children
get proxies (as arguments) and use them as if they were local objects.
Every call travels to the server over an authenticated connection.

    python examples/manager_shared.py            # spawn
    python examples/manager_shared.py forkserver
"""
from __future__ import print_function

import os
import sys

import mpspawn as multiprocessing


def count_words(text, totals, seen_by, lock):
    """A child: add its words to the shared totals."""
    for word in text.split():
        with lock:                      # read-modify-write under the shared lock
            totals[word] = totals.get(word, 0) + 1
    seen_by.append(os.getpid())


def main(method):
    texts = ['the cat sat', 'the dog sat', 'a cat and a dog', 'the end']
    ctx = multiprocessing.get_context(method)
    with ctx.Manager() as manager:
        totals = manager.dict()
        seen_by = manager.list()
        lock = manager.Lock()
        children = [ctx.Process(target=count_words, args=(text, totals, seen_by, lock))
                    for text in texts]
        for child in children:
            child.start()
        for child in children:
            child.join()
        result = dict(totals)
        print('word counts:', sorted(result.items()))
        print('%d children reported; all distinct processes: %s'
              % (len(seen_by), len(set(seen_by)) == len(children)))
        print('exit codes:', [child.exitcode for child in children])
    expected = {}
    for text in texts:
        for word in text.split():
            expected[word] = expected.get(word, 0) + 1
    return 0 if result == expected else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'spawn'))
