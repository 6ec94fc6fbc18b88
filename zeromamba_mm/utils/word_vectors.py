"""Load per-attribute word vectors (ZeroMamba's ``V₀``) safely.

The public word-vector files used by DAZLE, TransZero and ZeroMamba
(``{CUB,SUN,AWA2}_attribute.pkl``) are plain pickled numpy arrays of shape
(A, 300). They are read through :mod:`zeromamba_mm.utils.safe_load`, whose
unpickler can only rebuild numpy arrays (any other global is refused);
``.npy`` files are read without pickle.
"""
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from .safe_load import load_npy, load_numpy_pickle

WordVectorSource = Union[str, Path, np.ndarray, torch.Tensor]

#: What a user changes when the word vectors do not fit the model.
_FIX = ('set model.head.word_vectors to a file of shape ({rows}, {dim}) '
        'for these attributes (one row per attribute, in the order of the '
        'class-attribute matrix), or to None to learn V from a random init')


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
        FileNotFoundError: If the file does not exist
            (:class:`~zeromamba_mm.utils.safe_load.CheckpointNotFoundError`).
        UnsafeFileError: If a ``.pkl`` file asks for a global other than
            numpy's (nothing of it is run).
        CheckpointLoadError: If the file is truncated or corrupt, or holds
            something else than one numeric array.
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
            array = load_npy(where)
        elif suffix in ('.pkl', '.pickle'):
            array = load_numpy_pickle(where)
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
    fix = _FIX.format(
        rows=num_attributes if num_attributes is not None else 'A',
        dim=dim if dim is not None else array.shape[1])
    if num_attributes is not None and array.shape[0] != num_attributes:
        raise ValueError(
            f'Word vectors in {where} have {array.shape[0]} rows (shape '
            f'{array.shape}), but the model has num_attributes='
            f'{num_attributes}: {fix}.')
    if dim is not None and array.shape[1] != dim:
        raise ValueError(
            f'Word vectors in {where} have dimension {array.shape[1]} (shape '
            f'{array.shape}), expected {dim} (w2v_dim): {fix}, or set '
            f'w2v_dim={array.shape[1]}.')
    if not np.isfinite(array).all():
        raise ValueError(f'Word vectors in {where} contain NaN or inf.')
    return np.asarray(array, dtype=np.float64)
