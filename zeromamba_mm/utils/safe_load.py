"""Read every file a user hands in without running code from it.

A ``.pth`` or ``.pkl`` file is a pickle, and a plain unpickle runs whatever
the file asks for (an object whose ``__reduce__`` returns
``(os.system, ('...',))`` executes the command). Every checkpoint, release
file, converter input and word-vector file of this project is therefore read
here, and only here:

* :func:`load_torch_file` reads PyTorch files (zip and legacy formats) with
  ``torch.load(weights_only=True)``: tensors, storages and plain containers
  only. On top of that it admits the few named globals that MMEngine's own
  runner checkpoints need (:data:`RUNNER_CHECKPOINT_GLOBALS`: numpy arrays,
  dtypes and scalars, mmengine's ``HistoryBuffer`` of the message hub and a
  ``getattr`` restricted to ``HistoryBuffer``'s statistics methods). Any
  other global is refused with :class:`UnsafeFileError` naming the file and
  the global.
* :func:`load_numpy_pickle` reads a pickled numpy array (the public
  ``{CUB,SUN,AWA2}_attribute.pkl`` word vectors) with an unpickler that only
  rebuilds numpy arrays; :func:`load_npy` reads ``.npy`` files without
  pickle.

A missing, truncated or corrupt file raises :class:`CheckpointLoadError` (a
``RuntimeError``; :class:`CheckpointNotFoundError` is also a
``FileNotFoundError``) naming the file, instead of a traceback from deep
inside ``torch.load``.
"""
import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from pathlib import Path
from typing import (Any, BinaryIO, Callable, Dict, List, Optional, Tuple,
                    Union)

import numpy as np
import torch

__all__ = [
    'CheckpointLoadError', 'CheckpointNotFoundError', 'UnsafeFileError',
    'RUNNER_CHECKPOINT_GLOBALS', 'load_torch_file', 'load_torch_bytes',
    'load_numpy_pickle', 'load_npy'
]

PathLike = Union[str, Path]


class CheckpointLoadError(RuntimeError):
    """A file cannot be read: missing, truncated, corrupt or of the wrong
    kind. The message names the file."""


class CheckpointNotFoundError(CheckpointLoadError, FileNotFoundError):
    """The file does not exist."""


class UnsafeFileError(pickle.UnpicklingError, CheckpointLoadError):
    """A pickle asks for a global (class or function) that is not allowed.

    Raised before the global is called, so nothing of the file has run.
    """


def _numpy_core(module: str):
    """numpy's ``_core`` (numpy >= 2) or ``core`` (numpy < 2) submodule."""
    try:
        import numpy._core.multiarray as multiarray
        import numpy._core.numeric as numeric
    except ImportError:  # numpy < 2
        import numpy.core.multiarray as multiarray
        import numpy.core.numeric as numeric
    return numeric if module == 'numeric' else multiarray


def _history_buffer_getattr(obj: Any, name: str) -> Callable:
    """``getattr`` as a message-hub checkpoint needs it, and nothing more.

    Pickle stores the unbound statistics methods of mmengine's
    ``HistoryBuffer`` (``min``, ``max``, ``mean``, ``current``, ...) as
    ``getattr(HistoryBuffer, 'min')``. Any other use of ``getattr`` (the
    usual way to reach ``os.system`` from an allowed object) is refused.
    """
    from mmengine.logging import HistoryBuffer
    method = None
    if obj is HistoryBuffer and isinstance(name, str) and \
            not name.startswith('_'):
        method = HistoryBuffer.__dict__.get(name)
    if not callable(method):
        raise UnsafeFileError(
            f'refused global builtins.getattr({obj!r}, {name!r}): getattr is '
            'only allowed for the statistics methods of mmengine\'s '
            'HistoryBuffer')
    return method


def _runner_checkpoint_globals() -> List[Union[Callable, Tuple[Callable,
                                                               str]]]:
    """The extra globals admitted in PyTorch files, by object and name."""
    from mmengine.logging import HistoryBuffer
    multiarray = _numpy_core('multiarray')
    allowed: List[Union[Callable, Tuple[Callable, str]]] = [
        np.ndarray,
        np.dtype,
        HistoryBuffer,
        # Pickle protocol 2 (torch.save's) writes b'' as ``bytes()``.
        (bytes, 'builtins.bytes'),
        (_history_buffer_getattr, 'builtins.getattr'),
    ]
    # numpy >= 2 writes ``numpy._core``, older files ``numpy.core``.
    for package in ('numpy._core', 'numpy.core'):
        allowed += [
            (multiarray._reconstruct,
             f'{package}.multiarray._reconstruct'),
            (multiarray.scalar, f'{package}.multiarray.scalar'),
        ]
    # numpy >= 1.25 has one class per dtype (numpy.dtypes.Float64DType);
    # torch's unpickler checks the class of every dtype it builds.
    allowed += sorted({type(np.dtype(code))
                       for code in '?bBhHiIlLqQefdgFDGSUVOMm'},
                      key=lambda t: t.__name__)
    return allowed


#: Names of the globals :func:`load_torch_file` admits besides what
#: ``torch.load(weights_only=True)`` allows by default.
RUNNER_CHECKPOINT_GLOBALS = (
    'numpy.ndarray', 'numpy.dtype (and numpy.dtypes.*DType)',
    'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar',
    'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.bytes',
    'builtins.getattr (HistoryBuffer statistics methods only)')

# How torch names what its weights-only unpickler refused.
_REFUSED_PATTERNS = (
    re.compile(r'refused global (builtins\.getattr\([^)]*\))'),
    re.compile(r'GLOBAL (\S+)'),
    re.compile(r'types allowlisted via `add_safe_globals`, but got (.+?)\s*$',
               re.MULTILINE),
)
# Lines of torch's weights-only error that explain nothing about the file.
_BOILERPLATE = ('Weights only load failed', 'Please file an issue',
                'Check the documentation', 'In PyTorch 2.6', '(1) ', '(2) ',
                'WeightsUnpickler error:')


def _existing_file(path: PathLike, what: str) -> str:
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        reason = 'is a directory' if os.path.isdir(path) else 'does not exist'
        raise CheckpointNotFoundError(f'{what} {path!r} {reason}.')
    return path


def _refused_global(message: str) -> Optional[str]:
    for pattern in _REFUSED_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1).rstrip('.')
    return None


def _first_sentence(message: str) -> str:
    lines = message.strip().splitlines()
    return lines[0].split('. ')[0].rstrip('.') if lines else ''


def _unpickler_reason(message: str) -> str:
    """The informative line of torch's weights-only error."""
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(_BOILERPLATE):
            return line
    return message.strip()


def _pickle_globals(file: BinaryIO) -> List[str]:
    """The globals a plain (non-zip) pickle stream names, read without
    unpickling (``pickletools``), to name them when torch cannot parse the
    stream (e.g. a raw ``pickle.dump`` with protocol >= 4)."""
    names: List[str] = []
    strings: List[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(file):
            if opcode.name == 'GLOBAL':
                names.append(str(arg).replace(' ', '.'))
            elif opcode.name == 'STACK_GLOBAL' and len(strings) >= 2:
                names.append(f'{strings[-2]}.{strings[-1]}')
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # truncated or not a pickle: keep what was read
        pass
    return names


def _allowed_name(name: str) -> bool:
    return name.startswith(('torch.', 'collections.OrderedDict',
                            'numpy.')) or name in (
                                'builtins.bytes', '_codecs.encode',
                                'mmengine.logging.history_buffer.'
                                'HistoryBuffer')


def load_torch_file(path: PathLike, map_location: Any = 'cpu') -> Any:
    """Load a PyTorch file (checkpoint, state dict, release file) safely.

    The file is read with ``torch.load(weights_only=True)`` admitting, in
    addition, only :data:`RUNNER_CHECKPOINT_GLOBALS` (what MMEngine's runner
    writes into its checkpoints' message hub and meta). This covers state
    dicts, official release files (``{'model': ...}``) and full runner
    checkpoints (``meta``, ``state_dict``, ``message_hub``, ``optimizer``,
    ``param_schedulers``), in the zip and the legacy format.

    Args:
        path (str | Path): The file.
        map_location: Passed to ``torch.load``. Defaults to ``'cpu'``.

    Returns:
        The loaded object.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        UnsafeFileError: The file asks for a global that is not allowed (the
            message names the file and the global); nothing of it ran.
        CheckpointLoadError: The file is truncated, corrupt or not a PyTorch
            file.
    """
    path = _existing_file(path, 'Checkpoint file')
    with open(path, 'rb') as f:
        return _load_torch(f, path, map_location)


def load_torch_bytes(data: bytes, source: str,
                     map_location: Any = 'cpu') -> Any:
    """:func:`load_torch_file` for bytes read elsewhere (a file backend).

    Args:
        data (bytes): The file's contents.
        source (str): Where they come from, named in errors.
        map_location: Passed to ``torch.load``.

    Returns:
        The loaded object.
    """
    return _load_torch(io.BytesIO(data), source, map_location)


def _load_torch(file: BinaryIO, source: str, map_location: Any) -> Any:
    try:
        with torch.serialization.safe_globals(_runner_checkpoint_globals()), \
                warnings.catch_warnings():
            # A raw pickle.dump (protocol >= 4) makes torch warn before it
            # refuses the file; the refusal below says what matters.
            warnings.filterwarnings('ignore', 'Detected pickle protocol')
            return torch.load(
                file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        refused = _refused_global(message)
        if refused is None:
            file.seek(0)
            if not zipfile.is_zipfile(file):
                file.seek(0)
                refused = next((name for name in _pickle_globals(file)
                                if not _allowed_name(name)), None)
        if refused is not None:
            raise UnsafeFileError(
                f'Refusing to load {source}: it asks for the global '
                f'{refused}, which a checkpoint must not hold (the file is '
                'read with torch.load(weights_only=True), allowing only '
                'tensors, plain containers and ' +
                ', '.join(RUNNER_CHECKPOINT_GLOBALS) + '). Nothing of the '
                'file was run. If you trust the file, save its state dict '
                'alone and load that.') from None
        raise CheckpointLoadError(
            f'Cannot read checkpoint {source}: the file is corrupt or '
            'truncated, or not a PyTorch file '
            f'({_unpickler_reason(message)}).') from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError,
            AttributeError, TypeError, IndexError, UnicodeDecodeError,
            OverflowError, MemoryError) as err:
        raise CheckpointLoadError(
            f'Cannot read checkpoint {source}: the file is corrupt or '
            f'truncated, or not a PyTorch file ({type(err).__name__}: '
            f'{_first_sentence(str(err))}).') from None


# (module, name) -> resolver of the globals a pickled numpy array needs.
# ``_frombuffer`` rebuilds arrays pickled with protocol 5, ``scalar`` numpy
# scalars; protocols <= 2 store raw bytes as ``_codecs.encode(text,
# 'latin1')``, a pure str -> bytes conversion.
_NUMPY_PICKLE_GLOBALS: Dict[Tuple[str, str], Callable[[], Any]] = {
    ('numpy', 'ndarray'): lambda: np.ndarray,
    ('numpy', 'dtype'): lambda: np.dtype,
    ('_codecs', 'encode'): lambda: __import__('_codecs').encode,
}
for _package in ('numpy._core', 'numpy.core'):
    for _module, _name in (('multiarray', '_reconstruct'),
                           ('multiarray', 'scalar'), ('numeric',
                                                      '_frombuffer')):
        _NUMPY_PICKLE_GLOBALS[(f'{_package}.{_module}', _name)] = (
            lambda m=_module, n=_name: getattr(_numpy_core(m), n))
for _dtype in {type(np.dtype(c)) for c in '?bBhHiIlLqQefdgFDGSUVMm'}:
    _NUMPY_PICKLE_GLOBALS[(_dtype.__module__, _dtype.__name__)] = (
        lambda t=_dtype: t)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can only rebuild numpy arrays, dtypes, scalars."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        resolve = _NUMPY_PICKLE_GLOBALS.get((module, name))
        if resolve is None:
            raise UnsafeFileError(
                f'Refusing to load {self._source}: the pickle asks for the '
                f'global {module}.{name}, but only numpy arrays may be '
                'stored in this file (allowed globals: '
                f'{sorted(f"{m}.{n}" for m, n in _NUMPY_PICKLE_GLOBALS)}). '
                'Nothing of the file was run. Convert the file to .npy if '
                'you trust it.')
        return resolve()

    def persistent_load(self, pid):
        raise UnsafeFileError(
            f'Refusing to load {self._source}: persistent ids are not '
            'allowed in a pickled numpy array.')


def load_numpy_pickle(path: PathLike) -> np.ndarray:
    """Unpickle one numpy array, refusing any global other than numpy's.

    Args:
        path (str | Path): A ``.pkl`` file holding one pickled numpy array.

    Returns:
        np.ndarray: The array.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        UnsafeFileError: The pickle asks for a global not needed to rebuild a
            numpy array (the message names the file and the global).
        CheckpointLoadError: The file is truncated or corrupt, or holds
            something else than one numeric array (object arrays are
            refused: their items could be anything).
    """
    path = _existing_file(path, 'Pickle file')
    if zipfile.is_zipfile(path):
        raise CheckpointLoadError(
            f'{path} is a PyTorch (zip) file, not a pickled numpy array; '
            'save the array with numpy (np.save to .npy, or pickle.dump).')
    with open(path, 'rb') as f:
        data = f.read()
    try:
        obj = _NumpyOnlyUnpickler(io.BytesIO(data), source=path).load()
    except UnsafeFileError:
        raise
    except Exception as err:  # truncated / garbled streams
        raise CheckpointLoadError(
            f'Cannot unpickle {path}: the file is truncated or corrupt '
            f'({type(err).__name__}: {err}).') from None
    if not isinstance(obj, np.ndarray):
        raise CheckpointLoadError(
            f'{path} holds a {type(obj).__name__}, expected one numpy array.')
    if obj.dtype.hasobject:
        raise CheckpointLoadError(
            f'{path} holds a numpy array of dtype {obj.dtype}, expected a '
            'numeric array.')
    return obj


def load_npy(path: PathLike) -> np.ndarray:
    """Read a ``.npy`` file without pickle (``allow_pickle=False``).

    Args:
        path (str | Path): The ``.npy`` file.

    Returns:
        np.ndarray: The array.

    Raises:
        CheckpointNotFoundError: ``path`` does not exist.
        CheckpointLoadError: The file is not a valid ``.npy`` file or holds a
            pickled (object) array.
    """
    path = _existing_file(path, 'Array file')
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:
        raise CheckpointLoadError(
            f'Cannot read {path} as a .npy array without pickle '
            f'({type(err).__name__}: {err}).') from None
