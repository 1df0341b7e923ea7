"""Safe file writes shared by the cache, the checkpoints and the results file.

``write_atomic`` writes to ``<name>.tmp<pid>`` beside the target and renames
it over the target, so a reader never sees a half-written file; ``locked``
holds an exclusive lock file while a read-modify-write or a computation runs,
so two notebooks (or processes) never interleave. Without ``fcntl``
(Windows) there is no lock: run one notebook at a time there.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:        # Windows
    fcntl = None


FULL_DISK = 1 << 20          # bytes: a write that fails with less free space than this failed for want of space


class WriteError(OSError):
    """A write that failed for a reason the user can act on (a full disk, a read-only or forbidden folder)."""


def _why_not_written(path: Path, err: BaseException) -> str | None:
    """The cause of a failed write in a user's words, or None when it is none of the known ones. torch.save on a
    full disk raises a RuntimeError ("unexpected pos ..."), not ENOSPC, so the free space itself is checked."""
    code = getattr(err, "errno", None)
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"cannot write {path}: {os.strerror(code).lower()}; choose a writable folder (for the cache: "
                "ROTLIB_CACHE=/some/writable/folder)")
    folder = next((p for p in (path.parent, *path.parents) if p.exists()), None)
    free = shutil.disk_usage(folder).free if folder is not None else None
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < FULL_DISK):
        return (f"cannot write {path}: the disk is full ({free if free is not None else 0:,} bytes free on the "
                f"filesystem of {folder}); free some space, or point the cache to another disk "
                "(ROTLIB_CACHE=/path/on/another/disk); nothing was left half-written")
    return None


def write_atomic(path, write) -> None:
    """``write(tmp_path)``, then rename the temporary file to ``path``; the temporary file never stays behind
    (unless the process is killed outright: the cache removes those, see :func:`rotlib.cache.cached_model`).
    A write that fails on a full disk or a read-only folder raises :class:`WriteError`, which says so and what to
    do; ``path`` then keeps what it held before."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        why = _why_not_written(path, err)
        if why is None:
            raise
        raise WriteError(why) from err
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def can_lock() -> bool:
    return fcntl is not None


@contextlib.contextmanager
def locked(lock_path, on_wait=None):
    """Hold an exclusive lock on ``lock_path`` (created if needed) for the ``with`` block.

    When another process holds it, ``on_wait()`` is called (e.g. to say so) before waiting for it.
    """
    with open(lock_path, "w") as lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(lock, fcntl.LOCK_EX)
        yield                                         # the lock is released when the file closes


def read_json(path, default=None):
    """The JSON stored at ``path`` (``default`` when there is no file); a damaged file is an error that names it and
    says how to restore it."""
    path = Path(path)
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); restore it with `git checkout -- {path}` "
                         "or delete it and re-run the notebooks") from None


def update_json(path, key: str, value) -> None:
    """Set ``key`` to ``value`` in the JSON object stored at ``path`` (created if missing), keys sorted, under a lock
    and written atomically: two notebooks recording at once lose nothing (the results and verdicts files).
    A callable ``value`` is given the stored value (None when there is none) and returns the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path.with_name(path.name + ".lock")):
        data = read_json(path, {})
        data[key] = value(data.get(key)) if callable(value) else value
        write_text_atomic(path, json.dumps(dict(sorted(data.items())), indent=1) + "\n")
