"""A TCP relay in front of redis-server that shows a test each command a client sends before
Redis receives it.

A test uses it to act at an exact point between two of a service's Redis calls (change what
the next call reads), by the commands themselves rather than by timing. The hook runs in the
thread of the connection that sent the command, which waits for it; other connections go on
meanwhile, so the hook may ask the service for something else. Commands are RESP arrays of
bulk strings (what redis-py sends); replies pass through untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO

Command = list[bytes]
Hook = Callable[[Command], None]


def read_command(stream: BinaryIO) -> tuple[Command, bytes] | None:
    """The next command and its bytes as sent; None when the client closed the connection."""
    header = stream.readline()
    if not header:
        return None
    if not header.startswith(b"*"):
        raise ValueError(f"not a RESP array: {header!r}")
    parts: Command = []
    raw = [header]
    for _ in range(int(header[1:])):
        size_line = stream.readline()
        if not size_line.startswith(b"$"):
            raise ValueError(f"not a RESP bulk string: {size_line!r}")
        body = stream.read(int(size_line[1:]) + 2)  # with its CRLF
        parts.append(body[:-2])
        raw += [size_line, body]
    return parts, b"".join(raw)


class Interposer:
    """Listens on `port`, relaying to the redis-server on `upstream_port`; `hook` sees each
    command first. A hook that raises is recorded in `errors` and the command still goes."""

    def __init__(self, upstream_port: int) -> None:
        self.hook: Hook = lambda command: None
        self.errors: list[BaseException] = []
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _shut(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._commands, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()

    def _commands(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            with client.makefile("rb") as stream:
                while (read := read_command(stream)) is not None:
                    command, raw = read
                    try:
                        self.hook(command)
                    except BaseException as exc:  # the test reads it from `errors`
                        self.errors.append(exc)
                    upstream.sendall(raw)
        except OSError:
            pass
        except ValueError as exc:
            self.errors.append(exc)
        finally:
            _shut(client)
            _shut(upstream)

    @staticmethod
    def _replies(upstream: socket.socket, client: socket.socket) -> None:
        try:
            while data := upstream.recv(65536):
                client.sendall(data)
        except OSError:
            pass
        finally:
            _shut(client)
            _shut(upstream)


def _shut(sock: socket.socket) -> None:
    """Close `sock`, waking a thread blocked reading it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
