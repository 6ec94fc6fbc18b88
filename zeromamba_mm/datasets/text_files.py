"""Read the text files of zero-shot data: UTF-8, any storage backend.

CSV rows with their line numbers (so that every message can name
``file:line``) and name lists (one class or attribute name per line, each
listed once). Files are read with :func:`mmengine.fileio.get_text` and
:func:`mmengine.list_from_file`, so they may live on any registered backend;
what those raise is turned into messages that name the file and line.
"""
import codecs
import csv
import io
from typing import List, Optional, Tuple

from mmengine import list_from_file
from mmengine.fileio import get, get_file_backend, get_text

from .data_checks import ZSLDataError, check_no_duplicates

__all__ = ['read_text', 'read_rows', 'read_name_list']


def _backend(path: str, backend_args: Optional[dict]):
    return get_file_backend(
        path, backend_args=backend_args, enable_singleton=True)


def read_text(path: str,
              backend_args: Optional[dict] = None,
              what: str = 'Zero-shot table file') -> str:
    """Read a UTF-8 text file (a UTF-8 BOM, as Excel writes, is dropped).

    Raises:
        FileNotFoundError: if the file does not exist.
        ZSLDataError: on a byte that is not UTF-8, naming file and line.
    """
    _require_file(path, backend_args, what)
    try:
        return get_text(path, encoding='utf-8-sig', backend_args=backend_args)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, backend_args, e) from e


def _require_file(path: str, backend_args: Optional[dict], what: str):
    if not _backend(path, backend_args).exists(path):
        raise FileNotFoundError(f'{what} not found: {path}')


def _not_utf8(path: str, backend_args: Optional[dict],
              error: UnicodeDecodeError) -> ZSLDataError:
    """Name the file, line and byte that is not UTF-8, with the fix."""
    raw = get(path, backend_args=backend_args)
    body = raw[len(codecs.BOM_UTF8):] if raw.startswith(
        codecs.BOM_UTF8) else raw
    try:  # the offset of the first bad byte, without the BOM's shift
        body.decode('utf-8')
        start, reason = error.start, error.reason
    except UnicodeDecodeError as e:
        start, reason = e.start, e.reason
    line = body[:start].count(b'\n') + 1
    return ZSLDataError(
        f'{path}:{line}: byte {body[start:start + 1]!r} is not UTF-8 '
        f'({reason}). Save the file as UTF-8 (in Excel: "CSV UTF-8").')


def read_rows(
        path: str,
        backend_args: Optional[dict] = None,
        what: str = 'Zero-shot table file') -> List[Tuple[int, List[str]]]:
    """Read a CSV/TXT file into ``(line number, fields)`` pairs.

    Blank lines and lines starting with ``#`` are skipped; fields are
    stripped of surrounding spaces. The file is UTF-8 (with or without a
    BOM) on any :mod:`mmengine.fileio` backend.

    Args:
        path (str): Path or URI of the file.
        backend_args (dict, optional): Arguments of the file backend.
        what (str): What the file is, for the message of a missing file.

    Returns:
        list[tuple[int, list[str]]]: 1-based line number and fields.
    """
    text = read_text(path, backend_args, what)
    rows = []
    reader = csv.reader(io.StringIO(text, newline=''))
    try:
        for fields in reader:
            fields = [x.strip() for x in fields]
            if not any(fields) or fields[0].startswith('#'):
                continue
            rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise ZSLDataError(f'{path}:{reader.line_num}: {e}') from e
    if not rows:
        raise ZSLDataError(f'{path} holds no rows.')
    return rows


def read_name_list(path: str,
                   what: str,
                   backend_args: Optional[dict] = None) -> Tuple[str, ...]:
    """One name per line (blank lines and ``#`` comments skipped), each
    listed once (a name holding commas is read whole).

    Args:
        path (str): Path or URI of the text file.
        what (str): What the file lists, for messages (``'Class-name
            file'``).
        backend_args (dict, optional): Arguments of the file backend.

    Raises:
        FileNotFoundError: if the file does not exist.
        ZSLDataError: on a name listed twice, naming both lines.
    """
    _require_file(path, backend_args, what)
    try:
        lines = list_from_file(
            path, encoding='utf-8-sig', backend_args=backend_args)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, backend_args, e) from e
    rows = [(number, line.strip()) for number, line in enumerate(lines, 1)
            if line.strip() and not line.strip().startswith('#')]
    if not rows:
        raise ZSLDataError(f'{path} holds no names.')
    names = tuple(name for _, name in rows)
    check_no_duplicates(
        names, path, 'names', place=lambda i: f'line {rows[i][0]}')
    return names
