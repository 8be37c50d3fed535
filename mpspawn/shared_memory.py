"""Named POSIX shared memory for 2.7: SharedMemory and ShareableList with the
API of Python 3.8 (and ``track=`` of 3.13).

A block is a ``shm_open`` object (through ctypes; 2.7 has no _posixshmem)
mapped with ``mmap``.  ``buf`` is a writable memoryview of the mapping; on
2.7 memoryviews index to 1-byte strings, so use ``buf[a:b].tobytes()`` rather
than ``bytes(buf[a:b])``.  The mapping lives as long as any view of it: on
2.7 a mapping cannot refuse to close while views exist, so ``close()`` drops
this object's references and the memory is unmapped when the last view goes.
Blocks created (or attached) with ``track=True`` are registered with the
resource tracker, which unlinks them if every process forgets to.
"""
import errno
import os
import struct

from . import _compat

__all__ = ['SharedMemory', 'ShareableList']

# Not Python 3's '/psm_': a 2.7 and a Python 3 program on one machine can
# tell their blocks apart in /dev/shm.
_NAME_PREFIX = '/mpsm_'
# Short enough for macOS (31 characters, leading slash included).
_NAME_LENGTH = 14


def _random_name():
    import binascii
    nbytes = (_NAME_LENGTH - len(_NAME_PREFIX)) // 2
    return _NAME_PREFIX + _compat.native_ascii(binascii.hexlify(os.urandom(nbytes)))


class SharedMemory(object):
    """A block of shared memory named ``name``; ``create=True`` makes a new
    one of ``size`` bytes (a random name if ``name`` is None)."""

    _fd = -1
    _mmap = None
    _buf = None

    def __init__(self, name=None, create=False, size=0, **kwds):
        track = kwds.pop('track', True)
        if kwds:
            raise TypeError('SharedMemory() got an unexpected keyword argument %r'
                            % sorted(kwds)[0])
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
        if name is None and not create:
            raise ValueError("'name' can only be None if create=True")
        self._track = track
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        if name is None:
            while True:
                candidate = _random_name()
                try:
                    self._fd = _compat.shm_open(candidate, flags)
                except OSError as exc:
                    if exc.errno == errno.EEXIST:
                        continue
                    raise
                self._name = candidate
                break
        else:
            self._name = name if name.startswith('/') else '/' + name
            self._fd = _compat.shm_open(self._name, flags)
        try:
            if create:
                os.ftruncate(self._fd, size)
                _ensure_backed(self._fd, size)
            size = os.fstat(self._fd).st_size
            if size == 0:
                raise ValueError('cannot map an empty shared memory block %r' % self.name)
            self._mmap = _compat.map_shared_file(self._fd, size)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            if create:
                _compat.shm_unlink(self._name)
            raise
        self._size = size
        self._buf = _compat.writable_view(self._mmap, size)
        if track:
            from . import resource_tracker
            resource_tracker.register(self._name, 'shared_memory')

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __reduce__(self):
        return (self.__class__, (self.name, False, self.size))

    def __repr__(self):
        return '%s(%r, size=%d)' % (type(self).__name__, self.name, self.size)

    @property
    def buf(self):
        """A writable memoryview of the block."""
        return self._buf

    @property
    def name(self):
        """The name to attach by (without the leading slash, as Python 3)."""
        return self._name[1:] if self._name.startswith('/') else self._name

    @property
    def size(self):
        return self._size

    def close(self):
        """Release this object's access to the block (others keep theirs)."""
        self._buf = None
        self._mmap = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def unlink(self):
        """Remove the block's name; the memory goes when every process has
        closed it.  Call once, from one process."""
        _compat.shm_unlink(self._name)
        if self._track:
            from . import resource_tracker
            resource_tracker.unregister(self._name, 'shared_memory')


def _ensure_backed(fd, size):
    """Fail now, not with SIGBUS later, if tmpfs cannot hold ``size`` bytes."""
    try:
        stats = os.fstatvfs(fd)
    except (OSError, AttributeError):
        return
    free = stats.f_bavail * stats.f_frsize
    if stats.f_blocks and size > free:
        raise OSError(errno.ENOSPC, 'not enough shared memory for %d bytes '
                      '(%d bytes free in /dev/shm)' % (size, free))


# -- ShareableList ---------------------------------------------------------------
#
# Layout (native byte order):
#   header    q                     number of items
#   table     per item: c x7 q q    type code, capacity, length in bytes
#   data      per item: capacity bytes (8 for numbers, 8-byte multiples for
#             text and bytes; capacity is fixed when the list is created)

_HEADER = struct.Struct('=q')
_ENTRY = struct.Struct('=c7xqq')
_ALIGN = 8

_INT, _FLOAT, _BOOL, _NONE, _BYTES, _TEXT = b'q', b'd', b'?', b'n', b'b', b't'
_NUMBER_FORMATS = {_INT: '=q', _FLOAT: '=d', _BOOL: '=?'}


def _encode(value):
    """(type code, payload bytes) of a storable value."""
    if value is None:
        return _NONE, b''
    if isinstance(value, bool):
        return _BOOL, struct.pack('=?', value)
    if isinstance(value, _compat.integer_types):
        return _INT, struct.pack('=q', value)
    if isinstance(value, float):
        return _FLOAT, struct.pack('=d', value)
    if isinstance(value, _compat.text_type):
        return _TEXT, value.encode('utf-8')
    if isinstance(value, bytes):
        return _BYTES, value
    raise TypeError('ShareableList holds int, float, bool, str, bytes and None, '
                    'not %s' % type(value).__name__)


def _decode(code, payload):
    if code == _NONE:
        return None
    if code in _NUMBER_FORMATS:
        return struct.unpack(_NUMBER_FORMATS[code], payload)[0]
    if code == _TEXT:
        return payload.decode('utf-8')
    return payload


def _capacity_for(code, payload):
    if code in (_TEXT, _BYTES):
        return max(_ALIGN, -(-len(payload) // _ALIGN) * _ALIGN)
    return _ALIGN


class ShareableList(object):
    """A fixed-length list of int, float, bool, str, bytes and None stored in
    shared memory; ``ShareableList(name=...)`` attaches to an existing one."""

    def __init__(self, sequence=None, **kwds):
        name = kwds.pop('name', None)
        if kwds:
            raise TypeError('ShareableList() got an unexpected keyword argument %r'
                            % sorted(kwds)[0])
        if name is None or sequence is not None:
            encoded = [_encode(value) for value in (sequence or ())]
            capacities = [_capacity_for(code, payload) for code, payload in encoded]
            size = _HEADER.size + _ENTRY.size * len(encoded) + sum(capacities)
            self.shm = SharedMemory(name, create=True, size=max(size, 1))
            mem = self.shm.buf
            _HEADER.pack_into(mem, 0, len(encoded))
            self._count = len(encoded)
            self._offsets = self._data_offsets(capacities)
            for i, ((code, payload), capacity) in enumerate(zip(encoded, capacities)):
                self._store(i, code, payload, capacity)
        else:
            self.shm = SharedMemory(name)
            self._count = _HEADER.unpack_from(self.shm.buf, 0)[0]
            capacities = [self._entry(i)[1] for i in range(self._count)]
            self._offsets = self._data_offsets(capacities)

    def _data_offsets(self, capacities):
        offset = _HEADER.size + _ENTRY.size * len(capacities)
        offsets = []
        for capacity in capacities:
            offsets.append(offset)
            offset += capacity
        return offsets

    def _entry(self, i):
        return _ENTRY.unpack_from(self.shm.buf, _HEADER.size + _ENTRY.size * i)

    def _store(self, i, code, payload, capacity):
        mem = self.shm.buf
        _ENTRY.pack_into(mem, _HEADER.size + _ENTRY.size * i, code, capacity, len(payload))
        start = self._offsets[i]
        mem[start:start + len(payload)] = payload

    def _index(self, position):
        if not isinstance(position, _compat.integer_types):
            raise TypeError('list indices must be integers')
        if position < 0:
            position += self._count
        if not 0 <= position < self._count:
            raise IndexError('index out of range')
        return position

    def __getitem__(self, position):
        i = self._index(position)
        code, capacity, length = self._entry(i)
        start = self._offsets[i]
        return _decode(code, self.shm.buf[start:start + length].tobytes())

    def __setitem__(self, position, value):
        try:
            i = self._index(position)
        except IndexError:
            raise IndexError('assignment index out of range')
        code, payload = _encode(value)
        capacity = self._entry(i)[1]
        if len(payload) > capacity:
            raise ValueError('bytes/str item exceeds available storage')
        self._store(i, code, payload, capacity)

    def __len__(self):
        return self._count

    def __iter__(self):
        for i in range(self._count):
            yield self[i]

    def __reduce__(self):
        return (_attach_shareable_list, (type(self), self.shm.name))

    def __repr__(self):
        return '%s(%r, name=%r)' % (type(self).__name__, list(self), self.shm.name)

    @property
    def format(self):
        """The struct format the items are stored with."""
        parts = []
        for i in range(self._count):
            code, capacity, _ = self._entry(i)
            if code in (_TEXT, _BYTES):
                parts.append('%ds' % capacity)
            elif code == _NONE:
                parts.append('x')
            else:
                parts.append(code.decode('ascii'))
        return ''.join(parts)

    def count(self, value):
        """How many items equal ``value``."""
        return sum(1 for item in self if item == value)

    def index(self, value):
        """The position of the first item equal to ``value``."""
        for i, item in enumerate(self):
            if item == value:
                return i
        raise ValueError('%r not in this container' % (value,))


def _attach_shareable_list(cls, name):
    return cls(name=name)
