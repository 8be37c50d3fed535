"""Child targets for the sharedctypes tests."""
import ctypes


class Point(ctypes.Structure):
    _fields_ = [('x', ctypes.c_double), ('y', ctypes.c_double)]


def increment(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def double_all(array):
    with array.get_lock():
        for i in range(len(array)):
            array[i] = array[i] * 2


def fill_raw(raw_value, raw_array, text):
    raw_value.value = 99
    for i in range(len(raw_array)):
        raw_array[i] = i * i
    text.value = b'child wrote'


def move_point(point):
    point.x += 1.5
    point.y -= 1.5
