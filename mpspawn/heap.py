"""Shared memory for processes: blocks carved out of memory-mapped arenas.

``BufferWrapper(size)`` reserves ``size`` bytes that every process holding
the wrapper sees: forked children by inheritance, spawned children because
the wrapper pickles (only while a child is being started, or through the
resource sharer) as its arena's descriptor plus the block's place in it.
Barrier keeps its state here, and sharedctypes builds its objects here.

Arenas are files, as in Python 3 on POSIX, so that a spawned child can map
them: created in /dev/shm when it has room for the arena (else in the
private temp directory; the environment variable ``MPSPAWN_HEAP_DIR``
chooses the directory instead), unlinked at once, close-on-exec, and their
storage is reserved at creation (posix_fallocate, or written zeros).  A file
system too small for the arena therefore fails *here*, with
``HeapSpaceError`` (both an OSError with errno ENOSPC and a MemoryError),
never later with a SIGBUS when a page is first touched, which is what
Python 3 does on a small /dev/shm.  The price: an arena's pages are
committed when it is created, not on first touch.

Accessing a block:

* ``create_memoryview()`` as in Python 3.  On 2.7 (whose memoryview cannot
  wrap an mmap) it is a memoryview of a ctypes ``c_ubyte`` array laid over
  the block: writable, sliceable, ``tobytes()``; no ``cast()`` on 2.7.
* ``buffer_region()`` -> ``(mmap, offset, size)``: the arena's mmap object
  and where the block starts in it.  This is what 2.7 code needs:
  ``ctype.from_buffer(mmap, offset)`` builds a ctypes object over the block
  (and keeps the mmap alive), ``struct.pack_into(fmt, mmap, offset, ...)``
  writes into it.
"""
import bisect
import errno
import mmap
import os
import sys

from . import context, util, _compat

__all__ = ['Arena', 'Heap', 'BufferWrapper', 'HeapSpaceError']

HEAP_DIR_ENV = 'MPSPAWN_HEAP_DIR'
_SHM_DIR = '/dev/shm'


class HeapSpaceError(OSError, MemoryError):
    """No file system we may use has room for a new arena."""


def _free_bytes(directory):
    try:
        st = os.statvfs(directory)
    except (OSError, AttributeError):
        return 0
    return st.f_bavail * st.f_frsize


def _arena_directories(size):
    """Where to try to create an arena of ``size`` bytes, best first."""
    chosen = os.environ.get(HEAP_DIR_ENV)
    if chosen:
        return [chosen]
    candidates = []
    if os.path.isdir(_SHM_DIR) and _free_bytes(_SHM_DIR) >= size:
        candidates.append(_SHM_DIR)     # memory, not disk
    candidates.append(util.get_temp_dir())
    return candidates


def _random_suffix():
    return ''.join('%02x' % b for b in bytearray(os.urandom(8)))


def _open_unlinked_file(directory):
    """A new, already unlinked, close-on-exec file in ``directory``."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | _compat.O_CLOEXEC
    for _ in range(100):
        path = os.path.join(directory, 'mps-heap-%d-%s' % (os.getpid(), _random_suffix()))
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue
            raise
        try:
            os.unlink(path)
            _compat.set_cloexec(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise OSError(errno.EEXIST, 'cannot find a free name for a heap arena in %s' % directory)


def _create_arena_file(size):
    """A descriptor of an unlinked file with ``size`` bytes of reserved storage."""
    tried = []
    for directory in _arena_directories(size):
        try:
            fd = _open_unlinked_file(directory)
        except OSError as exc:
            tried.append('%s (%s)' % (directory, exc.strerror or exc))
            continue
        try:
            _compat.allocate_file(fd, size)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            tried.append('%s (%s)' % (directory, exc.strerror))
            continue
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise HeapSpaceError(
        errno.ENOSPC,
        'no room for a %d-byte shared-memory arena: tried %s; free space there or '
        'set %s to a directory on a file system with room'
        % (size, ', '.join(tried), HEAP_DIR_ENV))


class Arena(object):
    """A memory-mapped file from which Heap hands out blocks."""

    def __init__(self, size, fd=-1):
        self.size = size
        if fd == -1:
            fd = _create_arena_file(size)
        self.fd = fd
        try:
            self.buffer = _compat.map_shared_file(fd, size)
        except BaseException:
            os.close(fd)
            raise
        util.Finalize(self, os.close, (fd,))

    def __reduce__(self):
        from . import reduction
        return rebuild_arena, (self.size, reduction.DupFd(self.fd))

    def __repr__(self):
        return '<%s size=%d fd=%d>' % (type(self).__name__, self.size, self.fd)


def rebuild_arena(size, dupfd):
    return Arena(size, dupfd.detach())


class Heap(object):
    """Best-fit allocator over arenas, merging neighbouring free blocks.

    A block is ``(arena, start, stop)``.  Free blocks are indexed by size
    (a sorted list of ``(length, arena serial, start)``) and by both ends,
    so allocation is a bisection and freeing merges in constant time.  A
    freed block is returned at once unless the heap is busy (a finalizer
    run by the garbage collector inside malloc): then it waits for the next
    call.  A forked child starts with an empty heap of its own.
    """

    _alignment = 8
    _DISCARD_FREE_SPACE_LARGER_THAN = 4 * 1024 ** 2
    _DOUBLE_ARENA_SIZE_UNTIL = 4 * 1024 ** 2

    def __init__(self, size=mmap.PAGESIZE):
        self._lastpid = os.getpid()
        self._lock = _compat.allocate_lock()
        self._size = size               # the size of the next arena
        self._arenas = []
        self._serial_of = {}            # arena -> serial number
        self._arena_of = {}             # serial number -> arena
        self._next_serial = 0
        self._by_length = []            # sorted (length, serial, start) of free blocks
        self._free_from = {}            # (serial, start) -> stop of a free block
        self._free_until = {}           # (serial, stop) -> start of a free block
        self._allocated = {}            # serial -> set of (start, stop)
        self._pending_free = []
        self._n_mallocs = 0
        self._n_frees = 0

    @staticmethod
    def _roundup(n, alignment):
        mask = alignment - 1
        return (n + mask) & ~mask

    # -- free blocks -----------------------------------------------------------------

    def _insert_free(self, serial, start, stop):
        bisect.insort(self._by_length, (stop - start, serial, start))
        self._free_from[(serial, start)] = stop
        self._free_until[(serial, stop)] = start

    def _remove_free(self, serial, start, stop):
        key = (stop - start, serial, start)
        index = bisect.bisect_left(self._by_length, key)
        del self._by_length[index]
        del self._free_from[(serial, start)]
        del self._free_until[(serial, stop)]

    def _add_free_block(self, serial, start, stop):
        before = self._free_until.get((serial, start))
        if before is not None:
            self._remove_free(serial, before, start)
            start = before
        after = self._free_from.get((serial, stop))
        if after is not None:
            self._remove_free(serial, stop, after)
            stop = after
        self._insert_free(serial, start, stop)
        return start, stop

    # -- arenas ----------------------------------------------------------------------

    def _new_arena(self, size):
        length = self._roundup(max(self._size, size), mmap.PAGESIZE)
        if self._size < self._DOUBLE_ARENA_SIZE_UNTIL:
            self._size *= 2
        util.info('allocating a new mmap of length %d', length)
        arena = Arena(length)
        serial = self._next_serial
        self._next_serial += 1
        self._arenas.append(arena)
        self._serial_of[arena] = serial
        self._arena_of[serial] = arena
        self._allocated[serial] = set()
        self._insert_free(serial, 0, length)

    def _discard_arena_if_idle(self, serial, start, stop):
        """Give a large arena back to the system once nothing uses it
        (small ones are kept for the next allocations, as in Python 3)."""
        arena = self._arena_of[serial]
        if self._allocated[serial] or start != 0 or stop != arena.size:
            return
        if arena.size < self._DISCARD_FREE_SPACE_LARGER_THAN:
            return
        self._remove_free(serial, 0, arena.size)
        del self._allocated[serial]
        del self._arena_of[serial]
        del self._serial_of[arena]
        self._arenas.remove(arena)

    # -- allocation ------------------------------------------------------------------

    def _take_best_fit(self, size):
        index = bisect.bisect_left(self._by_length, (size,))
        if index == len(self._by_length):
            self._new_arena(size)
            index = bisect.bisect_left(self._by_length, (size,))
        length, serial, start = self._by_length[index]
        self._remove_free(serial, start, start + length)
        return serial, start, start + length

    def _release(self, block):
        arena, start, stop = block
        serial = self._serial_of.get(arena)
        if serial is None or (start, stop) not in self._allocated[serial]:
            raise ValueError('block %r is not allocated from this heap' % (block,))
        self._allocated[serial].remove((start, stop))
        self._n_frees += 1
        merged_start, merged_stop = self._add_free_block(serial, start, stop)
        self._discard_arena_if_idle(serial, merged_start, merged_stop)

    def _free_pending_blocks(self):
        while self._pending_free:
            self._release(self._pending_free.pop())

    def free(self, block):
        """Return ``block`` (from malloc) to the heap."""
        if os.getpid() != self._lastpid:
            raise ValueError('My pid ({0:n}) is not last pid {1:n}'.format(
                os.getpid(), self._lastpid))
        if not self._lock.acquire(False):
            # Busy (maybe with this very thread, via the garbage collector):
            # the next malloc or free returns it.
            self._pending_free.append(block)
            return
        try:
            self._free_pending_blocks()
            self._release(block)
        finally:
            self._lock.release()

    def malloc(self, size):
        """A block ``(arena, start, stop)`` of at least ``size`` bytes."""
        if size < 0:
            raise ValueError('Size {0:n} out of range'.format(size))
        if sys.maxsize <= size:
            raise OverflowError('Size {0:n} too large'.format(size))
        if os.getpid() != self._lastpid:
            self.__init__()                 # a forked child: start afresh
        with self._lock:
            self._n_mallocs += 1
            self._free_pending_blocks()
            size = self._roundup(max(size, 1), self._alignment)
            serial, start, stop = self._take_best_fit(size)
            if start + size < stop:
                self._add_free_block(serial, start + size, stop)
            self._allocated[serial].add((start, start + size))
            return (self._arena_of[serial], start, start + size)


class BufferWrapper(object):
    """``size`` bytes of shared memory from the process-wide heap, returned
    to it when the wrapper is collected (in the process that made it)."""

    _heap = Heap()

    def __init__(self, size):
        if size < 0:
            raise ValueError('Size {0:n} out of range'.format(size))
        if sys.maxsize <= size:
            raise OverflowError('Size {0:n} too large'.format(size))
        block = BufferWrapper._heap.malloc(size)
        self._state = (block, size)
        util.Finalize(self, BufferWrapper._heap.free, args=(block,))

    def create_memoryview(self):
        """A writable memoryview of the block."""
        (arena, start, stop), size = self._state
        return _compat.writable_view(arena.buffer, size, start)

    def buffer_region(self):
        """``(mmap, offset, size)``: the arena's mmap and the block's place in it."""
        (arena, start, stop), size = self._state
        return arena.buffer, start, size

    def __reduce__(self):
        # While a child is being spawned with it, the block stays allocated
        # for as long as that child's Popen lives.
        context.keep_alive_for_child(self)
        (arena, start, stop), size = self._state
        return _rebuild_buffer_wrapper, (arena, start, stop, size)


def _rebuild_buffer_wrapper(arena, start, stop, size):
    # The block belongs to the process that allocated it: no finalizer here.
    wrapper = BufferWrapper.__new__(BufferWrapper)
    wrapper._state = ((arena, start, stop), size)
    return wrapper
