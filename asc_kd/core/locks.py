"""Folder locks: one process builds a folder that several processes ask for at once.

Two fits started together on one cache folder would each decode and resample the whole
dataset, and the jobs of a SLURM stage, which all start at the same moment, would each generate
the demo's synthetic scenes. Those builds are atomic (a temporary folder renamed when complete),
so nothing breaks, but the work is done once per process. ``folder_lock(folder)`` lets the first
process build while the others wait; they then use what it built.

The lock is the file ``<folder>.lock`` beside the folder, held with ``flock``. The kernel
releases it when its holder exits, however it exits (SIGKILL, the OOM killer), so a lock file
that a dead process left behind is simply taken over. Over NFS, Linux maps ``flock`` onto the
server's locks, so processes on other nodes are excluded too. The file records its owner (pid,
host, purpose, start time) for the waiting processes' messages (``read_owner``). The holder
deletes it on release. Where the filesystem refuses locks, the folder is built unlocked, with
a warning: the builds are atomic, so the cost is work done twice, not a wrong result.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from asc_kd.core.errors import UserError

log = logging.getLogger(__name__)
#: How long a process waits for another one's build by default: far longer than building the
#: audio cache of TAU22 (230,350 clips) takes, short enough that a hung holder ends the job.
DEFAULT_TIMEOUT = 2 * 3600.0
#: ``flock`` errors that mean "this filesystem has no locks", not "the lock is taken".
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


@dataclass(frozen=True)
class LockOwner:
    """The process a lock file names: its ``pid`` on ``host``, what it locked the folder for, and
    since when (``since``, seconds since the epoch)."""

    pid: int
    host: str
    purpose: str = ""
    since: float = 0.0

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


class FolderLockedError(UserError):
    """Another process holds a folder's lock: ``folder_lock(..., blocking=False)`` found it taken."""

    def __init__(self, message: str, lock: Path | None = None, owner: LockOwner | None = None) -> None:
        super().__init__(message)
        self.lock = lock
        self.owner = owner


class LockTimeoutError(FolderLockedError):
    """Waiting for a folder's lock took longer than its ``timeout``."""


def lock_path(folder: str | Path) -> Path:
    """The lock file of ``folder``: ``<folder>.lock``, beside it."""
    folder = Path(folder).absolute()
    return folder.with_name(f"{folder.name}.lock")


def read_owner(lock: str | Path) -> LockOwner | None:
    """The owner a lock file records, or None: no such file, or one its owner is still writing."""
    try:
        record = json.loads(Path(lock).read_text())
        return LockOwner(
            int(record["pid"]), str(record["host"]), str(record["purpose"]), float(record["since"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _acquire(lock: Path) -> int | None:
    """A descriptor of ``lock`` holding its ``flock``, or None when another process holds it."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's lock file: a lock needs no write access
            fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        # The holder before this one deleted the file on release (or another took over a new
        # one since this one opened it): a lock on a file no longer at ``lock`` locks nothing.
        try:
            current = os.stat(lock)
        except FileNotFoundError:
            current = None
        opened = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino):
            return fd
        os.close(fd)


def _record(fd: int, purpose: str) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose, "since": time.time()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
    except OSError:  # a lock file opened read-only: the lock holds, its owner goes unnamed
        pass


def _owner_text(owner: LockOwner | None) -> str:
    return str(owner) if owner is not None else "another process"


@contextmanager
def folder_lock(
    folder: str | Path,
    purpose: str = "the folder",
    timeout: float | None = DEFAULT_TIMEOUT,
    *,
    action: str = "built",
    blocking: bool = True,
    poll: float = 0.5,
) -> Iterator[Path]:
    """Hold ``folder``'s lock file (``lock_path``) for the block; yields the lock file's path.

    While another process holds it, wait, saying so once in the log ("waiting for the cache
    being built by pid N on HOST"), and raise ``LockTimeoutError`` naming the lock file after
    ``timeout`` seconds (None: wait for good). With ``blocking=False`` raise
    ``FolderLockedError`` naming the holder at once instead. The caller checks again, inside
    the block, whether the folder is already there: the process it waited for has built it.

    Args:
        folder: the folder built under the lock (it need not exist; its parent must).
        purpose: what the folder is, for messages ("the cache", "the synthetic scenes").
        timeout: seconds to wait for another holder.
        action: what the holder does to it, for messages ("built", "generated", "written").
        blocking: wait for another holder (default), or raise at once.
        poll: seconds between tries.
    """
    lock = lock_path(folder)
    start = time.monotonic()
    said = False
    while True:
        try:
            fd = _acquire(lock)
        except OSError as err:
            if err.errno not in _NO_LOCKS:
                raise
            log.warning(
                "%s has no file locks (%s): %s may be %s by several processes at once",
                lock.parent,
                err.strerror,
                purpose,
                action,
            )
            yield lock
            return
        if fd is not None:
            break
        owner = read_owner(lock)
        if not blocking:
            raise FolderLockedError(
                f"{purpose} ({Path(folder)}) is being {action} by {_owner_text(owner)} (lock file "
                f"{lock}); wait for it to finish, or stop that process",
                lock,
                owner,
            )
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise LockTimeoutError(
                f"gave up after {timeout:g} s waiting for {purpose} ({Path(folder)}) being {action} by "
                f"{_owner_text(owner)} (lock file {lock}); if that process is hung, stop it, then run again",
                lock,
                owner,
            )
        if not said and (owner is not None or waited >= 4 * poll):  # the owner writes its name first
            log.warning(
                "waiting for %s being %s by %s (lock file %s)", purpose, action, _owner_text(owner), lock
            )
            said = True
        time.sleep(poll if timeout is None else max(0.0, min(poll, timeout - waited)))
    previous = read_owner(lock)
    if previous is not None:
        log.info("took over %s, left by %s, which ended without releasing it", lock, previous)
    try:
        _record(fd, purpose)
        yield lock
    finally:
        try:
            held = os.fstat(fd)
            current = os.stat(lock)
            if (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
                os.unlink(lock)  # while still held: a process that opened it retries on a new file
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)
