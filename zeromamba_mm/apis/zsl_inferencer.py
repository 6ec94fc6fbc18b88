"""Zero-shot inference with a trained model, in MMPretrain's inferencer style.

A zero-shot model predicts an attribute vector ``Â`` per image and scores any
class by its attribute vector ``a_c`` (``s(x, c) = Â · a_c``), so the classes
are an *input* of inference, not part of the weights: they come from a
class-attribute file (``.npy``, ``.csv`` or an xlsa17 ``att_splits.mat``), an
array, or the dataset metainfo that MMEngine stores in its checkpoints, and
classes never seen in training can be added at any time with
:meth:`ZSLInferencer.add_classes`.

Example::

    >>> from zeromamba_mm.apis import ZSLInferencer
    >>> inferencer = ZSLInferencer(
    ...     'configs/zeromamba_demo.py', 'work_dirs/demo/epoch_10.pth',
    ...     class_attributes='data/zsl_demo/att_splits.mat')
    >>> inferencer('demo.jpg', topk=3)[0]['pred_class']
    'red_circle_plain_small_left_dark'
"""
import copy
import os
import os.path as osp
import pickle
import types
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import (Any, Callable, Dict, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.structures import DataSample

__all__ = [
    'ZSLInferencer', 'ClassSemantics', 'load_class_semantics',
    'read_checkpoint'
]

ImageType = Union[str, Path, np.ndarray]
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]
#: Score spaces of :meth:`ZSLInferencer.__call__`.
SCORE_SPACES = ('raw', 'softmax')
#: Label spaces of :meth:`ZSLInferencer.__call__`.
LABEL_SPACES = ('all', 'seen', 'unseen')


# ----------------------------------------------------------------------------
# Class semantics: which classes to score
# ----------------------------------------------------------------------------
@dataclass
class ClassSemantics:
    """The classes a zero-shot model scores.

    Attributes:
        attributes (np.ndarray): (C, A) float32 attribute vectors.
        class_names (tuple[str]): C unique class names.
        seen_classes (np.ndarray, optional): Sorted ids of the classes seen in
            training (needed for calibrated stacking and ``label_space``).
        attribute_names (tuple[str], optional): A attribute names.
        source (str): Where the semantics came from (for messages).
    """
    attributes: np.ndarray
    class_names: Tuple[str, ...]
    seen_classes: Optional[np.ndarray] = None
    attribute_names: Optional[Tuple[str, ...]] = None
    source: str = 'the given array'

    @property
    def num_classes(self) -> int:
        return int(self.attributes.shape[0])

    @property
    def num_attributes(self) -> int:
        return int(self.attributes.shape[1])


def _read_name_list(path: str, what: str) -> Tuple[str, ...]:
    """One name per line; blank lines and ``#`` comments are skipped."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file not found: {path}')
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f]
    names = [n for n in names if n and not n.startswith('#')]
    if not names:
        raise ValueError(f'{what} file {path} lists no names.')
    return tuple(names)


def _as_names(names: Union[None, str, Path, Sequence[str]],
              what: str) -> Optional[Tuple[str, ...]]:
    if names is None:
        return None
    if isinstance(names, (str, Path)):
        return _read_name_list(str(names), what)
    names = tuple(str(n) for n in names)
    if not names:
        raise ValueError(f'{what}: the list of names is empty.')
    return names


def _read_csv_table(path: str):
    """``class,attr_1,...`` header, then one ``name,v_1,...`` row per class."""
    from zeromamba_mm.datasets.table_format import read_rows
    rows = read_rows(path)
    header = rows[0][1]
    if header[0].lower() != 'class' or len(header) < 2:
        raise ValueError(
            f'{path}: the first row must be the header "class,attr_1,'
            f'attr_2,..." (one column per attribute), got {header[:4]}.')
    names, values = [], []
    for lineno, fields in rows[1:]:
        if len(fields) != len(header):
            raise ValueError(
                f'{path}:{lineno}: {len(fields) - 1} attribute values but the '
                f'header names {len(header) - 1} attributes.')
        try:
            values.append(np.asarray(fields[1:], dtype=np.float64))
        except ValueError as e:
            raise ValueError(f'{path}:{lineno}: {e}') from e
        names.append(fields[0])
    if not names:
        raise ValueError(f'{path} has a header but no class rows.')
    return np.stack(values), tuple(names), tuple(header[1:])


def _cell_strings(cell: np.ndarray, path: str, key: str) -> Tuple[str, ...]:
    out = []
    for i, item in enumerate(np.asarray(cell, dtype=object).ravel()):
        item = np.asarray(item).ravel()
        if item.size != 1 or not isinstance(item[0], str):
            raise ValueError(
                f'{path}: entry {i} of {key!r} is not a string ({item!r}).')
        out.append(str(item[0]))
    return tuple(out)


def _read_xlsa17(path: str, attribute_key: str):
    """``att`` (A, C) and the class names of an ``att_splits.mat``.

    The seen classes are the labels of the ``trainval`` images, which only
    ``res101.mat`` knows: they are read when that file sits next to
    ``att_splits.mat`` (its large ``features`` array is not read).
    """
    from zeromamba_mm.datasets.xlsa17 import read_mat
    mat = read_mat(
        path, [attribute_key], optional=['allclasses_names', 'trainval_loc'])
    att = np.asarray(mat[attribute_key], dtype=np.float64)
    if att.ndim != 2:
        raise ValueError(f'{path}: {attribute_key!r} must be 2-D (A, C), got '
                         f'shape {att.shape}.')
    att = att.T  # the file stores one class per column
    names = None
    if 'allclasses_names' in mat:
        names = _cell_strings(mat['allclasses_names'], path,
                              'allclasses_names')
        if len(names) != att.shape[0]:
            raise ValueError(
                f'{path}: allclasses_names has {len(names)} entries but '
                f'{attribute_key!r} has {att.shape[0]} classes (columns).')
    seen = None
    res101 = osp.join(osp.dirname(path), 'res101.mat')
    if 'trainval_loc' in mat and osp.isfile(res101):
        labels = np.asarray(read_mat(
            res101, ['labels'])['labels']).ravel().astype(np.int64)
        loc = np.asarray(mat['trainval_loc']).ravel().astype(np.int64)
        if loc.size and (loc.min() < 1 or loc.max() > labels.size):
            raise ValueError(
                f'{path}: trainval_loc holds 1-based indices outside [1, '
                f'{labels.size}] (the images of {res101}).')
        seen = np.unique(labels[loc - 1] - 1)
        if seen.size and (seen.min() < 0 or seen.max() >= att.shape[0]):
            raise ValueError(
                f'{res101}: labels of trainval images fall outside the '
                f'{att.shape[0]} classes of {path}.')
    return att, names, seen


def _seen_ids(seen: ArrayLike, names: Sequence[str],
              source: str) -> np.ndarray:
    """Seen classes given as ids or names -> sorted unique int64 ids."""
    values = list(np.asarray(seen).ravel()) if not isinstance(
        seen, (list, tuple)) else list(seen)
    index = {n: i for i, n in enumerate(names)}
    ids = []
    for value in values:
        if isinstance(value, (str, np.str_)):
            if str(value) not in index:
                raise ValueError(f'Seen class {str(value)!r} is not one of '
                                 f'the classes of {source}.')
            ids.append(index[str(value)])
        else:
            ids.append(int(value))
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if ids.size and (ids.min() < 0 or ids.max() >= len(names)):
        raise ValueError(
            f'Seen class ids must be in [0, {len(names)}) (the classes of '
            f'{source}); got min {ids.min()}, max {ids.max()}.')
    return ids


def _l2_rows(matrix: np.ndarray, source: str) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise ValueError(
            f'Cannot L2-normalise the class attributes of {source}: rows '
            f'{zero[:5].tolist()} are all zero.')
    return matrix / norms


def load_class_semantics(class_attributes: Union[str, Path, ArrayLike],
                         class_names: Union[None, str, Path,
                                            Sequence[str]] = None,
                         seen_classes: Optional[ArrayLike] = None,
                         attribute_names: Union[None, str, Path,
                                                Sequence[str]] = None,
                         normalize: bool = True,
                         attribute_key: str = 'att') -> ClassSemantics:
    """Read the classes to score from a file or an array.

    Supported sources:

    - ``.npy``: a (C, A) array; class names from ``class_names`` (a list or a
      text file, one name per line), else ``class_0 ... class_{C-1}``.
    - ``.csv``: a header ``class,attr_1,attr_2,...`` and one row
      ``name,v_1,v_2,...`` per class (names and attribute names come from
      the file).
    - ``.mat``: an xlsa17 ``att_splits.mat`` (``att`` or ``original_att``,
      transposed to (C, A), and ``allclasses_names``); when ``res101.mat``
      lies in the same folder, the seen classes are read from it.
    - a (C, A) numpy array, tensor or nested list.

    Args:
        class_attributes (str | Path | array): The source, see above.
        class_names (str | Path | Sequence[str], optional): Names of the C
            classes; overrides the names of the file. Defaults to None.
        seen_classes (array | Sequence[int | str], optional): Ids or names of
            the classes seen in training; overrides what the file says.
        attribute_names (str | Path | Sequence[str], optional): Names of the
            A attributes; overrides the CSV header. Defaults to None.
        normalize (bool): L2-normalise each class row, as the xlsa17 ``att``
            rows the models are trained with. Defaults to True.
        attribute_key (str): Key read from a ``.mat`` file: ``'att'`` or
            ``'original_att'``. Defaults to ``'att'``.

    Returns:
        ClassSemantics: The classes.

    Raises:
        FileNotFoundError: If a file does not exist.
        ValueError: On a malformed file, non-finite values, a zero row (with
            ``normalize``), duplicate class names, or name/seen lists that
            do not match the number of classes/attributes.
    """
    file_names = file_attr_names = file_seen = None
    if isinstance(class_attributes, (str, Path)):
        source = str(class_attributes)
        if not osp.isfile(source):
            raise FileNotFoundError(
                f'Class-attribute file not found: {source}')
        suffix = osp.splitext(source)[1].lower()
        if suffix == '.npy':
            try:
                matrix = np.load(source, allow_pickle=False)
            except ValueError as e:
                raise ValueError(f'Cannot read {source} as a numeric .npy '
                                 f'array: {e}') from e
        elif suffix == '.csv':
            matrix, file_names, file_attr_names = _read_csv_table(source)
        elif suffix == '.mat':
            matrix, file_names, file_seen = _read_xlsa17(source, attribute_key)
        else:
            raise ValueError(
                f'Unknown class-attribute file type {suffix!r} of {source}: '
                'expected .npy (C, A), .csv with a "class,attr_1,..." header, '
                'or an xlsa17 att_splits.mat.')
    elif isinstance(class_attributes, torch.Tensor):
        source = 'the given tensor'
        matrix = class_attributes.detach().cpu().numpy()
    else:
        source = 'the given array'
        matrix = np.asarray(class_attributes)

    if matrix.dtype.kind not in 'fiub':
        raise ValueError(f'Class attributes of {source} must be numeric, got '
                         f'dtype {matrix.dtype}.')
    if matrix.ndim != 2 or 0 in matrix.shape:
        raise ValueError(f'Class attributes of {source} must be a 2-D (C, A) '
                         f'array with C, A > 0, got shape {matrix.shape}.')
    matrix = matrix.astype(np.float64)
    if not np.isfinite(matrix).all():
        raise ValueError(f'Class attributes of {source} contain NaN or inf.')
    if normalize:
        matrix = _l2_rows(matrix, source)
    num_classes, num_attributes = matrix.shape

    names = _as_names(class_names, 'Class-name') or file_names
    if names is None:
        names = tuple(f'class_{i}' for i in range(num_classes))
    if len(names) != num_classes:
        raise ValueError(
            f'{len(names)} class names were given for the {num_classes} '
            f'classes (rows) of {source}.')
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f'Duplicate class names: {duplicates[:5]}.')

    attr_names = _as_names(attribute_names, 'Attribute-name') \
        or file_attr_names
    if attr_names is not None and len(attr_names) != num_attributes:
        raise ValueError(
            f'{len(attr_names)} attribute names were given for the '
            f'{num_attributes} attributes (columns) of {source}.')

    seen = file_seen if seen_classes is None else _seen_ids(
        seen_classes, names, source)
    return ClassSemantics(
        attributes=matrix.astype(np.float32),
        class_names=tuple(names),
        seen_classes=seen,
        attribute_names=attr_names,
        source=source)


# ----------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------
class _Unread:
    """Stands for an object of a checkpoint that inference does not need.

    It is never the real object: nothing of its class is imported or run.
    """

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _Unread()

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass

    def append(self, item):
        pass

    def extend(self, items):
        pass


def _weights_globals() -> Dict[Tuple[str, str], Any]:
    """The globals needed to rebuild tensors, numpy arrays and dicts."""
    import codecs
    allowed = dict()
    allowed[('collections', 'OrderedDict')] = OrderedDict
    # Protocol-2 pickles store bytes as _codecs.encode(str, encoding).
    allowed[('_codecs', 'encode')] = codecs.encode
    allowed[('torch', 'Size')] = torch.Size
    allowed[('torch', 'device')] = torch.device
    # Python 2 spelling (protocol 2) and Python 3 spelling of builtins.
    for module in ('builtins', '__builtin__'):
        allowed[(module, 'set')] = set
        allowed[(module, 'frozenset')] = frozenset
    for name in ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3',
                 '_rebuild_parameter', '_rebuild_parameter_with_state'):
        if hasattr(torch._utils, name):
            allowed[('torch._utils', name)] = getattr(torch._utils, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[('torch', name)] = getattr(torch, name)
    # numpy's own (safe) rebuild functions, under both module spellings.
    reconstruct = np.ndarray((0, )).__reduce__()[0]
    scalar = np.float64(0).__reduce__()[0]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed[(module, '_reconstruct')] = reconstruct
        allowed[(module, 'scalar')] = scalar
    allowed[('numpy', 'ndarray')] = np.ndarray
    allowed[('numpy', 'dtype')] = np.dtype
    for name in dir(np.dtypes):
        if name.endswith('DType'):
            allowed[('numpy.dtypes', name)] = getattr(np.dtypes, name)
    return allowed


class _WeightsUnpickler(pickle.Unpickler):
    """Rebuild tensors and arrays; replace every other object by ``_Unread``.

    MMEngine checkpoints also hold the message hub (``HistoryBuffer`` with
    pickled bound methods, i.e. ``builtins.getattr``), which
    ``weights_only=True`` refuses. Instead of unpickling those fully, which
    could run arbitrary code, we import nothing but tensor/array rebuilders.
    """
    _allowed = None

    def find_class(self, module: str, name: str):
        if _WeightsUnpickler._allowed is None:
            _WeightsUnpickler._allowed = _weights_globals()
        return self._allowed.get((module, name), _Unread)


_weights_pickle = types.ModuleType('zeromamba_weights_pickle')
_weights_pickle.Unpickler = _WeightsUnpickler
_weights_pickle.load = lambda f, **kw: _WeightsUnpickler(f, **kw).load()
_weights_pickle.__name__ = 'zeromamba_weights_pickle'


def read_checkpoint(
        path: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Read the weights and the metadata of a checkpoint without running code.

    The file is read with ``torch.load(weights_only=True)``; a checkpoint
    written by MMEngine's runner (it also holds the message hub and the
    optimizer state) is read by a restricted unpickler that rebuilds only
    tensors, numpy arrays and plain containers and leaves everything else out.

    Args:
        path (str): Checkpoint file: ``{'state_dict': sd, 'meta': ...}``
            (MMEngine), ``{'model': sd}`` or a bare state dict.

    Returns:
        tuple[OrderedDict, dict]: The state dict and ``meta`` (``{}`` if
        none; MMEngine stores ``meta['dataset_meta']`` there).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the file is corrupt or holds no state dict.
    """
    path = osp.expanduser(os.fspath(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path}')
    try:
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except pickle.UnpicklingError:
            obj = torch.load(
                path,
                map_location='cpu',
                weights_only=False,
                pickle_module=_weights_pickle)
    except Exception as e:  # zip / EOF / struct errors of a damaged file
        raise ValueError(f'Cannot read checkpoint {path}: the file is corrupt '
                         f'or not a PyTorch checkpoint ({type(e).__name__}: '
                         f'{e}).') from e
    meta = {}
    state_dict = obj
    if isinstance(obj, Mapping):
        if isinstance(obj.get('meta'), Mapping):
            meta = dict(obj['meta'])
        for key in ('state_dict', 'model'):
            if isinstance(obj.get(key), Mapping):
                state_dict = obj[key]
                break
    if not isinstance(state_dict, Mapping) or not state_dict:
        found = (f'keys {list(obj)[:5]}'
                 if isinstance(obj, Mapping) else type(obj).__name__)
        raise ValueError(
            f'Checkpoint {path} holds no state dict (expected one under '
            f"'state_dict' or 'model', or a bare one); found {found}.")
    bad = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if bad:
        raise ValueError(
            f'Checkpoint {path}: the state dict has entries that are not '
            f'tensors (or could not be read safely), e.g. {bad[:5]}.')
    return OrderedDict(state_dict), meta


# ----------------------------------------------------------------------------
# The inferencer
# ----------------------------------------------------------------------------
def _without_image_loading(pipeline: Sequence) -> List:
    """Drop ``LoadImageFromFile`` (any scope prefix): we load images."""
    kept = []
    for transform in pipeline:
        kind = transform.get('type') if isinstance(transform, Mapping) \
            else transform
        name = kind.__name__ if isinstance(kind, type) else (kind.rsplit(
            '.', 1)[-1] if isinstance(kind, str) else type(kind).__name__)
        if name != 'LoadImageFromFile':
            kept.append(transform)
    return kept


def _without_word_vectors(cfg):
    """Set every ``word_vectors=`` of a model config to None.

    Word vectors only initialise SLP's ``V``, which the checkpoint replaces
    (strictly); the file they name is not needed for inference. Pretrained
    ``init_cfg`` entries need no such care: ``init_weights`` is never called.
    """
    if isinstance(cfg, Mapping):
        return type(cfg)({
            k: (None if k == 'word_vectors' else _without_word_vectors(v))
            for k, v in cfg.items()
        })
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_word_vectors(v) for v in cfg)
    return cfg


class ZSLInferencer(BaseInferencer):
    """Classify images among classes described by attribute vectors.

    Args:
        model (str | Config | BaseModel): A config file path, a
            :obj:`Config`, or a built
            :class:`~zeromamba_mm.models.ZeroShotClassifier`.
        checkpoint (str, optional): The trained weights (loaded strictly).
            Required unless ``model`` is a built model. Runner checkpoints
            (``epoch_N.pth``, ``best_*.pth``) and plain state dicts work.
        class_attributes (str | Path | array, optional): The classes to score,
            see :func:`load_class_semantics` (``.npy``/``.csv``/xlsa17
            ``att_splits.mat`` file or a (C, A) array). Defaults to the
            training dataset's classes saved in the checkpoint's
            ``meta['dataset_meta']``.
        class_names (str | Sequence[str], optional): Class names (list or a
            text file, one per line). Defaults to the file's.
        seen_classes (Sequence[int | str], optional): Ids or names of the
            classes seen in training, needed for ``gamma`` and
            ``label_space``. Defaults to what the source says.
        attribute_names (str | Sequence[str], optional): Attribute names
            (for visualisation). Defaults to the file's.
        normalize_attributes (bool): L2-normalise class rows (the xlsa17
            ``att`` convention the models are trained with). Also applies
            to :meth:`add_classes`. Defaults to True.
        device (str | torch.device, optional): Defaults to CUDA if
            available, else CPU.
        pipeline (list[dict], optional): Test pipeline; defaults to the
            config's ``test_dataloader.dataset.pipeline``. Needed when
            ``model`` is a built model without ``_config``.

    Images given as arrays must be ``uint8`` (H, W, 3) and are read as **BGR**
    by default (the order of ``cv2.imread`` / ``mmcv.imread`` and of
    MMPretrain's inferencers); pass ``channel_order='rgb'`` for arrays from
    PIL or matplotlib. Files are read with ``mmcv.imread`` (BGR).
    """

    preprocess_kwargs: set = {'channel_order'}
    forward_kwargs: set = set()
    visualize_kwargs: set = set()
    postprocess_kwargs: set = {'topk', 'score_space', 'gamma', 'label_space'}

    def __init__(self,
                 model: Union[str, Path, Config, BaseModel],
                 checkpoint: Optional[str] = None,
                 class_attributes: Union[None, str, Path, ArrayLike] = None,
                 class_names: Union[None, str, Sequence[str]] = None,
                 seen_classes: Optional[ArrayLike] = None,
                 attribute_names: Union[None, str, Sequence[str]] = None,
                 normalize_attributes: bool = True,
                 device: Union[str, torch.device, None] = None,
                 pipeline: Optional[Sequence[dict]] = None) -> None:
        # BaseInferencer.__init__ is not called: it loads checkpoints
        # non-strictly and with a full unpickle. Its attributes are set here.
        import zeromamba_mm  # noqa: F401  (registers the modules)
        if device is None:
            device = 'cuda' if torch.cuda.is_available() else 'cpu'
        meta = {}
        if isinstance(model, BaseModel):
            config = getattr(model, '_config', None)
            if checkpoint is not None:
                meta = self._load_weights(model, checkpoint)
        else:
            config = self._read_config(model)
            if checkpoint is None:
                raise ValueError(
                    'ZSLInferencer needs the trained weights: pass checkpoint='
                    'PATH (a config alone gives an untrained model).')
            model = self._build_model(config)
            meta = self._load_weights(model, checkpoint)
        if not hasattr(model, 'set_class_semantics'):
            raise TypeError(
                f'{type(model).__name__} is not a zero-shot model: '
                'ZSLInferencer needs a model with set_class_semantics(), e.g. '
                'zeromamba_mm.ZeroShotClassifier.')
        self.model = model.to(device).eval()
        self.config = config
        self.checkpoint_meta = meta
        self.visualizer = None
        self.normalize_attributes = normalize_attributes
        if pipeline is None:
            if config is None:
                raise ValueError(
                    'The model has no config: pass pipeline=[...] (the test '
                    'pipeline) or build the inferencer from a config file.')
            try:
                pipeline = config.test_dataloader.dataset.pipeline
            except AttributeError as e:
                raise KeyError(
                    'The config has no test_dataloader.dataset.pipeline, '
                    'which ZSLInferencer uses to prepare images; pass '
                    'pipeline=[...].') from e
        self.pipeline = self._init_pipeline_from(pipeline)

        if class_attributes is None:
            dataset_meta = meta.get('dataset_meta') or {}
            if not isinstance(
                    dataset_meta.get('class_attributes'), np.ndarray):
                raise ValueError(
                    'No classes to score: give class_attributes (a .npy, .csv '
                    'or att_splits.mat file, or a (C, A) array); the '
                    'checkpoint has no meta.dataset_meta.class_attributes.')
            class_attributes = dataset_meta['class_attributes']
            class_names = class_names or dataset_meta.get('classes')
            if seen_classes is None:
                seen_classes = dataset_meta.get('seen_classes')
            attribute_names = attribute_names or dataset_meta.get(
                'attribute_names')
        self.set_classes(
            class_attributes,
            class_names=class_names,
            seen_classes=seen_classes,
            attribute_names=attribute_names)

    # ---------------------------------------------------------------- model
    @staticmethod
    def _read_config(model: Union[str, Path, Config]) -> Config:
        if isinstance(model, Config):
            config = copy.deepcopy(model)
        elif isinstance(model, (str, Path)):
            if not osp.isfile(str(model)):
                raise FileNotFoundError(f'Config file not found: {model}')
            config = Config.fromfile(str(model))
        else:
            raise TypeError('model must be a config path, a Config or a built '
                            f'model, got {type(model).__name__}.')
        if 'model' not in config:
            raise KeyError(f'The config {getattr(config, "filename", "")} has '
                           'no `model` entry.')
        return config

    @staticmethod
    def _build_model(config: Config) -> BaseModel:
        from mmpretrain.registry import MODELS
        model_cfg = _without_word_vectors(copy.deepcopy(config.model))
        # MMPretrain configs keep the data preprocessor at the top level.
        model_cfg.setdefault('data_preprocessor',
                             config.get('data_preprocessor', None))
        scope = config.get('default_scope', 'mmpretrain')
        with DefaultScope.overwrite_default_scope(scope):
            model = MODELS.build(model_cfg)
        model._config = config
        return model

    @staticmethod
    def _load_weights(model: BaseModel, checkpoint: str) -> dict:
        from zeromamba_mm.models.utils import strict_load_state_dict
        state_dict, meta = read_checkpoint(checkpoint)
        strict_load_state_dict(
            model,
            state_dict,
            source=str(checkpoint),
            hint='Is this checkpoint from the same config?')
        return meta

    def _init_pipeline(self, cfg: Config) -> Callable:
        return self._init_pipeline_from(cfg.test_dataloader.dataset.pipeline)

    @staticmethod
    def _init_pipeline_from(pipeline: Sequence) -> Callable:
        from mmpretrain.registry import TRANSFORMS
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return Compose([
                TRANSFORMS.build(t) if isinstance(t, Mapping) else t
                for t in _without_image_loading(pipeline)
            ])

    # -------------------------------------------------------------- classes
    @property
    def num_attributes(self) -> int:
        """The attribute dimension A of the model's head."""
        return int(self.model.head.num_attributes)

    @property
    def classes(self) -> Tuple[str, ...]:
        """Names of the classes scored, in score order."""
        return self.semantics.class_names

    @property
    def class_attributes(self) -> np.ndarray:
        """(C, A) attribute vectors of the scored classes (a copy)."""
        return self.semantics.attributes.copy()

    @property
    def seen_classes(self) -> Optional[np.ndarray]:
        """Ids of the classes seen in training, or None if unknown."""
        seen = self.semantics.seen_classes
        return None if seen is None else seen.copy()

    @property
    def attribute_names(self) -> Tuple[str, ...]:
        """Attribute names (``attr_i`` where unknown)."""
        return self.semantics.attribute_names or tuple(
            f'attr_{i}' for i in range(self.num_attributes))

    def set_classes(
            self,
            class_attributes: Union[str, Path, ArrayLike],
            class_names: Union[None, str, Sequence[str]] = None,
            seen_classes: Optional[ArrayLike] = None,
            attribute_names: Union[None, str, Sequence[str]] = None) -> None:
        """Replace the classes to score (see :func:`load_class_semantics`)."""
        semantics = load_class_semantics(
            class_attributes,
            class_names=class_names,
            seen_classes=seen_classes,
            attribute_names=attribute_names,
            normalize=self.normalize_attributes)
        self._apply(semantics)

    def add_classes(self, names: Union[str, Sequence[str]],
                    attributes: ArrayLike) -> None:
        """Add classes, e.g. never seen in training, by their attributes.

        Args:
            names (str | Sequence[str]): Name(s) of the new class(es).
            attributes (array): (A,) or (N, A) attribute vector(s), in the
                same units as the existing classes (normalised like them).
        """
        names = [names] if isinstance(names, str) else list(names)
        attributes = np.asarray(
            attributes.detach().cpu().numpy() if isinstance(
                attributes, torch.Tensor) else attributes,
            dtype=np.float64)
        if attributes.ndim == 1:
            attributes = attributes[None]
        if attributes.ndim != 2 or attributes.shape[0] != len(names):
            raise ValueError(
                f'{len(names)} class names were given with attributes of '
                f'shape {attributes.shape}: expected ({len(names)}, A).')
        clash = sorted(set(names) & set(self.classes))
        if clash:
            raise ValueError(f'Classes {clash[:5]} already exist; use '
                             'set_classes() to change them.')
        new = load_class_semantics(
            attributes, class_names=names, normalize=self.normalize_attributes)
        old = self.semantics
        if new.num_attributes != old.num_attributes:
            raise ValueError(
                f'The new classes have {new.num_attributes} attributes, the '
                f'model scores {old.num_attributes}.')
        self._apply(
            ClassSemantics(
                attributes=np.concatenate([old.attributes, new.attributes]),
                class_names=old.class_names + new.class_names,
                seen_classes=old.seen_classes,
                attribute_names=old.attribute_names,
                source=f'{old.source} + added classes'))

    def _apply(self, semantics: ClassSemantics) -> None:
        if semantics.num_attributes != self.num_attributes:
            raise ValueError(
                f'The class attributes of {semantics.source} have '
                f'{semantics.num_attributes} attributes per class, but the '
                f"model's head ({type(self.model.head).__name__}) was built "
                f'with num_attributes={self.num_attributes}.')
        unseen = None
        if semantics.seen_classes is not None:
            unseen = np.setdiff1d(
                np.arange(semantics.num_classes), semantics.seen_classes)
        self.model.set_class_semantics(
            semantics.attributes,
            seen_classes=semantics.seen_classes,
            unseen_classes=unseen,
            class_names=semantics.class_names)
        self.semantics = semantics

    # ------------------------------------------------------------ inference
    def __call__(self,
                 inputs: Union[ImageType, Sequence[ImageType]],
                 topk: int = 5,
                 batch_size: int = 1,
                 score_space: str = 'raw',
                 gamma: float = 0.0,
                 label_space: str = 'all',
                 channel_order: str = 'bgr',
                 return_datasamples: bool = False) -> List[dict]:
        """Classify images.

        Args:
            inputs (str | Path | np.ndarray | list): Image path(s) or uint8
                (H, W, 3) array(s).
            topk (int): How many classes to list per image. Defaults to 5.
            batch_size (int): Images per forward pass. Defaults to 1.
            score_space (str): ``'raw'`` compatibility scores ``Â · a_c``
                (default) or ``'softmax'`` probabilities over all classes.
            gamma (float): Calibrated stacking (Chao et al., 2016): subtract
                ``gamma`` from the seen classes' scores in ``score_space``
                (ZeroMamba: softmax with γ = 0.30 CUB, 0.35 SUN, 0.98 AWA2).
                Needs the seen classes. Defaults to 0.
            label_space (str): Rank ``'all'`` classes (GZSL), only the
                ``'unseen'`` ones (ZSL) or only the ``'seen'`` ones.
            channel_order (str): ``'bgr'`` or ``'rgb'``, the channel order of
                array inputs. Defaults to ``'bgr'``.
            return_datasamples (bool): Return the model's DataSamples
                (raw scores) instead of dicts. Defaults to False.

        Returns:
            list[dict]: Per image: ``pred_classes`` / ``pred_labels`` /
            ``pred_scores`` (the top-k, best first), ``pred_label`` /
            ``pred_class`` (the top-1), and ``scores`` (C,) float32, the
            scores of all classes in ``score_space`` after calibration.
        """
        self._check_postprocess_args(topk, score_space, gamma, label_space)
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(
                f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}."
            )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a positive int, got '
                             f'{batch_size!r}.')
        ori_inputs = self._inputs_to_list(inputs)
        for item in ori_inputs:  # fail before any forward pass
            self._check_input(item)
        preds = []
        for data in self.preprocess(
                ori_inputs, batch_size=batch_size,
                channel_order=channel_order):
            preds.extend(self.forward(data))
        return self.postprocess(
            preds, [],
            return_datasamples,
            topk=topk,
            score_space=score_space,
            gamma=gamma,
            label_space=label_space)

    def _inputs_to_list(self, inputs) -> list:
        if isinstance(inputs, Path):
            inputs = str(inputs)
        if isinstance(inputs, np.ndarray):
            return [inputs]
        return [
            str(x) if isinstance(x, Path) else x
            for x in super()._inputs_to_list(inputs)
        ]

    @staticmethod
    def _check_input(item) -> None:
        if isinstance(item, str):
            if not osp.isfile(item):
                raise FileNotFoundError(f'Image file not found: {item}')
        elif isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
                raise ValueError(
                    'Image arrays must be uint8 (H, W, 3); got dtype '
                    f'{item.dtype}, shape {item.shape}.')
        else:
            raise TypeError('Images must be file paths or numpy arrays, got '
                            f'{type(item).__name__}.')

    def _check_postprocess_args(self, topk, score_space, gamma,
                                label_space) -> None:
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f'topk must be a positive int, got {topk!r}.')
        if score_space not in SCORE_SPACES:
            raise ValueError(f'score_space must be one of {SCORE_SPACES}, got '
                             f'{score_space!r}.')
        if label_space not in LABEL_SPACES:
            raise ValueError(f'label_space must be one of {LABEL_SPACES}, got '
                             f'{label_space!r}.')
        needs_seen = gamma != 0 or label_space != 'all'
        if needs_seen and self.semantics.seen_classes is None:
            raise ValueError(
                f'gamma={gamma} / label_space={label_space!r} need the seen '
                'classes, which are unknown: pass seen_classes=[...] (ids or '
                'names), or an att_splits.mat with res101.mat beside it.')
        if label_space != 'all':
            seen = np.zeros(len(self.classes), dtype=bool)
            seen[self.semantics.seen_classes] = True
            if not (seen if label_space == 'seen' else ~seen).any():
                raise ValueError(f'label_space={label_space!r}: there are no '
                                 f'{label_space} classes.')

    def _read_image(self, item: ImageType, channel_order: str) -> np.ndarray:
        """Image -> uint8 (H, W, 3) BGR, as MMPretrain's pipelines expect."""
        if isinstance(item, np.ndarray):
            img = item if channel_order == 'bgr' else item[..., ::-1]
            return np.ascontiguousarray(img)
        import mmcv
        try:
            img = mmcv.imread(item, flag='color', channel_order='bgr')
        except Exception as e:
            raise ValueError(f'Cannot decode image {item}: {e}') from e
        if img is None:
            raise ValueError(f'Cannot decode image {item}: the file is '
                             'corrupt or not an image.')
        return img

    def prepare(self, item: ImageType, channel_order: str = 'bgr') -> dict:
        """One image through the test pipeline (the model input and meta)."""
        if channel_order not in ('bgr', 'rgb'):
            raise ValueError(
                f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}."
            )
        self._check_input(item)
        img = self._read_image(item, channel_order)
        return self.pipeline(
            dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2]))

    def preprocess(self,
                   inputs: List[ImageType],
                   batch_size: int = 1,
                   channel_order: str = 'bgr'):
        """Yield collated batches of prepared images."""
        chunks = self._get_chunk_data(
            (self.prepare(x, channel_order) for x in inputs), batch_size)
        yield from map(default_collate, chunks)

    def calibrate(self,
                  raw_scores: torch.Tensor,
                  score_space: str = 'raw',
                  gamma: float = 0.0) -> torch.Tensor:
        """Raw scores (B, C) -> scores in ``score_space`` minus γ on seen."""
        scores = raw_scores.float()
        if score_space == 'softmax':
            scores = scores.softmax(dim=-1)
        if gamma:
            scores = scores.clone()
            scores[:, torch.as_tensor(self.semantics.seen_classes)] -= gamma
        return scores

    def postprocess(
            self,
            preds: List[DataSample],
            visualization: List[np.ndarray],
            return_datasamples: bool = False,
            topk: int = 5,
            score_space: str = 'raw',
            gamma: float = 0.0,
            label_space: str = 'all') -> Union[List[dict], List[DataSample]]:
        """Rank the classes; see :meth:`__call__` for the result format."""
        if return_datasamples:
            return preds
        if not preds:
            return []
        raw = torch.stack([p.pred_score.detach().cpu() for p in preds])
        scores = self.calibrate(raw, score_space, gamma)
        ranked = scores.clone()
        if label_space != 'all':
            seen = torch.zeros(scores.shape[1], dtype=torch.bool)
            seen[torch.as_tensor(self.semantics.seen_classes)] = True
            ranked[:, seen if label_space == 'unseen' else ~seen] = -torch.inf
        k = min(topk, int(torch.isfinite(ranked[0]).sum()))
        top_scores, top_labels = ranked.topk(k, dim=1)
        results = []
        for row, values, labels in zip(scores, top_scores, top_labels):
            labels = labels.tolist()
            results.append({
                'pred_classes': [self.classes[i] for i in labels],
                'pred_labels': labels,
                'pred_scores': [float(v) for v in values],
                'pred_label': labels[0],
                'pred_class': self.classes[labels[0]],
                'scores': row.numpy().astype(np.float32),
            })
        return results

    def visualize(self, *args, **kwargs):
        """See :mod:`zeromamba_mm.visualization` for attention maps."""
        return None

    @staticmethod
    def list_models(pattern: Optional[str] = None):
        """There is no model zoo: build from a config and a checkpoint."""
        raise NotImplementedError(
            'ZSLInferencer has no model zoo; pass a config file and the '
            'checkpoint of a trained model.')
