"""A TCP proxy a test can cut or stall.

`down()` refuses new connections and drops the open ones (a database restart, seen from the
client). `stall()` stops moving bytes without closing anything — packets stop, nobody hears a
reset, as in a partition or a hung middlebox — until `resume()` delivers what was held back.
`stall_after(pattern)` stalls the moment a client sends bytes holding `pattern` (those bytes still
reach the server: it acts on them, and its answer is what stalls).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Proxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()
        self._trigger: bytes | None = None
        self.stalled_at: float | None = None
        """time.monotonic() when the last stall began."""
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and drop the open ones (a database restart, seen from the client)."""
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()
        self._flowing.set()

    def stall(self) -> None:
        """From now on no byte moves either way on any connection, open or new; nothing is closed."""
        with self._lock:
            self._trigger = None
            if self._flowing.is_set():
                self.stalled_at = time.monotonic()
            self._flowing.clear()

    def stall_after(self, pattern: bytes) -> None:
        """Stall (as `stall`) once a client sends bytes holding `pattern`; they are delivered first."""
        with self._lock:
            self._trigger = pattern

    @property
    def stalled(self) -> bool:
        return not self._flowing.is_set()

    def resume(self) -> None:
        """Let bytes move again; what was held back is delivered."""
        with self._lock:
            self._trigger = None
        self._flowing.set()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # went down while this one was being accepted
                    client.close()
                    upstream.close()
                    return
                self._open += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                trigger = self._trigger
                if from_client and trigger is not None and trigger in data:
                    self.stall()  # before the bytes go: the server's answer to them is held
                else:
                    # held here, nothing more is read: the sender's buffers fill as on a dead path
                    self._flowing.wait()
                sink.sendall(data)
        self._flowing.wait()
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
