"""A Pool over functions defined in the script itself, under spawn.

A spawned worker is a fresh interpreter: to find ``word_length`` it imports
this script again, under the name ``__mp_main__``, so that the code under
``if __name__ == '__main__':`` does not run a second time.  (On 2.7,
billiard cannot do this: its workers fail to find the function and are
respawned forever.)

    python examples/pool_in_script.py            # spawn
    python examples/pool_in_script.py forkserver
"""
from __future__ import print_function

import os
import sys

import mpspawn as multiprocessing

# Module-level state is rebuilt in each worker when it imports the script.
SUFFIX = '!'


def word_length(word):
    return len(word + SUFFIX) - len(SUFFIX)


def describe(word):
    return '%s has %d letters (worker pid %d)' % (word, word_length(word), os.getpid())


def main(method):
    words = 'the quick brown fox jumps over the lazy dog'.split()
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        lengths = pool.map(word_length, words)
        print('lengths:', lengths)
        first = pool.apply_async(describe, ('spawned',))
        print(first.get(timeout=60))
        total = sum(pool.imap_unordered(word_length, words, chunksize=3))
        print('total letters:', total)
    pool.join()
    return 0 if lengths == [len(w) for w in words] else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'spawn'))
