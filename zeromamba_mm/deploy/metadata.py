"""What an exported ONNX file carries besides its graph, and its checks.

Everything the runtime needs is stored in the file's ``metadata_props``
(string key/value pairs of the ONNX ``ModelProto``), as JSON under the keys
of :data:`METADATA_KEYS`, so that an ``.onnx`` file is all a deployment
needs: no config, no checkpoint. :func:`read_deployed_model` reads and
checks a file; every failure is a :class:`DeployedModelError` that names
the file and says how to fix it.
"""
import json
import os.path as osp
from typing import Any, Dict, List, Optional

#: Version of the metadata layout written by this code.
FORMAT_VERSION = 1
#: Prefix of every metadata key.
PREFIX = 'zeromamba_mm.'
#: Output modes (see docs/deploy.md): calibrated class scores, or the head's
#: attribute prediction with a class-attribute matrix as a second input.
MODES = ('scores', 'attributes')
#: Model kinds: a zero-shot classifier (attribute head) or a plain
#: ImageClassifier over a fixed set of classes (backbone configs).
KINDS = ('zsl', 'classifier')
#: Keys (without :data:`PREFIX`) and what they hold. Keys marked required
#: must be in every file; the others belong to zero-shot models.
METADATA_KEYS = {
    'format_version': 'layout version of this metadata (int)',
    'kind': "'zsl' or 'classifier'",
    'mode': "'scores' or 'attributes'",
    'input': 'name, layout, height, width, dynamic_batch of the image input',
    'pipeline': 'test pipeline (mmpretrain transforms, without loading)',
    'classes': 'class names, in score order',
    'source': 'config and checkpoint the file was exported from',
    'class_attributes': '(C, A) class-attribute matrix as the head uses it',
    'seen_classes': 'ids of the classes seen in training',
    'unseen_classes': 'ids of the other classes',
    'attribute_names': 'names of the A attributes (may be null)',
    'operating_point': 'gamma, score_space and where they come from',
    'mean_std': 'normalisation in the graph: mean, std, to_rgb',
}
REQUIRED_KEYS = ('format_version', 'kind', 'mode', 'input', 'pipeline',
                 'classes', 'source', 'mean_std')
ZSL_KEYS = ('class_attributes', 'seen_classes', 'unseen_classes',
            'attribute_names', 'operating_point')


class DeployedModelError(ValueError):
    """An ONNX file that cannot be used as an exported zeromamba_mm model."""


def encode_metadata(values: Dict[str, Any]) -> Dict[str, str]:
    """JSON-encode ``values`` under their prefixed metadata keys.

    Args:
        values (dict): Values by key of :data:`METADATA_KEYS`.

    Returns:
        dict[str, str]: ``{PREFIX + key: json}``.
    """
    unknown = sorted(set(values) - set(METADATA_KEYS))
    if unknown:
        raise KeyError(f'Unknown metadata keys {unknown}; known: '
                       f'{sorted(METADATA_KEYS)}')
    return {PREFIX + k: json.dumps(v) for k, v in values.items()}


def _fail(path: str, message: str) -> DeployedModelError:
    return DeployedModelError(f'{path}: {message}')


def load_onnx_model(path: str):
    """Parse and check an ONNX file (``onnx.load`` + ``onnx.checker``).

    Args:
        path (str): The ``.onnx`` file.

    Returns:
        onnx.ModelProto: The parsed model.

    Raises:
        FileNotFoundError: If the file does not exist.
        DeployedModelError: If it is not a valid ONNX model.
    """
    import onnx
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'ONNX file not found: {path} (export one with '
            'tools/deployment/pytorch2onnx.py CONFIG CKPT --out FILE).')
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model)
    except Exception as e:  # protobuf DecodeError, ValidationError, ...
        raise _fail(
            path, f'not a valid ONNX model ({type(e).__name__}: '
            f'{str(e).strip()[:300]}); re-export it with '
            'tools/deployment/pytorch2onnx.py.') from e
    return model


def read_metadata(model, path: str) -> Dict[str, Any]:
    """The decoded and checked metadata of a parsed ONNX model.

    Args:
        model (onnx.ModelProto): The parsed model.
        path (str): Its file, named in errors.

    Returns:
        dict: Values by key of :data:`METADATA_KEYS`.
    """
    props = {p.key: p.value for p in model.metadata_props}
    fix = ('export the model with tools/deployment/pytorch2onnx.py CONFIG '
           'CKPT --out FILE, which writes this metadata')
    if not any(k.startswith(PREFIX) for k in props):
        raise _fail(
            path, 'the file has no zeromamba_mm metadata (keys '
            f'{PREFIX}*): it was not exported by this package; {fix}.')
    values = {}
    for key, raw in props.items():
        if not key.startswith(PREFIX):
            continue
        try:
            values[key[len(PREFIX):]] = json.loads(raw)
        except ValueError as e:
            raise _fail(path, f'metadata {key} is not valid JSON ({e}); '
                        f'{fix}.') from e
    version = values.get('format_version')
    if version != FORMAT_VERSION:
        raise _fail(
            path, f'metadata {PREFIX}format_version is {version!r}, this '
            f'version of zeromamba_mm reads {FORMAT_VERSION}; re-export the '
            'model with this version.')
    kind = values.get('kind')
    required = REQUIRED_KEYS + (ZSL_KEYS if kind == 'zsl' else ())
    missing = [PREFIX + k for k in required if k not in values]
    if missing:
        raise _fail(path, f'missing metadata {missing}; {fix}.')
    if kind not in KINDS or values['mode'] not in MODES:
        raise _fail(
            path, f'metadata kind={kind!r}, mode={values["mode"]!r}; '
            f'expected kind in {KINDS} and mode in {MODES}; {fix}.')
    if kind == 'zsl':
        _check_zsl(values, path)
    return values


def _check_zsl(values: Dict[str, Any], path: str) -> None:
    """Shapes of the class metadata of a zero-shot model agree."""
    matrix = values['class_attributes']
    names = values['classes']
    rows = len(matrix) if isinstance(matrix, list) else -1
    if rows < 1 or any(not isinstance(r, list) or len(r) != len(matrix[0])
                       for r in matrix):
        raise _fail(
            path, f'metadata {PREFIX}class_attributes is not a (C, A) '
            'matrix; re-export the model.')
    if len(names) != rows:
        raise _fail(
            path, f'metadata has {len(names)} class names for {rows} rows '
            f'of {PREFIX}class_attributes; re-export the model.')
    ids = list(values['seen_classes']) + list(values['unseen_classes'])
    if any(not isinstance(i, int) or not 0 <= i < rows for i in ids):
        raise _fail(
            path, f'metadata seen/unseen class ids must be in [0, {rows}); '
            're-export the model.')


def check_mode(values: Dict[str, Any], path: str,
               wanted: Optional[str]) -> None:
    """Fail if the file was exported in another mode than ``wanted``.

    Args:
        values (dict): The file's metadata.
        path (str): The file.
        wanted (str, optional): The mode the caller needs; None accepts any.
    """
    if wanted is None or values['mode'] == wanted:
        return
    raise _fail(
        path, f'exported with --mode {values["mode"]}, but mode {wanted!r} '
        f'is needed here; re-export with tools/deployment/pytorch2onnx.py '
        f'... --mode {wanted}.')


def input_names(model) -> List[str]:
    """Names of the graph inputs that are not initializers."""
    init = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in init]
