"""The shared-memory heap: blocks that forked and spawned children see,
the allocator, and what happens when the file system behind it is small.

Conformance tests run against mpspawn on 2.7 and against the standard
library on Python 3; the space tests are for mpspawn (Python 3 maps a
sparse file and dies of SIGBUS later instead).
"""
import fcntl
import gc
import os
import random
import subprocess
import sys

import pytest

import mpspawn
import mpspawn.heap
import support
from support import start
import targets_sync

from mpspawn.heap import BufferWrapper, Heap

DEADLINE = targets_sync.DEADLINE


def join_ok(p):
    p.join(DEADLINE)
    assert p.exitcode == 0


def test_buffer_wrapper_memoryview():
    wrapper = BufferWrapper(100)
    view = wrapper.create_memoryview()
    assert len(view) == 100 and not view.readonly
    view[:5] = b'hello'
    view[95:] = b'world'
    assert wrapper.create_memoryview()[:5].tobytes() == b'hello'
    assert wrapper.create_memoryview().tobytes()[95:] == b'world'


def test_buffer_wrapper_sizes():
    assert len(BufferWrapper(0).create_memoryview()) == 0
    with pytest.raises(ValueError):
        BufferWrapper(-1)
    with pytest.raises(OverflowError):
        BufferWrapper(sys.maxsize)


def test_blocks_do_not_overlap():
    wrappers = [BufferWrapper(n) for n in (1, 7, 8, 9, 100, 3)]
    for i, wrapper in enumerate(wrappers):
        view = wrapper.create_memoryview()
        view[:] = bytes(bytearray([i + 1] * len(view)))
    for i, wrapper in enumerate(wrappers):
        data = bytearray(wrapper.create_memoryview().tobytes())
        assert data == bytearray([i + 1] * len(data))


def test_child_writes_parent_reads(ctx):
    wrapper = BufferWrapper(64)
    join_ok(start(ctx, targets_sync.write_bytes, wrapper, b'from the child'))
    assert wrapper.create_memoryview()[:14].tobytes() == b'from the child'


def test_parent_writes_child_reads(ctx):
    wrapper = BufferWrapper(64)
    wrapper.create_memoryview()[:15] = b'from the parent'
    r, w = ctx.Pipe(duplex=False)
    p = start(ctx, targets_sync.read_bytes, wrapper, 15, w)
    w.close()
    assert r.poll(DEADLINE)
    assert r.recv() == b'from the parent'
    join_ok(p)
    r.close()


def test_forked_child_allocations_leave_parent_blocks_alone():
    wrapper = BufferWrapper(32)
    wrapper.create_memoryview()[:6] = b'parent'
    fork = mpspawn.get_context('fork')
    r, w = fork.Pipe(duplex=False)
    # The child allocates from a heap of its own, then reads our block.
    p = start(fork, targets_sync.read_bytes, BufferWrapper(8), 0, w)
    join_ok(p)
    w.close()
    r.close()
    assert wrapper.create_memoryview()[:6].tobytes() == b'parent'


# -- the allocator --------------------------------------------------------------

def _fill(block, value):
    arena, start, stop = block
    arena.buffer[start:stop] = bytes(bytearray([value]) * (stop - start))


def _check(block, value):
    arena, start, stop = block
    assert bytearray(arena.buffer[start:stop]) == bytearray([value]) * (stop - start)


def test_heap_malloc_free_reuses_space():
    heap = Heap()
    rng = random.Random(1234)
    live = {}
    for step in range(600):
        if live and rng.random() < 0.45:
            block = rng.choice(list(live))
            _check(block, live.pop(block))
            heap.free(block)
        else:
            size = rng.choice([1, 8, 24, 100, 1000, 5000])
            block = heap.malloc(size)
            arena, start, stop = block
            assert start % 8 == 0 and stop - start >= size and stop <= arena.size
            value = step % 251 + 1
            _fill(block, value)
            live[block] = value
    for block, value in live.items():
        _check(block, value)
        heap.free(block)
    arenas = len(heap._arenas)
    # Everything is free again: the same allocations need no new arena.
    blocks = [heap.malloc(1000) for _ in range(4)]
    assert len(heap._arenas) == arenas
    for block in blocks:
        heap.free(block)
    del heap, blocks
    gc.collect()


def test_heap_merges_neighbours():
    heap = Heap()
    a, b, c = heap.malloc(64), heap.malloc(64), heap.malloc(64)
    assert a[0] is b[0] is c[0]
    for block in (a, c, b):
        heap.free(block)
    # The three freed blocks merged: one block of their total size fits.
    whole = heap.malloc(192)
    assert len(heap._arenas) == 1 and whole[0] is a[0]
    heap.free(whole)


def test_large_idle_arena_is_given_back():
    heap = Heap()
    fds_before = set(support.open_fds())
    block = heap.malloc(5 * 1024 * 1024)
    assert len(heap._arenas) == 1
    heap.free(block)
    assert heap._arenas == []
    del block
    gc.collect()
    assert set(support.open_fds()) == fds_before


# -- arena files ------------------------------------------------------------------

def _arena_of(wrapper):
    # Python 3 and mpspawn both keep (block, size) in _state.
    (arena, start, stop), size = wrapper._state
    return arena


def test_arena_file_is_unlinked_and_close_on_exec():
    arena = _arena_of(BufferWrapper(16))
    st = os.fstat(arena.fd)
    assert st.st_nlink == 0
    same_file = [fd for fd in support.open_fds()
                 if _same_file(fd, st)]
    assert arena.fd in same_file
    for fd in same_file:
        # Our descriptor, and any the mmap module keeps: none is inherited.
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC, fd


def _same_file(fd, st):
    try:
        other = os.fstat(fd)
    except OSError:
        return False
    return (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino)


@pytest.mark.skipif(not os.path.isdir('/dev/shm'), reason='no /dev/shm')
def test_arena_lives_in_dev_shm():
    arena = _arena_of(BufferWrapper(16))
    assert os.readlink('/proc/self/fd/%d' % arena.fd).startswith('/dev/shm/')


@pytest.mark.mpspawn_only
def test_buffer_region_for_ctypes_and_struct():
    import ctypes
    import struct
    wrapper = BufferWrapper(16)
    buf, offset, size = wrapper.buffer_region()
    assert size == 16
    value = ctypes.c_int64.from_buffer(buf, offset)
    value.value = -5
    assert struct.unpack_from('q', buf, offset) == (-5,)
    struct.pack_into('q', buf, offset + 8, 42)
    assert wrapper.create_memoryview()[8:16].tobytes() == struct.pack('q', 42)


@pytest.mark.mpspawn_only
def test_block_dropped_by_parent_survives_for_starting_child(spawning_ctx):
    """A block the parent drops right after start() is not handed out again
    while the child that received it may still use it."""
    wrapper = BufferWrapper(24)
    wrapper.create_memoryview()[:8] = b'original'
    r, w = spawning_ctx.Pipe(duplex=False)
    p = start(spawning_ctx, targets_sync.sleep_then_read, wrapper, 8, w, 0.3)
    w.close()
    del wrapper
    gc.collect()
    others = [BufferWrapper(24) for _ in range(4)]
    for other in others:
        other.create_memoryview()[:8] = b'reusedXX'
    assert r.poll(DEADLINE)
    assert r.recv() == b'original'
    join_ok(p)
    r.close()


@pytest.mark.mpspawn_only
def test_heap_dir_environment_variable(tmpdir):
    script = support.write_file(str(tmpdir.join('where.py')), '''
        import os
        from mpspawn import heap
        wrapper = heap.BufferWrapper(100)
        (arena, start, stop), size = wrapper._state
        print(os.readlink('/proc/self/fd/%d' % arena.fd))
    ''')
    chosen = tmpdir.mkdir('heapdir')
    result = support.run_python([script], env={'MPSPAWN_HEAP_DIR': str(chosen)})
    assert result.returncode == 0, result
    assert result.out.startswith(str(chosen) + '/mps-heap-'), result
    assert result.out.strip().endswith('(deleted)')
    assert chosen.listdir() == []


# -- a small file system ------------------------------------------------------------

def _unshare_prefix(mountpoint):
    """A command prefix that runs a command in a private mount namespace
    with a 64 KiB tmpfs on ``mountpoint``, or None if we may not."""
    for flags in (['--mount'], ['--user', '--map-root-user', '--mount']):
        cmd = ['unshare'] + flags + ['sh', '-c', 'mount -t tmpfs -o size=64k tmpfs "$0" && exec "$@"',
                                     mountpoint]
        try:
            if subprocess.call(cmd + ['true'], stdout=open(os.devnull, 'w'),
                               stderr=subprocess.STDOUT) == 0:
                return cmd
        except OSError:
            return None
    return None


SMALL_TMPFS_SCRIPT = '''
import errno
import os
import sys
from mpspawn import heap

def where(wrapper):
    (arena, start, stop), size = wrapper._state
    return os.readlink('/proc/self/fd/%d' % arena.fd)

small = sys.argv[1]
try:
    big = heap.BufferWrapper(1 << 20)
except heap.HeapSpaceError as exc:
    print('1 MiB refused: MemoryError=%s OSError=%s ENOSPC=%s names dir=%s' % (
        isinstance(exc, MemoryError), isinstance(exc, OSError),
        exc.errno == errno.ENOSPC, small in str(exc)))
else:
    print('1 MiB allocated in ' + where(big))
# 16 KiB and then 40 KiB fit in 64 KiB: write every byte.
kept = []
for size in (16000, 40000):
    wrapper = heap.BufferWrapper(size)
    wrapper.create_memoryview()[:] = b'x' * size
    kept.append(wrapper)
    print('%d bytes written in %s' % (size, os.path.dirname(where(wrapper))))
# The file system is now nearly full: the next arena fails here, cleanly
# (or goes elsewhere, if the directory was not chosen).
try:
    wrapper = heap.BufferWrapper(20000)
    wrapper.create_memoryview()[:] = b'y' * 20000
except MemoryError as exc:
    print('full: %s' % (exc.errno == errno.ENOSPC))
else:
    print('20000 bytes written in %s' % os.path.dirname(where(wrapper)))
print('done')
'''


@pytest.mark.mpspawn_only
def test_small_heap_dir_fails_at_creation_not_with_sigbus(tmpdir):
    small = str(tmpdir.mkdir('small'))
    prefix = _unshare_prefix(small)
    if prefix is None:
        pytest.skip('cannot mount a tmpfs in a private mount namespace here')
    script = support.write_file(str(tmpdir.join('small.py')), SMALL_TMPFS_SCRIPT)
    result = support.run_python(prefix[1:] + [sys.executable, script, small],
                                python=prefix[0], env={'MPSPAWN_HEAP_DIR': small})
    assert result.returncode == 0, result
    assert result.out.splitlines() == [
        '1 MiB refused: MemoryError=True OSError=True ENOSPC=True names dir=True',
        '16000 bytes written in ' + small,
        '40000 bytes written in ' + small,
        'full: True',
        'done'], result


@pytest.mark.mpspawn_only
def test_small_dev_shm_falls_back_to_temp_dir(tmpdir):
    prefix = _unshare_prefix('/dev/shm')
    if prefix is None:
        pytest.skip('cannot mount a tmpfs in a private mount namespace here')
    script = support.write_file(str(tmpdir.join('small.py')), SMALL_TMPFS_SCRIPT)
    result = support.run_python(prefix[1:] + [sys.executable, script, '/dev/shm'],
                                python=prefix[0])
    assert result.returncode == 0, result
    lines = result.out.splitlines()
    # Too big for /dev/shm: the private temp directory takes it.
    assert lines[0].startswith('1 MiB allocated in ') and '/pymp-' in lines[0], result
    assert lines[1:3] == ['16000 bytes written in /dev/shm',
                          '40000 bytes written in /dev/shm'], result
    assert lines[3].startswith('20000 bytes written in ') and '/pymp-' in lines[3], result
    assert lines[4:] == ['done'], result
