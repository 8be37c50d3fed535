"""Driver: a Listener with an authkey that accepts connections one after
another until told to stop, whatever its clients send.

Usage: python drive_listener.py ADDRESS_FILE AUTHKEY_HEX

Writes its address to ADDRESS_FILE and prints ``LISTENING``.  For each
connection it prints ``ACCEPTED {outcome, rss_kib}``: the exception
``accept()`` raised (the connection is then closed), or, for a client that
authenticated, what it sent (the server answers ``'ok'``; the message
``'stop'`` ends the loop).
"""
import binascii
import json
import sys

from mpspawn import connection

import robust_support as rs


def main():
    address_file, authkey = sys.argv[1], binascii.unhexlify(sys.argv[2])
    listener = connection.Listener(family='AF_UNIX', authkey=authkey, backlog=16)
    with open(address_file, 'w') as f:
        json.dump(listener.address, f)
    rs.emit('LISTENING', {})
    while True:
        try:
            conn = listener.accept()
        except Exception as exc:
            rs.emit('ACCEPTED', {'outcome': type(exc).__name__, 'rss_kib': rs.rss_kib()})
            continue
        try:
            message = conn.recv()
            conn.send('ok')
        except Exception as exc:
            message = type(exc).__name__
        finally:
            conn.close()
        rs.emit('ACCEPTED', {'outcome': 'authenticated', 'message': repr(message),
                             'rss_kib': rs.rss_kib()})
        if message == 'stop':
            break
    listener.close()


if __name__ == '__main__':
    main()
