"""Write files so that a crash never leaves a half-written file in place of a good one, and keep
a run folder to one run at a time.

- Every write goes to a temporary file in the same folder, then is renamed over the target.
  The temporary name carries the writer's pid (``.NAME.PID.RANDOM.tmp``), so the next write to
  that folder removes what a killed writer left behind, and never a live writer's file.
- A folder that cannot be created (a file stands in the way, no permission, a read-only or full
  disk) is a :class:`~snn_toolchain.errors.ToolchainError` naming the path: the CLI's one line.
- :func:`exclusive_folder_lock` holds an ``flock`` on ``FOLDER/.lock``; the kernel drops it when
  its process dies, so a crashed run never leaves a stale lock.
- :func:`claim_folder` marks a folder the toolchain writes into (``FOLDER/.snn-toolchain``) and
  refuses one that holds files it did not write: nothing of the user's is overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from snn_toolchain.errors import ToolchainError

_TEMPORARY_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")
LOCK_NAME = ".lock"
# a folder holding this file was made by the toolchain, and what is in it is the toolchain's
OWNER_MARK = ".snn-toolchain"


def describe_os_error(err: OSError, what: str = "") -> str:
    """One line for a file-system error: the path, the system's reason, and what to do."""
    path = err.filename or what or "?"
    reason = err.strerror or str(err)
    fix = {errno.ENOSPC: "free disk space or write somewhere else",
           errno.EDQUOT: "free disk space or write somewhere else",
           errno.EFBIG: "the file is larger than this process may write (ulimit -f); raise the limit or write elsewhere",
           errno.EACCES: "choose a folder you may write to", errno.EPERM: "choose a folder you may write to",
           errno.EROFS: "the file system is read-only; choose another folder",
           errno.ENOTDIR: "a file stands where a folder is needed; choose another path",
           errno.EEXIST: "a file stands where a folder is needed; choose another path",
           errno.EISDIR: "a folder stands where a file is needed; give a file name"}.get(err.errno, "check the path")
    return f"{path}: {reason}; {fix}"


def ensure_folder(folder: Path | str, option: str = "") -> Path:
    """Create ``folder`` (and its parents) or raise a one-line ToolchainError naming it (and the
    command-line ``option`` that gave it, when there is one)."""
    folder = Path(folder)
    if folder.is_dir():
        return folder
    shown = f"{option} {folder}" if option else str(folder)
    blocker = next((p for p in [folder, *folder.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        where = "is a file" if blocker == folder else f"{blocker} is a file"
        raise ToolchainError(f"{shown}: {where}, not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ToolchainError(f"{shown}: the folder cannot be created ({err.strerror or err}); "
                             "choose a place you may write to") from None
    return folder


def foreign_entries(folder: Path) -> list[str]:
    """What ``folder`` holds that marks it as not the toolchain's: every entry, unless it holds the
    toolchain's mark (then nothing). Our lock and temporaries do not count."""
    if (folder / OWNER_MARK).exists():
        return []
    return sorted(name for name in os.listdir(folder) if name != LOCK_NAME and not _TEMPORARY_NAME.match(name))


def _refuse_foreign(folder: Path, shown: str, kind: str) -> None:
    foreign = foreign_entries(folder)
    if foreign:
        listed = ", ".join(foreign[:4]) + (f" and {len(foreign) - 4} more" if len(foreign) > 4 else "")
        raise ToolchainError(f"{shown}: holds files train-export did not write ({listed}); "
                             f"choose a new or empty folder for the {kind}")


def claim_folder(folder: Path | str, kind: str, option: str = "", legacy: bool = False) -> Path:
    """Create ``folder``, or take an existing one that is empty or the toolchain's, and mark it as
    the toolchain's (``OWNER_MARK``). A folder that holds files the toolchain did not write is
    refused with one line naming some of them: nothing of the user's is ever overwritten.
    ``legacy``: the caller has checked that the folder is a run the toolchain wrote before the
    mark existed (a checkpoint of ours)."""
    folder = Path(folder)
    shown = f"{option} {folder}" if option else str(folder)
    if folder.is_dir() and not legacy:
        _refuse_foreign(folder, shown, kind)
    ensure_folder(folder, option)
    if not (folder / OWNER_MARK).exists():
        write_json(folder / OWNER_MARK, {"written_by": "snn-toolchain", "kind": kind})
    return folder


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files and folders in ``folder`` whose writer process is gone; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMPORARY_NAME.match(entry.name)
            if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def check_replaceable(target: Path, kind: str, option: str = "", force: bool = False,
                      folder: bool = False) -> None:
    """May ``target`` (a file or a folder) be written? Absent: yes. A folder holding files the
    toolchain did not write: never; nor a file where a ``folder`` is to be written. One of the
    toolchain's own: only with ``force`` (``--force``), so that no earlier output is lost unasked."""
    target = Path(target)
    shown = f"{option} {target}" if option else str(target)
    if not target.exists():
        return
    if folder and not target.is_dir():
        raise ToolchainError(f"{shown}: is a file, not a folder; choose a folder for the {kind}")
    if target.is_dir():
        _refuse_foreign(target, shown, kind)
        if not force and any(name not in (OWNER_MARK, LOCK_NAME) for name in os.listdir(target)):
            raise ToolchainError(f"{shown}: holds an earlier {kind}; --force replaces it, or choose another folder")
        return
    if not force:
        raise ToolchainError(f"{shown}: exists; --force replaces it, or choose another file")


@contextlib.contextmanager
def atomic_folder(target: Path | str, kind: str, option: str = "", force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target`` to write a whole set of outputs into; on success
    it replaces ``target`` (two renames), so a reader finds the earlier set or the new one, never a
    mix of both; a killed writer leaves a temporary folder that the next write removes. The target
    may be replaced as :func:`check_replaceable` says."""
    target = Path(target)
    check_replaceable(target, kind, option, force, folder=True)
    try:
        parent = ensure_folder(target.parent)
    except ToolchainError as err:
        raise ToolchainError(f"{option} {target}: {err}" if option else str(err)) from None
    remove_stale_temporaries(parent)
    tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"))
    try:
        write_json(tmp / OWNER_MARK, {"written_by": "snn-toolchain", "kind": kind})
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():
            old = parent / f".{target.name}.{os.getpid()}.old.tmp"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target``, on error it is removed."""
    target = Path(target)
    if target.is_dir():
        raise ToolchainError(f"{target}: is a folder; give a file name")
    if not target.parent.is_dir():
        try:
            ensure_folder(target.parent)
        except ToolchainError as err:
            raise ToolchainError(f"{target}: cannot be written: {err}") from None
    remove_stale_temporaries(target.parent)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600 files; give the result the permissions a plain open() would
        os.chmod(tmp, 0o666 & ~_umask())
        with open(tmp, "rb") as handle:  # on disk before the rename, so a crash never leaves a hole
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(target: Path | str, payload) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return Path(target)


def write_text(target: Path | str, text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


@contextlib.contextmanager
def exclusive_folder_lock(folder: Path | str, what: str = "run") -> Iterator[Path]:
    """Hold ``FOLDER/.lock`` exclusively for the duration; a second holder is refused at once with
    a ToolchainError naming the folder and the pid that holds it."""
    folder = ensure_folder(folder, "--run-dir")
    lock_path = folder / LOCK_NAME
    handle = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ToolchainError(f"{folder}: in use by another {what} (pid {holder}); wait for it to finish, "
                                 "or choose another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield lock_path
    finally:
        handle.close()   # releases the lock; the file stays, empty of meaning once unlocked
