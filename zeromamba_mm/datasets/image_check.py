"""Find missing, empty, and undecodable images before training starts.

A zero-byte or truncated JPEG otherwise surfaces hours into a run as a bare
``cv2.error`` without a file name. :func:`check_image_files` looks at every
file once, on any :mod:`mmengine.fileio` backend:

* ``mode='fast'``: the file exists, is not empty, and starts with the magic
  bytes of an image format OpenCV reads (JPEG, PNG, GIF, BMP, TIFF, WebP,
  PNM). On the local disk only the first bytes are read.
* ``mode='full'``: additionally decodes every image with
  :func:`mmcv.imfrombytes` (what ``LoadImageFromFile`` does).
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

from mmengine.fileio import LocalBackend, get_file_backend

__all__ = ['check_image_files', 'image_format', 'CHECK_MODES']

#: Modes of :func:`check_image_files`.
CHECK_MODES = ('fast', 'full')

# (offset, magic bytes, format). TIFF and WebP need two rules each.
_MAGIC = (
    (0, b'\xff\xd8\xff', 'jpeg'),
    (0, b'\x89PNG\r\n\x1a\n', 'png'),
    (0, b'GIF87a', 'gif'),
    (0, b'GIF89a', 'gif'),
    (0, b'BM', 'bmp'),
    (0, b'II*\x00', 'tiff'),
    (0, b'MM\x00*', 'tiff'),
    (8, b'WEBP', 'webp'),
)
_HEADER_BYTES = 16


def image_format(header: bytes) -> Optional[str]:
    """Return the image format of a file's first bytes, or None.

    Args:
        header (bytes): At least the first 12 bytes of the file.

    Returns:
        str | None: ``'jpeg'``, ``'png'``, ``'gif'``, ``'bmp'``, ``'tiff'``,
        ``'webp'``, ``'pnm'``; None if no known image header matches.
    """
    for offset, magic, name in _MAGIC:
        if header[offset:offset + len(magic)] == magic:
            if name == 'webp' and not header.startswith(b'RIFF'):
                continue
            return name
    # Netpbm: 'P1'..'P7' followed by white space.
    if (len(header) >= 3 and header[:1] == b'P' and header[1:2] in b'1234567'
            and header[2:3] in b' \t\r\n'):
        return 'pnm'
    return None


def _is_plain_local(path: str, backend) -> bool:
    # A LocalBackend subclass registered under a prefix (``name://``) maps
    # paths itself: only un-prefixed paths may use os calls directly.
    return type(backend) is LocalBackend and '://' not in path


def _check_local(path: str) -> Tuple[Optional[str], Optional[bytes]]:
    if not osp.isfile(path):
        return ('missing' if not osp.exists(path) else 'not a file'), None
    if osp.getsize(path) == 0:
        return 'empty file (0 bytes)', None
    with open(path, 'rb') as f:
        return None, f.read(_HEADER_BYTES)


def _decode_problem(content: bytes) -> Optional[str]:
    import mmcv
    try:
        img = mmcv.imfrombytes(content)
    except Exception as e:  # cv2.error and friends: keep the message
        return f'cannot be decoded ({type(e).__name__}: {e})'.strip()
    if img is None or img.size == 0:
        return 'cannot be decoded (corrupt or truncated image data)'
    return None


def check_image_files(
        paths: Sequence[str],
        mode: str = 'fast',
        backend_args: Optional[dict] = None) -> List[Tuple[str, str]]:
    """Check image files and return the problems found.

    Args:
        paths (Sequence[str]): Image paths or URIs (``s3://...``, any prefix
            registered with :func:`mmengine.fileio.register_backend`).
        mode (str): ``'fast'`` (exists, non-empty, image header) or
            ``'full'`` (also decode every image). Defaults to ``'fast'``.
        backend_args (dict, optional): Arguments of the file backend, as
            ``LoadImageFromFile(backend_args=...)``. Defaults to None.

    Returns:
        list[tuple[str, str]]: ``(path, problem)`` for every bad file, in the
        order of ``paths``; empty when all files are good. Problems read
        ``'missing'``, ``'empty file (0 bytes)'``, ``'not an image (first
        bytes ...)'`` or ``'cannot be decoded (...)'``.

    Examples:
        >>> check_image_files(['a.jpg', 'empty.jpg'])
        [('empty.jpg', 'empty file (0 bytes)')]
    """
    if mode not in CHECK_MODES:
        raise ValueError(
            f'Unknown image check mode {mode!r}; choose one of {CHECK_MODES}.')
    problems: List[Tuple[str, str]] = []
    backends = {}
    for path in paths:
        path = os.fspath(path)
        prefix = path.split('://', 1)[0] if '://' in path else ''
        if prefix not in backends:
            backends[prefix] = get_file_backend(
                path, backend_args=backend_args, enable_singleton=True)
        backend = backends[prefix]
        content = None
        if _is_plain_local(path, backend):
            problem, header = _check_local(path)
        else:
            try:
                exists = backend.exists(path)
            except NotImplementedError:
                exists = True  # e.g. HTTP: let ``get`` tell
            problem, header = ('missing', None) if not exists else (None, None)
            if problem is None:
                try:
                    content = backend.get(path)
                except Exception as e:
                    problem = f'cannot be read ({type(e).__name__}: {e})'
                else:
                    header = content[:_HEADER_BYTES]
                    if not content:
                        problem = 'empty file (0 bytes)'
        if problem is None and image_format(header) is None:
            problem = f'not an image (first bytes {header[:8]!r})'
        if problem is None and mode == 'full':
            if content is None:
                with open(path, 'rb') as f:
                    content = f.read()
            problem = _decode_problem(content)
        if problem is not None:
            problems.append((path, problem))
    return problems
