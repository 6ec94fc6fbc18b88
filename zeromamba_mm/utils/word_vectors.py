"""Load per-attribute word vectors (ZeroMamba's ``V₀``) safely.

The public word-vector files used by DAZLE, TransZero and ZeroMamba
(``{CUB,SUN,AWA2}_attribute.pkl``) are plain pickled numpy arrays of shape
(A, 300). ``pickle.load`` would run whatever a file asks for, so the ``.pkl``
files are read with a *restricted* unpickler that can only rebuild numpy
arrays; any other global in the stream is refused.
"""
import io
import os.path as osp
import pickle
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

WordVectorSource = Union[str, Path, np.ndarray, torch.Tensor]

# (module, name) pairs a pickled numpy array may reference. Both spellings of
# numpy's core package are accepted: ``numpy.core`` (numpy < 2, used by the
# public files) and ``numpy._core`` (numpy >= 2). ``_frombuffer`` rebuilds
# arrays pickled with protocol 5 and ``scalar`` rebuilds numpy scalars.
# yapf: disable
_ALLOWED_GLOBALS = {
    ('numpy', 'ndarray'): 'ndarray',
    ('numpy', 'dtype'): 'dtype',
    ('numpy.core.multiarray', '_reconstruct'): '_reconstruct',
    ('numpy._core.multiarray', '_reconstruct'): '_reconstruct',
    ('numpy.core.multiarray', 'scalar'): 'scalar',
    ('numpy._core.multiarray', 'scalar'): 'scalar',
    ('numpy.core.numeric', '_frombuffer'): '_frombuffer',
    ('numpy._core.numeric', '_frombuffer'): '_frombuffer',
    # Pickle protocols <= 2 store the array's raw bytes as
    # ``_codecs.encode(text, 'latin1')``: a pure string -> bytes conversion.
    ('_codecs', 'encode'): 'encode',
}
# yapf: enable


class RefusedPickleError(pickle.UnpicklingError):
    """A pickle asked for something a word-vector file must not hold."""


def _numpy_core_attr(module: str, name: str):
    """Resolve ``name`` from numpy's core package without the deprecated
    ``numpy.core`` alias (importing it warns under numpy 2)."""
    try:
        import numpy._core.multiarray as multiarray
        import numpy._core.numeric as numeric
    except ImportError:  # numpy < 2
        import numpy.core.multiarray as multiarray
        import numpy.core.numeric as numeric
    return getattr(numeric if module.endswith('numeric') else multiarray, name)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, dtypes and scalars."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        kind = _ALLOWED_GLOBALS.get((module, name))
        if kind is None:
            raise RefusedPickleError(
                f'Refusing to load {self._source}: the pickle asks for the '
                f'global {module}.{name}, but only numpy arrays may be '
                'stored in a word-vector file (allowed: '
                f'{sorted(f"{m}.{n}" for m, n in _ALLOWED_GLOBALS)}). '
                'Convert the file to .npy if it is trusted.')
        if kind == 'ndarray':
            return np.ndarray
        if kind == 'dtype':
            return np.dtype
        if kind == 'encode':
            import _codecs
            return _codecs.encode
        return _numpy_core_attr(module, name)

    def persistent_load(self, pid):
        raise RefusedPickleError(
            f'Refusing to load {self._source}: persistent ids are not '
            'allowed in a word-vector file.')


def restricted_load_numpy_pickle(path: Union[str, Path]) -> np.ndarray:
    """Unpickle a numpy array, refusing any global other than numpy's.

    Args:
        path (str | Path): A ``.pkl`` file holding one pickled numpy array.

    Returns:
        np.ndarray: The array.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        RefusedPickleError: If the pickle asks for a global that is not
            needed to rebuild a numpy array (the message names it).
        pickle.UnpicklingError: If the file is truncated or corrupt.
        TypeError: If the pickle holds something else than one array.
    """
    path = str(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'Word-vector file {path!r} does not exist.')
    with open(path, 'rb') as f:
        data = f.read()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), source=path).load()
    except RefusedPickleError:
        raise
    except Exception as e:  # truncated / garbled streams
        raise pickle.UnpicklingError(
            f'Cannot unpickle {path}: {type(e).__name__}: {e}') from e
    if not isinstance(obj, np.ndarray):
        raise TypeError(f'{path} holds a {type(obj).__name__}, expected a '
                        'numpy array of word vectors.')
    return obj


def load_word_vectors(source: WordVectorSource,
                      num_attributes: Optional[int] = None,
                      dim: Optional[int] = None) -> np.ndarray:
    """Load per-attribute word vectors ``V₀`` of shape (A, dim).

    Args:
        source (str | Path | np.ndarray | Tensor): A ``.npy`` file (read with
            ``allow_pickle=False``), a ``.pkl``/``.pickle`` file holding a
            pickled numpy array (read with a restricted unpickler), or the
            array itself.
        num_attributes (int, optional): Expected number of attributes A
            (rows). Checked when given.
        dim (int, optional): Expected word-vector dimension (columns, 300 for
            word2vec). Checked when given.

    Returns:
        np.ndarray: The (A, dim) word vectors, float64, as stored. All-zero
        rows are kept (the public SUN file has one, attribute 88, with no
        word2vec entry).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: On an unknown file type, a non-2D or non-numeric array,
            non-finite values, or a shape that does not match
            ``num_attributes``/``dim``.
    """
    if isinstance(source, torch.Tensor):
        array, where = source.detach().cpu().numpy(), 'the given tensor'
    elif isinstance(source, np.ndarray):
        array, where = source, 'the given array'
    elif isinstance(source, (str, Path)):
        where = str(source)
        suffix = Path(where).suffix.lower()
        if suffix == '.npy':
            if not osp.isfile(where):
                raise FileNotFoundError(
                    f'Word-vector file {where!r} does not exist.')
            array = np.load(where, allow_pickle=False)
        elif suffix in ('.pkl', '.pickle'):
            array = restricted_load_numpy_pickle(where)
        else:
            raise ValueError(
                f'Unknown word-vector file type {suffix!r} of {where!r}: '
                'expected .npy, .pkl or .pickle.')
    else:
        raise TypeError('word vectors must be a path, numpy array or tensor, '
                        f'got {type(source).__name__}.')

    if array.dtype.kind not in 'fiu':
        raise ValueError(f'Word vectors in {where} must be numeric, got '
                         f'dtype {array.dtype}.')
    if array.ndim != 2:
        raise ValueError(f'Word vectors in {where} must be a 2D (A, dim) '
                         f'array, got shape {array.shape}.')
    if num_attributes is not None and array.shape[0] != num_attributes:
        raise ValueError(
            f'Word vectors in {where} have {array.shape[0]} rows (shape '
            f'{array.shape}), but the model has num_attributes='
            f'{num_attributes}: use the word-vector file of the same '
            'dataset as the class attributes.')
    if dim is not None and array.shape[1] != dim:
        raise ValueError(
            f'Word vectors in {where} have dimension {array.shape[1]} (shape '
            f'{array.shape}), expected {dim} (w2v_dim).')
    if not np.isfinite(array).all():
        raise ValueError(f'Word vectors in {where} contain NaN or inf.')
    return np.asarray(array, dtype=np.float64)
