"""Conformance: multiprocessing.shared_memory (SharedMemory, ShareableList),
attached from children of every start method."""
import errno
import os
import sys

import pytest

from mpspawn import shared_memory
import support
import targets_shm


@pytest.fixture
def block():
    blk = shared_memory.SharedMemory(create=True, size=4096)
    yield blk
    blk.close()
    try:
        blk.unlink()
    except OSError:
        pass


def test_create_write_read(block):
    assert block.size >= 4096
    block.buf[:5] = b'hello'
    other = shared_memory.SharedMemory(block.name)
    assert other.buf[:5].tobytes() == b'hello'
    assert other.size == block.size
    assert block.name in repr(other)
    other.close()


def test_named_create_and_exclusive(tmpdir):
    name = support.SHM_TEST_PREFIX + 'test-%d' % os.getpid()
    blk = shared_memory.SharedMemory(name, create=True, size=100)
    try:
        assert blk.name == name
        with pytest.raises(OSError) as info:
            shared_memory.SharedMemory(name, create=True, size=100)
        assert info.value.errno == errno.EEXIST
    finally:
        blk.close()
        blk.unlink()
    with pytest.raises(OSError) as info:
        shared_memory.SharedMemory(name)
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize('kwargs', [dict(create=True, size=0), dict(size=-1),
                                    dict(create=False)])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        shared_memory.SharedMemory(**kwargs)


def test_child_attaches_by_name(ctx, block):
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets_shm.write_into_block, args=(block.name, b'from child', w))
    p.start()
    w.close()
    assert r.recv() == block.size
    p.join()
    r.close()
    assert p.exitcode == 0
    assert block.buf[:10].tobytes() == b'from child'


def test_block_object_passed_to_child(ctx, block):
    block.buf[:6] = b'parent'
    r, w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=targets_shm.read_block_object, args=(block, 6, w))
    p.start()
    w.close()
    assert r.recv() == b'parent'
    p.join()
    r.close()


def test_shareable_list_round_trip():
    items = shared_memory.ShareableList([1, 2.5, True, None, b'bytes', u'text', -7])
    try:
        assert list(items) == [1, 2.5, True, None, b'bytes', u'text', -7]
        assert len(items) == 7
        assert items[-1] == -7
        assert items.index(None) == 3
        assert items.count(2.5) == 1
        items[0] = 10 ** 12
        items[4] = b'12345'
        assert items[0] == 10 ** 12 and items[4] == b'12345'
        with pytest.raises(ValueError):
            items[5] = u'x' * 100
        with pytest.raises(IndexError):
            items[7]
        with pytest.raises(IndexError):
            items[7] = 1
        with pytest.raises(ValueError):
            items.index('missing')
        again = shared_memory.ShareableList(name=items.shm.name)
        assert list(again) == list(items)
        again.shm.close()
    finally:
        items.shm.close()
        items.shm.unlink()


def test_shareable_list_in_child(ctx):
    items = shared_memory.ShareableList([41, u'original text'])
    try:
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=targets_shm.update_list, args=(items.shm.name, w))
        p.start()
        w.close()
        assert r.recv() == [42, u'changed']
        p.join()
        r.close()
        assert list(items) == [42, u'changed']
    finally:
        items.shm.close()
        items.shm.unlink()


def test_leaked_block_cleaned_by_tracker(tmpdir, spawning_ctx):
    """A block created and never unlinked is removed once every process of
    the tree is gone."""
    name = support.SHM_TEST_PREFIX + 'leak-%d' % os.getpid()
    support.write_file(str(tmpdir.join('leaky.py')), '''
        import sys
        import mpspawn as multiprocessing
        import targets_shm

        if __name__ == '__main__':
            ctx = multiprocessing.get_context(sys.argv[1])
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=targets_shm.create_and_forget, args=(sys.argv[2], w))
            p.start()
            w.close()
            print(r.recv())
            p.join()
    ''')
    result = support.run_python(['leaky.py', spawning_ctx.get_start_method(), name],
                                cwd=str(tmpdir))
    assert result.returncode == 0, result
    assert 'created' in result.out
    assert support.wait_until(lambda: name not in os.listdir('/dev/shm'), timeout=10), \
        'the resource tracker did not remove the leaked block'


@pytest.mark.skipif(sys.version_info[:2] not in [(2, 7)] and sys.version_info < (3, 13),
                    reason='track= is new in Python 3.13')
def test_untracked_block_survives_its_creator(tmpdir):
    name = support.SHM_TEST_PREFIX + 'untracked-%d' % os.getpid()
    result = support.run_python(['-c', 'from mpspawn import shared_memory; '
                                 'shared_memory.SharedMemory(%r, create=True, size=64, track=False)'
                                 % name], cwd=str(tmpdir))
    assert result.returncode == 0, result
    try:
        assert name in os.listdir('/dev/shm')
    finally:
        blk = shared_memory.SharedMemory(name, track=False)
        blk.close()
        blk.unlink()
