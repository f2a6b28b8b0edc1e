"""The pipes between the judge and the bundle's worker: one end of a connection, and the judge's deadline on reads.

Both ends send and receive wire.py frames (JSON + safetensors, never pickle) through a
`Connection`. The worker's first frame is its handshake, {"op": READY_OP}. The judge reads the
worker's pipe through a `DeadlineReader`, so that no read waits past a call's deadline
(`CallTimeout`) or past the end of the worker's session (`SessionEnded`).
"""

import os
import select
import time


class Connection:
    """One end of a connection: wire.py frames written to `writer`, read from `reader`."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    def send(self, message: dict, value=None) -> None:
        from mini_diffusion._course import wire

        tensors = {}
        if value is not None or "value" in message:
            message = {**message, "value": wire.encode(value, tensors)}
        self.writer.write(wire.pack(message, tensors))
        self.writer.flush()

    def receive(self):
        from mini_diffusion._course import wire

        return wire.unpack(self.reader)


READY_OP = "ready"  # the worker's first frame: it started, and imported torch and the package


class CallTimeout(Exception):
    """The worker did not answer before the call's deadline."""


class SessionEnded(Exception):
    """The worker's control channel spoke while the judge waited on a call: the session's process ended."""


class DeadlineReader:
    """The judge's end of the pipe from the worker: every read waits at most until `deadline`."""

    def __init__(self, stream):
        self.stream, self.fd, self.deadline = stream, stream.fileno(), None
        self.watch = None  # the control channel: when it speaks first, the session has ended

    def read(self, n: int) -> bytes:
        if self.deadline is not None or self.watch is not None:
            remaining = None if self.deadline is None else self.deadline - time.monotonic()
            watched = [self.fd] + ([self.watch] if self.watch is not None else [])
            ready = (remaining is None or remaining > 0) and select.select(watched, [], [], remaining)[0]
            if not ready:
                raise CallTimeout()
            if self.fd not in ready:
                raise SessionEnded()
        return os.read(self.fd, min(n, 1 << 20))

    def drain(self) -> None:
        """Drop what is waiting to be read (the words of a session's processes, all dead by now)."""
        while select.select([self.fd], [], [], 0)[0]:
            if not os.read(self.fd, 1 << 16):
                break

    def close(self) -> None:
        self.stream.close()
