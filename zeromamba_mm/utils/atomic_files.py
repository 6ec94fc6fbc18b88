"""Writing files so that a crash, a full disk or a second run loses nothing.

One home for the project's file writing rules:

* :func:`write_atomically` writes through a temporary file beside the
  destination (``.<name>.tmp-<pid>``), flushes it to disk and renames it
  into place; with ``overwrite=False`` it links instead, so an existing file
  is never replaced, not even by a file created meanwhile. A failure (a full
  disk, a directory as destination) leaves no partial file behind.
* :func:`write_json_new` writes a JSON file that way, never replacing one;
  :func:`reserve_new_files` claims fresh names ``stem[_k]<suffix>`` for
  outputs that must not replace a user's file.
* :func:`remove_stale_temp_files` removes the temporary files of processes
  that died while writing (``kill -9`` during a save).
* :class:`WorkDirLock` gives one run at a time a work dir; the lock is the
  kernel's (``fcntl.flock``), so it ends with the process, also after
  ``kill -9``.
"""
import errno
import fcntl
import json
import math
import os
import os.path as osp
import re
from typing import Any, Callable, List, Optional, Sequence

#: ``.<name>.tmp-<pid>``: the temporary name of ``<name>`` while written.
_TMP_PATTERN = re.compile(r'^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$')

#: Lock file of :class:`WorkDirLock`, inside the work dir.
LOCK_NAME = '.zeromamba_run.lock'


class DiskFullError(OSError):
    """The disk (or quota) ran out while writing; nothing partial is left.

    ``DiskFullError(errno, message)``; ``str()`` is the message alone.
    """

    def __str__(self) -> str:
        return str(self.strerror)


class WorkDirBusyError(RuntimeError):
    """Another live process holds the work dir's lock."""


def temp_path_for(path: str) -> str:
    """The temporary name :func:`write_atomically` uses for ``path``.

    Args:
        path (str): Destination file.

    Returns:
        str: ``<dir>/.<name>.tmp-<pid>``.
    """
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.tmp-{os.getpid()}')


def _describe_write_error(path: str, err: OSError) -> OSError:
    folder = osp.dirname(osp.abspath(path))
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(
            err.errno, f'No space left on the disk of {folder} while '
            f'writing {osp.basename(path)} (nothing partial was left). Free '
            'some space or write elsewhere (--work-dir NEW_DIR), then retry '
            '(a training run: add --resume).')
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PermissionError(
            f'Cannot write {path}: {folder} is not writable '
            f'({err.strerror}). Choose a writable place.')
    return err


def write_atomically(path: str,
                     write: Callable[[str], None],
                     overwrite: bool = True) -> None:
    """Write ``path`` through a temporary file and a rename (or link).

    Args:
        path (str): Destination file (its folder must exist).
        write (callable): Called with the temporary path; writes the complete
            contents there.
        overwrite (bool): Replace an existing ``path`` (``os.replace``).
            With False an existing file is never touched: the temporary file
            is hard-linked under ``path``, which fails if the name exists.
            Defaults to True.

    Raises:
        IsADirectoryError: ``path`` is a directory.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        DiskFullError: the disk ran out of space (message names the folder).
        PermissionError: the folder is not writable.
    """
    if osp.isdir(path):
        raise IsADirectoryError(
            f'{path} is a directory; give a file name inside it, e.g. '
            f'{osp.join(path, "out.pth")}')
    if not overwrite and osp.lexists(path):
        raise FileExistsError(f'{path} already exists')
    tmp = temp_path_for(path)
    try:
        write(tmp)
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f'{path} was created meanwhile; it was kept '
                              'and nothing was written') from None
    except OSError as err:
        described = _describe_write_error(path, err)
        if described is err:
            raise
        raise described from None
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)


def write_text_atomically(path: str,
                          text: str,
                          overwrite: bool = True) -> None:
    """:func:`write_atomically` for a text (UTF-8).

    Args:
        path (str): Destination file.
        text (str): Contents.
        overwrite (bool): See :func:`write_atomically`. Defaults to True.
    """

    def write(tmp: str) -> None:
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write(text)

    write_atomically(path, write, overwrite=overwrite)


def _json_safe(value: Any) -> Any:
    """NaN/inf (e.g. -inf for classes outside a label space) -> null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def write_json_new(path: str, payload: Any, indent: int = 2) -> None:
    """Write ``payload`` as JSON to a new file ``path``, atomically.

    Non-finite floats become ``null`` (JSON has none). The folder is created
    if needed.

    Args:
        path (str): Destination; must not exist.
        payload: JSON-serialisable data.
        indent (int): JSON indentation. Defaults to 2.

    Raises:
        FileExistsError: ``path`` exists (or appeared meanwhile); nothing is
            written.
    """
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    text = json.dumps(_json_safe(payload), indent=indent, allow_nan=False)
    write_text_atomically(path, text + '\n', overwrite=False)


def reserve_new_files(directory: str, stem: str,
                      suffixes: Sequence[str]) -> List[str]:
    """Create new empty files ``stem[_k]<suffix>`` (one per suffix).

    The first ``k`` (0: no ``_k``) for which none of the names exists is
    taken; exclusive creation (mode ``'x'``) makes this safe against a
    user's files and concurrent writers. The caller then fills the files.

    Args:
        directory (str): Folder (created if needed).
        stem (str): File name stem.
        suffixes (Sequence[str]): E.g. ``('.png', '.json')``.

    Returns:
        list[str]: The reserved paths, in the order of ``suffixes``.
    """
    os.makedirs(directory, exist_ok=True)
    k = 0
    while True:
        name = stem if k == 0 else f'{stem}_{k}'
        made = []
        try:
            for suffix in suffixes:
                path = osp.join(directory, name + suffix)
                open(path, 'x').close()
                made.append(path)
            return made
        except FileExistsError:
            for path in made:
                os.remove(path)
        k += 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temp_files(folder: str) -> List[str]:
    """Remove the temporary files of writers that died (``kill -9``).

    Only plain files named in :func:`temp_path_for`'s form
    (``.<name>.tmp-<pid>``) whose process no longer runs on this machine
    are removed; the files of live writers, folders, links and other names
    stay.

    Args:
        folder (str): The folder to clean (a missing folder is fine).

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for name in os.listdir(folder):
        match = _TMP_PATTERN.match(name)
        if match is None or int(match['pid']) == os.getpid():
            continue
        path = osp.join(folder, name)
        if not osp.isfile(path) or osp.islink(path):
            continue  # write_atomically's temporaries are plain files
        if _pid_alive(int(match['pid'])):
            continue
        try:
            os.remove(path)
            removed.append(path)
        except FileNotFoundError:  # another cleaner was faster
            pass
    return removed


class WorkDirLock:
    """An exclusive, crash-proof claim on a work dir.

    ``fcntl.flock`` on ``<work_dir>/.zeromamba_run.lock``: the kernel drops
    the lock when the process ends, however it ends, so a crashed or killed
    run never blocks the retry. The holder's PID is written into the file for
    the message a second run gets.

    Args:
        work_dir (str): The folder to claim (created if missing).
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> 'WorkDirLock':
        """Take the lock, or refuse naming the holder.

        Returns:
            WorkDirLock: ``self``.

        Raises:
            WorkDirBusyError: another process holds it.
        """
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors='replace').strip()
            os.close(fd)
            raise WorkDirBusyError(
                f'the work dir {self.work_dir} is in use by another run '
                f'(PID {holder or "unknown"}). Wait for it to end, or give '
                'this run another --work-dir.') from None
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the work dir free (also done by the kernel at exit)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
