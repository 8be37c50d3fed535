"""Child targets for the shared-memory tests."""
import mpspawn
from mpspawn import shared_memory


def write_into_block(name, data, conn):
    block = shared_memory.SharedMemory(name)
    block.buf[:len(data)] = data
    conn.send(block.size)
    block.close()
    conn.close()


def read_block_object(block, length, conn):
    conn.send(block.buf[:length].tobytes())
    block.close()
    conn.close()


def update_list(name, conn):
    items = shared_memory.ShareableList(name=name)
    items[0] = items[0] + 1
    items[1] = u'changed'
    conn.send(list(items))
    items.shm.close()
    conn.close()


def create_and_forget(name, conn):
    """Create a block and exit without unlinking it."""
    block = shared_memory.SharedMemory(name, create=True, size=4096)
    block.buf[:2] = b'hi'
    conn.send('created')
    conn.close()
