"""What the children of the robustness drivers run.

Kept apart from the drivers and tests so a spawned child imports only this
module (and mpspawn) to find its target.  The ``*_forever`` targets loop
until they are killed; each first creates resources of its own (a lock and
a shared-memory block, registered with the resource tracker) so that the
tracker has something to clean up after the kill.
"""
import os
import random
import time

import mpspawn


def _own_resources():
    from mpspawn import shared_memory
    block = shared_memory.SharedMemory(create=True, size=4096)
    return [mpspawn.Lock(), block]


def _items(seed):
    """Small and large items in a fixed random order (large ones span
    several pipe writes, so a kill can land in the middle of one)."""
    rng = random.Random(seed)
    while True:
        if rng.random() < 0.5:
            yield b's' * rng.randint(1, 200)
        else:
            yield b'L' * rng.randint(5000, 300000)


def put_forever(ready, q, seed):
    keep = _own_resources()
    ready.send('ready')
    for item in _items(seed):
        q.put(item)
    del keep


def get_forever(ready, q):
    keep = _own_resources()
    ready.send('ready')
    while True:
        q.get()
    del keep


def lock_forever(ready, lock):
    keep = _own_resources()
    ready.send('ready')
    while True:
        with lock:
            time.sleep(0.002)
        time.sleep(0.0005)
    del keep


def manager_forever(ready, d, l, seed):
    rng = random.Random(seed)
    ready.send('ready')
    i = 0
    while True:
        i += 1
        d['k%d' % (i % 7)] = b'v' * rng.randint(1, 200000)
        l.append(i)
        if len(l) > 50:
            del l[:25]
        d.get('k3')


def survivor(inbox, outbox, lock):
    """Echo what arrives on ``inbox`` to ``outbox`` (under ``lock``) until None."""
    while True:
        item = inbox.get()
        if item is None:
            return
        with lock:
            outbox.put(('echo', item))


def payload_size(payload):
    return len(payload)


def square_slowly(x):
    time.sleep(0.004)
    return x * x


def square(x):
    return x * x


def sleep(seconds):
    time.sleep(seconds)


def getpid():
    return os.getpid()


def outlive_parent(lock, q, path):
    """Wait for the parent to die, then keep using what it made (its lock
    and queue) and write what happened to ``path`` as JSON."""
    import json
    parent = mpspawn.parent_process()
    parent.join(120)
    noticed = time.time()
    with lock:
        pass
    q.put(b'after')
    got = q.get(timeout=10)
    with open(path + '.tmp', 'w') as f:
        json.dump({'noticed': noticed, 'parent_alive': parent.is_alive(),
                   'lock_ok': True, 'queue_ok': got == b'after',
                   'daemon': mpspawn.current_process().daemon}, f)
    os.rename(path + '.tmp', path)
    time.sleep(1.0)


def noop():
    pass


def wait_for_event(ready, event, q):
    """One of many concurrent children: say so, wait, use the queue."""
    ready.put(os.getpid())
    event.wait(60)
    q.put(os.getpid())
