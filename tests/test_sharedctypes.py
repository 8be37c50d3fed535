"""Conformance: Value, Array, RawValue, RawArray, synchronized() and copy(),
shared with children of every start method."""
import ctypes
import pickle

import pytest

import mpspawn
from mpspawn import sharedctypes
import targets_sharedctypes as targets


def run(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    p.join(60)
    assert p.exitcode == 0
    return p


def test_counter_incremented_by_four_children_is_exact(ctx):
    counter = ctx.Value('i', 0)
    procs = [ctx.Process(target=targets.increment, args=(counter, 250)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert counter.value == 1000


def test_array_changed_by_child(ctx):
    array = ctx.Array('d', [0.5, 1.5, 2.5])
    run(ctx, targets.double_all, array)
    assert list(array[:]) == [1.0, 3.0, 5.0]
    assert len(array) == 3
    assert array[1:3] == [3.0, 5.0]


def test_raw_objects_shared(ctx):
    raw_value = ctx.RawValue(ctypes.c_long, 5)
    raw_array = ctx.RawArray('i', 4)
    assert list(raw_array) == [0, 0, 0, 0]
    text = ctx.Array('c', 20)
    run(ctx, targets.fill_raw, raw_value, raw_array, text)
    assert raw_value.value == 99
    assert list(raw_array) == [0, 1, 4, 9]
    assert text.value == b'child wrote'
    assert text.raw[:11] == b'child wrote'


def test_structure_value(ctx):
    point = ctx.Value(targets.Point, 1.0, 2.0)
    run(ctx, targets.move_point, point)
    assert (point.x, point.y) == (2.5, 0.5)


def test_lock_options(ctx):
    raw = ctx.Value('i', 3, lock=False)
    assert not hasattr(raw, 'get_lock')
    assert raw.value == 3
    shared_lock = ctx.Lock()
    a = ctx.Value('i', 1, lock=shared_lock)
    b = ctx.Array('i', [1, 2], lock=shared_lock)
    assert a.get_lock() is shared_lock and b.get_lock() is shared_lock
    with a:
        assert not shared_lock.acquire(False)
    assert shared_lock.acquire(False)
    shared_lock.release()
    with pytest.raises(AttributeError):
        ctx.Value('i', 1, lock='not a lock')
    default = ctx.Value('d')
    assert default.value == 0.0
    assert 'Synchronized' in repr(default)


def test_synchronized_and_copy():
    raw = sharedctypes.RawValue('i', 7)
    wrapped = sharedctypes.synchronized(raw)
    assert wrapped.value == 7 and wrapped.get_obj() is raw
    with pytest.raises(AssertionError):
        sharedctypes.synchronized(wrapped)
    duplicate = sharedctypes.copy(raw)
    duplicate.value = 8
    assert raw.value == 7 and duplicate.value == 8
    array = sharedctypes.RawArray('h', [1, 2, 3])
    assert list(sharedctypes.copy(array)) == [1, 2, 3]


@pytest.mark.parametrize('bad', ['z', 'int', 3.5])
def test_bad_typecode(bad):
    with pytest.raises(TypeError):
        mpspawn.Value(bad)
    with pytest.raises(TypeError):
        mpspawn.Array(bad, 3)


def test_not_picklable_outside_spawning(spawning_ctx):
    value = spawning_ctx.Value('i', 1)
    with pytest.raises(RuntimeError):
        pickle.dumps(value)
    from mpspawn.reduction import ForkingPickler
    with pytest.raises(RuntimeError):
        ForkingPickler.dumps(value.get_obj())


def test_many_values_reuse_heap(ctx):
    values = [ctx.RawValue('q', i) for i in range(200)]
    assert [v.value for v in values] == list(range(200))
    del values
    more = [ctx.RawArray('d', 100) for _ in range(20)]
    assert all(sum(a) == 0 for a in more)
