"""ctypes objects in shared memory: RawValue, RawArray, Value, Array,
synchronized() and copy().

Each object is laid over a block of the shared heap (mpspawn.heap), whose
arenas are files, so spawned children map the same memory when the object
is passed to them.  Value and Array wrap the raw object with a lock (an
RLock of the given context by default).
"""
import ctypes
import weakref

from . import context, heap
from ._compat import integer_types, string_types
from .reduction import ForkingPickler

__all__ = ['RawValue', 'RawArray', 'Value', 'Array', 'copy', 'synchronized']

typecode_to_type = {
    'c': ctypes.c_char, 'u': ctypes.c_wchar,
    'b': ctypes.c_byte, 'B': ctypes.c_ubyte,
    'h': ctypes.c_short, 'H': ctypes.c_ushort,
    'i': ctypes.c_int, 'I': ctypes.c_uint,
    'l': ctypes.c_long, 'L': ctypes.c_ulong,
    'q': ctypes.c_longlong, 'Q': ctypes.c_ulonglong,
    'f': ctypes.c_float, 'd': ctypes.c_double,
}


def _ctype_of(typecode_or_type):
    if isinstance(typecode_or_type, string_types):
        try:
            return typecode_to_type[typecode_or_type]
        except KeyError:
            raise TypeError('bad typecode (must be one of %s or a ctypes type), '
                            'not %r' % (''.join(sorted(typecode_to_type)), typecode_or_type))
    if isinstance(typecode_or_type, type) and issubclass(
            typecode_or_type, (ctypes._SimpleCData, ctypes.Structure, ctypes.Union,
                               ctypes.Array)):
        return typecode_or_type
    raise TypeError('expected a typecode string or a ctypes type, not %r'
                    % (typecode_or_type,))


def _new_value(type_):
    wrapper = heap.BufferWrapper(ctypes.sizeof(type_))
    return rebuild_ctype(type_, wrapper, None)


def RawValue(typecode_or_type, *args):
    """A ctypes object in shared memory, without a lock."""
    type_ = _ctype_of(typecode_or_type)
    obj = _new_value(type_)
    ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type, size_or_initializer):
    """A ctypes array in shared memory, without a lock: ``size`` zeroed items,
    or a copy of an initializer sequence."""
    type_ = _ctype_of(typecode_or_type)
    if isinstance(size_or_initializer, integer_types):
        if size_or_initializer < 0:
            raise ValueError('array size must be >= 0, not %d' % size_or_initializer)
        type_ = type_ * size_or_initializer
        obj = _new_value(type_)
        ctypes.memset(ctypes.addressof(obj), 0, ctypes.sizeof(obj))
        return obj
    initializer = size_or_initializer
    type_ = type_ * len(initializer)
    result = _new_value(type_)
    result.__init__(*initializer)
    return result


def _lock_for(lock, ctx):
    if lock is True:
        ctx = ctx or context._default_context.get_context()
        return ctx.RLock()
    if not hasattr(lock, 'acquire'):
        raise AttributeError("%r has no method 'acquire'" % (lock,))
    return lock


def Value(typecode_or_type, *args, **kwds):
    """A synchronized shared ctypes object (``lock=False`` for a raw one,
    ``lock=`` a lock of your own to share one)."""
    lock = kwds.pop('lock', True)
    ctx = kwds.pop('ctx', None)
    if kwds:
        raise TypeError('Value() got an unexpected keyword argument %r' % sorted(kwds)[0])
    obj = RawValue(typecode_or_type, *args)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(lock, ctx), ctx=ctx)


def Array(typecode_or_type, size_or_initializer, **kwds):
    """A synchronized shared ctypes array (``lock=False`` for a raw one)."""
    lock = kwds.pop('lock', True)
    ctx = kwds.pop('ctx', None)
    if kwds:
        raise TypeError('Array() got an unexpected keyword argument %r' % sorted(kwds)[0])
    obj = RawArray(typecode_or_type, size_or_initializer)
    if lock is False:
        return obj
    return synchronized(obj, _lock_for(lock, ctx), ctx=ctx)


def copy(obj):
    """A new shared object with the same type and contents as ``obj``."""
    new_obj = _new_value(type(obj))
    ctypes.pointer(new_obj)[0] = obj
    return new_obj


def synchronized(obj, lock=None, ctx=None):
    """Wrap the shared ctypes object ``obj`` with a lock."""
    assert not isinstance(obj, SynchronizedBase), 'object already synchronized'
    ctx = ctx or context._default_context.get_context()
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    if isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    cls = type(obj)
    try:
        wrapper_class = _struct_wrappers[cls]
    except KeyError:
        names = [field[0] for field in cls._fields_]
        namespace = dict((name, _locked_property(name)) for name in names)
        wrapper_class = type('Synchronized' + cls.__name__, (Synchronized,), namespace)
        _struct_wrappers[cls] = wrapper_class
    return wrapper_class(obj, lock, ctx)


_struct_wrappers = weakref.WeakKeyDictionary()


# -- pickling: only for a child being started ----------------------------------

def reduce_ctype(obj):
    context.assert_spawning(obj)
    if isinstance(obj, ctypes.Array):
        return rebuild_ctype, (obj._type_, obj._wrapper, obj._length_)
    return rebuild_ctype, (type(obj), obj._wrapper, None)


def rebuild_ctype(type_, wrapper, length):
    if length is not None:
        type_ = type_ * length
    ForkingPickler.register(type_, reduce_ctype)
    mapping, offset, size = wrapper.buffer_region()
    obj = type_.from_buffer(mapping, offset)
    obj._wrapper = wrapper
    return obj


# -- the synchronized wrappers ------------------------------------------------------

def _locked_property(name):
    # acquire/release are the C semaphore's own methods; a with-statement
    # would add two Python-level calls (__enter__/__exit__) per access.
    def getter(self):
        self.acquire()
        try:
            return getattr(self._obj, name)
        finally:
            self.release()

    def setter(self, value):
        self.acquire()
        try:
            setattr(self._obj, name, value)
        finally:
            self.release()
    return property(getter, setter)


class SynchronizedBase(object):

    def __init__(self, obj, lock=None, ctx=None):
        self._obj = obj
        if lock:
            self._lock = lock
        else:
            ctx = ctx or context._default_context.get_context()
            self._lock = ctx.RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        context.assert_spawning(self)
        return synchronized, (self._obj, self._lock)

    def get_obj(self):
        """The raw shared ctypes object."""
        return self._obj

    def get_lock(self):
        """The lock that guards the object."""
        return self._lock

    def __repr__(self):
        return '<%s wrapper for %s>' % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):
    value = _locked_property('value')


class SynchronizedArray(SynchronizedBase):

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        self.acquire()
        try:
            return self._obj[i]
        finally:
            self.release()

    def __setitem__(self, i, value):
        self.acquire()
        try:
            self._obj[i] = value
        finally:
            self.release()

    def __getslice__(self, start, stop):
        self.acquire()
        try:
            return self._obj[start:stop]
        finally:
            self.release()

    def __setslice__(self, start, stop, values):
        self.acquire()
        try:
            self._obj[start:stop] = values
        finally:
            self.release()


class SynchronizedString(SynchronizedArray):
    value = _locked_property('value')
    raw = _locked_property('raw')
