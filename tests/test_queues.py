"""Conformance: Queue, JoinableQueue and SimpleQueue within a process and
across the boundary of forked and spawned children.

Runs against mpspawn on 2.7 and against the standard library on Python 3.
"""
import pickle
import sys
import threading
import time

import pytest

import mpspawn
import support
from support import start, join_ok
import targets_queues as tq
from targets_queues import std_queue

DEADLINE = tq.DEADLINE
MiB = 1 << 20

needs_qsize = pytest.mark.skipif(sys.platform == 'darwin',
                                 reason='qsize() raises NotImplementedError on macOS')


def finish(*queues):
    for q in queues:
        q.close()
        q.join_thread()


def wait_for(predicate, message):
    assert support.wait_until(predicate, timeout=DEADLINE), message


# -- one process -------------------------------------------------------------------

def test_fifo_order_and_values(ctx):
    q = ctx.Queue()
    items = [None, 0, -1, 2 ** 70, 1.5, u'text \u20ac', b'bytes', (1, (2, 3)),
             [1, [2]], {'k': {'n': 1}}, set([1, 2]), b'x' * 5000, b'y' * 200000]
    for item in items:
        q.put(item)
    assert [q.get(True, DEADLINE) for _ in items] == items
    finish(q)


def test_get_block_timeout_and_nowait(ctx):
    q = ctx.Queue()
    with pytest.raises(std_queue.Empty):
        q.get_nowait()
    with pytest.raises(std_queue.Empty):
        q.get(False)
    started = support.monotonic()
    with pytest.raises(std_queue.Empty):
        q.get(True, 0.2)
    assert support.monotonic() - started >= 0.15
    with pytest.raises(std_queue.Empty):
        q.get(timeout=0)
    q.put_nowait('now')
    assert q.get(True, DEADLINE) == 'now'
    q.put('again', False)
    assert q.get(timeout=DEADLINE) == 'again'
    finish(q)


@needs_qsize
def test_qsize_empty_full(ctx):
    q = ctx.Queue(3)
    assert q.qsize() == 0 and q.empty() and not q.full()
    q.put(1)
    q.put(2)
    wait_for(lambda: not q.empty(), 'the item never reached the pipe')
    assert q.qsize() == 2 and not q.full()
    q.put(3)
    assert q.qsize() == 3 and q.full()
    assert q.get(True, DEADLINE) == 1
    assert q.qsize() == 2 and not q.full()
    q.get(True, DEADLINE)
    q.get(True, DEADLINE)
    assert q.qsize() == 0 and q.empty()
    finish(q)


def test_maxsize_full_with_timeout(ctx):
    q = ctx.Queue(maxsize=2)
    q.put('a')
    q.put('b')
    with pytest.raises(std_queue.Full):
        q.put_nowait('c')
    with pytest.raises(std_queue.Full):
        q.put('c', False)
    started = support.monotonic()
    with pytest.raises(std_queue.Full):
        q.put('c', True, 0.2)
    assert support.monotonic() - started >= 0.15
    assert q.get(True, DEADLINE) == 'a'
    q.put('c', True, DEADLINE)
    assert [q.get(True, DEADLINE), q.get(True, DEADLINE)] == ['b', 'c']
    finish(q)


def test_put_blocks_until_a_child_makes_room(ctx):
    q = ctx.Queue(maxsize=1)
    out = ctx.Queue()
    q.put('first')
    p = start(ctx, tq.get_one, q, out)
    try:
        q.put('second', True, DEADLINE)     # blocks until the child took 'first'
        assert out.get(True, DEADLINE) == 'first'
        assert q.get(True, DEADLINE) == 'second'
    finally:
        join_ok(p)
        finish(q, out)


def test_close_then_use_raises_value_error(ctx):
    q = ctx.Queue()
    q.put('flushed on close')
    q.close()
    q.join_thread()
    with pytest.raises(ValueError):
        q.put('late')
    with pytest.raises(ValueError):
        q.get(False)
    q.close()                           # closing twice is harmless


def test_join_thread_needs_close(ctx):
    q = ctx.Queue()
    q.put(1)
    with pytest.raises(AssertionError):
        q.join_thread()
    assert q.get(True, DEADLINE) == 1
    finish(q)


def test_close_and_join_thread_without_any_put(ctx):
    q = ctx.Queue()
    finish(q)


def test_cancel_join_thread(ctx):
    q = ctx.Queue()
    q.put('x')
    q.cancel_join_thread()
    assert q.get(True, DEADLINE) == 'x'
    q.close()
    q.join_thread()                     # returns at once


def test_threads_share_a_queue(ctx):
    q = ctx.Queue()
    count = 2000

    def producer(tag):
        for i in range(count):
            q.put((tag, i))
    threads = [threading.Thread(target=producer, args=(tag,)) for tag in 'ab']
    for t in threads:
        t.start()
    got = [q.get(True, DEADLINE) for _ in range(2 * count)]
    for t in threads:
        t.join(DEADLINE)
    for tag in 'ab':
        # Each thread's own items keep their order.
        assert [i for t, i in got if t == tag] == list(range(count))
    finish(q)


def test_queue_refuses_pickling_outside_spawning(ctx):
    q = ctx.Queue()
    with pytest.raises(RuntimeError):
        pickle.dumps(q, 2)
    sq = ctx.SimpleQueue()
    with pytest.raises(RuntimeError):
        pickle.dumps(sq, 2)
    jq = ctx.JoinableQueue()
    with pytest.raises(RuntimeError):
        pickle.dumps(jq, 2)
    finish(q, jq)
    sq.close()


# -- across processes ---------------------------------------------------------------

def test_producer_and_consumer_children(ctx):
    q = ctx.Queue()
    out = ctx.Queue()
    items = [('item', i, u'\u00e9' * (i % 5)) for i in range(300)]
    consumer = start(ctx, tq.consume, q, len(items), out)
    producer = start(ctx, tq.produce, q, items)
    try:
        assert out.get(True, DEADLINE) == items
    finally:
        join_ok(producer, consumer)
        finish(q, out)


def test_echo_through_a_child(ctx):
    q_in, q_out = ctx.Queue(), ctx.Queue()
    p = start(ctx, tq.echo, q_in, q_out)
    try:
        for item in (1, 'two', [3], {'four': 4}, b'5' * 100000):
            q_in.put(item)
            assert q_out.get(True, DEADLINE) == item
        q_in.put(None)
    finally:
        join_ok(p)
        finish(q_in, q_out)


def test_many_small_items_across_processes(ctx):
    q, out = ctx.Queue(), ctx.Queue()
    count = 20000
    consumer = start(ctx, tq.consume, q, count, out)
    try:
        for i in range(count):
            q.put(i)
        assert out.get(True, DEADLINE) == list(range(count))
    finally:
        join_ok(consumer)
        finish(q, out)


def test_large_items_across_processes(ctx):
    q, out = ctx.Queue(), ctx.Queue()
    items = [b'a' * MiB, b'b' * (MiB + 3), b'c' * 4097, b'd' * (2 * MiB)]
    consumer = start(ctx, tq.consume_sizes, q, len(items), out)
    try:
        for item in items:
            q.put(item)
        assert out.get(True, DEADLINE) == [(len(x), x[:1], x[-1:]) for x in items]
    finally:
        join_ok(consumer)
        finish(q, out)


def test_child_items_are_flushed_before_it_exits(ctx):
    # More than a pipe holds: the child's feeder thread must write them all
    # before the child ends.
    q = ctx.Queue()
    count = 100
    p = start(ctx, tq.put_then_exit, q, count)
    try:
        got = [q.get(True, DEADLINE) for _ in range(count)]
        assert [i for i, _ in got] == list(range(count))
    finally:
        join_ok(p)
        finish(q)


def test_get_timeout_and_put_timeout_in_children(ctx):
    q = ctx.Queue(maxsize=1)
    a, b = ctx.Pipe()
    p = start(ctx, tq.get_with_timeout, q, 0.1, b)
    try:
        assert a.poll(DEADLINE) and a.recv() == ('empty', None)
    finally:
        join_ok(p)
    q.put('occupied')
    p = start(ctx, tq.put_with_timeout, q, 'more', 0.1, b)
    try:
        assert a.poll(DEADLINE) and a.recv() == 'full'
    finally:
        join_ok(p)
        a.close()
        b.close()
    assert q.get(True, DEADLINE) == 'occupied'
    finish(q)


@needs_qsize
def test_qsize_seen_from_a_child(ctx):
    q = ctx.Queue(2)
    q.put(1)
    q.put(2)
    wait_for(lambda: not q.empty(), 'items never reached the pipe')
    a, b = ctx.Pipe()
    p = start(ctx, tq.report_qsize, q, b)
    try:
        assert a.poll(DEADLINE) and a.recv() == (2, False, True)
    finally:
        join_ok(p)
        a.close()
        b.close()
    q.get(True, DEADLINE)
    q.get(True, DEADLINE)
    finish(q)


def test_joinable_queue_join_waits_for_task_done_in_children(ctx):
    q = ctx.JoinableQueue()
    done = ctx.Queue()
    count = 20
    workers = [start(ctx, tq.work_and_mark_done, q, count // 2, done) for _ in range(2)]
    try:
        for i in range(count):
            q.put(i)
        q.join()
        # join() returned: every item was marked done, so every item was
        # reported on `done` before its task_done().
        finished = [done.get(True, DEADLINE) for _ in range(count)]
        assert sorted(finished) == list(range(count))
    finally:
        join_ok(*workers)
        finish(q, done)


def test_joinable_queue_join_returns_at_once_when_nothing_is_pending(ctx):
    q = ctx.JoinableQueue()
    q.join()
    q.put('x')
    assert q.get(True, DEADLINE) == 'x'
    q.task_done()
    q.join()
    finish(q)


def test_task_done_too_many_times(ctx):
    q = ctx.JoinableQueue()
    with pytest.raises(ValueError):
        q.task_done()
    q.put(1)
    q.get(True, DEADLINE)
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()
    finish(q)


# -- SimpleQueue -----------------------------------------------------------------------

def test_simple_queue_in_one_process(ctx):
    q = ctx.SimpleQueue()
    assert q.empty()
    for item in (1, 'two', [3], b'4' * 10000):   # all within one pipe buffer
        q.put(item)
    assert not q.empty()
    assert [q.get() for _ in range(4)] == [1, 'two', [3], b'4' * 10000]
    assert q.empty()
    q.close()


def test_simple_queue_across_processes(ctx):
    q = ctx.SimpleQueue()
    out = ctx.SimpleQueue()
    items = list(range(200)) + [b'z' * MiB]
    consumer = start(ctx, tq.consume_simple, q, len(items), out)
    producer = start(ctx, tq.produce, q, items)
    try:
        assert out.get() == items
    finally:
        join_ok(producer, consumer)
        q.close()
        out.close()


def test_simple_queue_close(ctx):
    q = ctx.SimpleQueue()
    q.put('x')
    q.close()
    with pytest.raises((OSError, ValueError)):
        q.get()
    with pytest.raises((OSError, ValueError)):
        q.put('y')
    with pytest.raises((OSError, ValueError)):
        q.empty()


# -- unpicklable items ------------------------------------------------------------------

def _put_may_raise(q, item):
    try:
        q.put(item)
    except Exception:
        return True
    return False


@needs_qsize
def test_unpicklable_item_leaves_the_queue_usable(ctx, capfd):
    q = ctx.Queue()
    _put_may_raise(q, [1, lambda: 0])
    _put_may_raise(q, tq.Unpicklable())
    q.put('after')
    q.put('and more')
    assert q.get(True, DEADLINE) == 'after'
    assert q.get(True, DEADLINE) == 'and more'
    # Python 3 reports the failures from its feeder thread; wait until that
    # settled before checking the count.
    wait_for(lambda: q.qsize() == 0, 'qsize() stayed at %r' % (q.qsize(),))
    assert q.empty()
    finish(q)
    capfd.readouterr()


def test_unpicklable_item_then_items_reach_a_child(ctx, capfd):
    q, out = ctx.Queue(), ctx.Queue()
    consumer = start(ctx, tq.consume, q, 3, out)
    try:
        q.put('one')
        _put_may_raise(q, tq.Unpicklable())
        q.put('two')
        q.put('three')
        assert out.get(True, DEADLINE) == ['one', 'two', 'three']
    finally:
        join_ok(consumer)
        finish(q, out)
        capfd.readouterr()


@pytest.mark.mpspawn_only
def test_put_raises_at_once_naming_the_culprit(ctx):
    q = ctx.Queue()
    with pytest.raises(Exception) as info:
        q.put({'fine': 1, 'bad': [0, lambda: 0]})
    assert "obj['bad'][1]" in str(info.value)
    with pytest.raises(TypeError) as info:
        q.put(tq.Unpicklable())
    assert 'refuses' in str(info.value)
    assert q.qsize() == 0 and q.empty()
    q.put('still fine')
    assert q.get(True, DEADLINE) == 'still fine'
    finish(q)


@pytest.mark.mpspawn_only
def test_unpicklable_item_is_not_counted_by_joinable_queue(ctx):
    q = ctx.JoinableQueue()
    with pytest.raises(TypeError):
        q.put(tq.Unpicklable())
    q.join()                            # nothing pending: returns at once
    finish(q)


@pytest.mark.mpspawn_only
def test_simple_queue_put_raises_for_unpicklable(ctx):
    q = ctx.SimpleQueue()
    with pytest.raises(TypeError):
        q.put(tq.Unpicklable())
    q.put('fine')
    assert q.get() == 'fine'
    q.close()


@pytest.mark.mpspawn_only
def test_item_is_copied_when_put(ctx):
    q = ctx.Queue()
    item = ['as put']
    q.put(item)
    item[0] = 'changed afterwards'
    assert q.get(True, DEADLINE) == ['as put']
    finish(q)


@pytest.mark.mpspawn_only
def test_pipe_full_falls_back_to_the_feeder_in_order(ctx):
    # Far more than the pipe holds, put without a reader: the feeder thread
    # takes over and the order is kept.
    q = ctx.Queue()
    count = 3000
    for i in range(count):
        q.put((i, b'p' * 300))
    assert q._feeder is not None
    got = [q.get(True, DEADLINE)[0] for _ in range(count)]
    assert got == list(range(count))
    finish(q)
