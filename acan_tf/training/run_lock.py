"""One trainer per run directory: an exclusive `flock` on a lock file inside it, held for the trainer's whole life.

The kernel releases the lock when its holder's process ends, however it ends (SIGKILL, a crash, a lost node),
so a lock never goes stale; the file itself may stay behind and only records who held it last. A trainer that
finds the lock taken fails at once and writes nothing. The holder must never delete or replace the lock file
while it holds it (e.g. with --overwrite, clear the folder around it): a new file at that path would be a new
lock, free for the next process to take.

flock locks an open file, not a process, so a second RunLock in the same process is refused too. On NFS,
Linux maps flock onto POSIX record locks, which the server coordinates across hosts; on file systems
without lock support acquiring raises OSError.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import fcntl
import json
import os
import socket
from types import TracebackType

from acan_tf.errors import UserError


class RunLockedError(UserError, RuntimeError):
    """Another trainer holds the run directory; the message names the folder and the holder."""


@dataclasses.dataclass(frozen=True)
class Holder:
    """The process recorded in a lock file: its pid, host and start time (ISO 8601, UTC)."""

    pid: int
    host: str
    started: str

    def describe(self) -> str:
        """The holder in a few words, for messages."""
        return f"pid {self.pid} on {self.host}, since {self.started}"


def read_holder(lock_path: str) -> Holder | None:
    """The process recorded in `lock_path`: the holder while the lock is held; None if no holder is recorded."""
    try:
        with open(lock_path, encoding="utf-8") as handle:
            document = json.load(handle)
        return Holder(int(document["pid"]), str(document["host"]), str(document["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        # Absent, emptied by a clean release, or caught between the holder's truncate and write.
        return None


class RunLock:
    """An exclusive lock on the run directory holding `lock_path`; a context manager, or acquire() and release()."""

    def __init__(self, lock_path: str):
        self.lock_path = lock_path
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._descriptor is not None

    def acquire(self) -> RunLock:
        """Takes the lock and records this process in the file; raises RunLockedError at once if it is taken."""
        if self.held:
            raise RuntimeError(f"{self.lock_path} is already locked by this RunLock")
        # No O_TRUNC: a refused process must leave the holder's record as it is. Python opens descriptors
        # non-inheritable, so a subprocess of the trainer never keeps the lock alive after the trainer ends.
        descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            holder = read_holder(self.lock_path)
            who = holder.describe() if holder else "a process that has not recorded itself yet"
            raise RunLockedError(
                f"{os.path.dirname(os.path.abspath(self.lock_path))} is in use by another trainer ({who}); "
                f"wait for it to end or stop it, or choose another --output_dir"
            ) from None
        self._descriptor = descriptor
        started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}) + "\n"
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record.encode("utf-8"), 0)
        return self

    def release(self) -> None:
        """Empties the record and releases the lock (the kernel would release it anyway when the process ends)."""
        if self._descriptor is None:
            return
        descriptor, self._descriptor = self._descriptor, None
        try:
            os.ftruncate(descriptor, 0)  # while still locked: no later holder's record is erased
        finally:
            os.close(descriptor)  # closing the only descriptor of the open file releases its flock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()
