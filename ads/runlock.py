"""Run folders: a marker that says "the harness made this", and a lock while a process writes it.

Why both. `--overwrite` and the clean-up after a user error delete folders; before the marker,
`evolve --output-dir results --overwrite` deleted whatever `results/` held. Now only a folder
that carries `.ads-run` (or, for folders made before the marker existed, a `run_info.json`
naming the folder's own run id) is ever deleted. And two processes on one config used to write
the same JSONL files at once (duplicates; a second `--resume` truncating the line the first
was writing; `--overwrite` deleting a live run). The lock makes the second one stop with one
line naming the holder.

The lock is `fcntl.flock` on `<run>/.lock`, so the kernel drops it when the holder dies, even
by SIGKILL: a stale lock from a killed process never blocks a `--resume`. The file holds
pid, host and start time for the error message. Where flock is not supported (some network
filesystems) the file's pid is checked instead: a lock whose pid is not alive on this host is
stale and taken over. The lock file is never deleted (deleting it while another process waits
on it would let two processes hold "the" lock on two different files).

Within one process a second lock on the same folder takes the first one over: a run that died
by an exception leaves its RunContext unreleased, and an in-process `--resume` (tests, a
notebook) must still work. The lock is against other processes.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

from models.errors import UserError
from models.files import pid_alive

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

MARKER = ".ads-run"
LOCK = ".lock"

_held: dict[str, "RunLock"] = {}  # realpath -> the lock this process holds on it
_held_guard = threading.Lock()


class RunExists(UserError):
    """The run folder holds an interrupted run and neither --resume nor --overwrite was given
    (re-exported by ads.run; every command line reports it as one line, exit 2)."""


class RunLocked(RunExists):
    """Another live process writes this run folder (a user error: exit 2)."""


class NotHarnessFolder(RunExists):
    """A folder the harness was asked to delete but did not create (a user error: exit 2)."""


def is_harness_folder(path: str | Path) -> bool:
    """True for a folder the harness created: it carries the marker, or (made before the marker
    existed) a run_info.json whose run_id is the folder's own name."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    try:
        info = json.loads((path / "run_info.json").read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and info.get("run_id") == path.name


def mark(path: str | Path, **info: Any) -> None:
    p = Path(path) / MARKER
    if not p.exists():
        p.write_text(json.dumps({"created_by": "ads-harness", "created": time.time(), **info}) + "\n",
                     encoding="utf-8")


def has_content(path: str | Path) -> bool:
    """Anything in the folder besides the marker and the lock file."""
    path = Path(path)
    return path.is_dir() and any(p.name not in (MARKER, LOCK) for p in path.iterdir())


def clear_folder(path: str | Path) -> None:
    """Delete a marked folder's contents, keeping the lock file this process holds in it."""
    path = Path(path)
    if not is_harness_folder(path):
        raise NotHarnessFolder(f"{path} was not created by this harness (no {MARKER} marker); refusing to delete "
                               f"it: remove it yourself or choose another folder")
    for p in path.iterdir():
        if p.name == LOCK:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def remove_folder(path: str | Path) -> bool:
    """Delete a marked folder; an unmarked one is left alone. Returns whether it was removed."""
    path = Path(path)
    if not is_harness_folder(path):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()


class RunLock:
    """An exclusive lock on a run folder for the life of one process's run."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK
        self._fd: int | None = None

    def _describe_holder(self) -> str:
        try:
            info = json.loads(self.path.read_bytes())
            started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
            return f"pid {info['pid']} on {info['host']} since {started}"
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return "another process"

    def acquire(self) -> "RunLock":
        key = os.path.realpath(self.folder)
        with _held_guard:
            previous = _held.pop(key, None)
        if previous is not None:
            previous.release()  # this process's own earlier, unfinished run of the folder
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._lock_fd(fd)
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "started": time.time()}) + "\n").encode())
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        with _held_guard:
            _held[key] = self
        return self

    def _lock_fd(self, fd: int) -> None:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                raise RunLocked(f"{self.folder} is being written by {self._describe_holder()}; wait for that "
                                f"run to finish (or stop it) before starting, resuming or overwriting it") from None
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        # No flock here: trust the pid in the file when it is this host's and alive.
        try:
            info = json.loads(os.read(fd, 4096) or b"{}")
        except (ValueError, RecursionError):
            info = {}
        if (isinstance(info, dict) and info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int)
                and info["pid"] != os.getpid() and pid_alive(info["pid"])):
            raise RunLocked(f"{self.folder} is being written by {self._describe_holder()}; wait for that run "
                            f"to finish (or stop it) before starting, resuming or overwriting it")
        os.lseek(fd, 0, os.SEEK_SET)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with _held_guard:
            key = os.path.realpath(self.folder)
            if _held.get(key) is self:
                del _held[key]
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None
