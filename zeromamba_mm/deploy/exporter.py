"""Export a trained classifier to one self-contained, verified ONNX file.

:func:`export_onnx` builds the model from its config, loads the checkpoint
strictly (safe loading), sets the checkpoint's classes the way
:class:`~zeromamba_mm.apis.ZSLInferencer` does, records the graph of
:class:`~zeromamba_mm.deploy.exportable.ExportableClassifier` with
``torch.onnx`` (the selective scan switches to its loop-free form while
exporting), embeds the metadata of :mod:`zeromamba_mm.deploy.metadata`,
checks the file with ``onnx.checker`` and runs it with onnxruntime on fresh
inputs: a graph whose outputs differ from PyTorch's is refused with a
message and no file is written.
"""
import os
import os.path as osp
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from mmpretrain.apis import get_model

from zeromamba_mm.apis.images import pipeline_without_loading
from zeromamba_mm.apis.model_zoo import resolve_model
from zeromamba_mm.apis.zsl_inferencer import ZSLInferencer
from zeromamba_mm.checkpoint import load_model_weights
from zeromamba_mm.datasets.inference_semantics import semantics_for_inference
from zeromamba_mm.evaluation.operating_point import resolve_operating_point
from zeromamba_mm.structures.operating_point import OperatingPoint
from zeromamba_mm.utils.atomic_files import write_atomically

from .exportable import (ExportableClassifier, fresh_caches, frozen_decisions,
                         is_zero_shot)
from .metadata import FORMAT_VERSION, encode_metadata, load_onnx_model

#: ONNX opset of the exported graphs (CumSum, Einsum, ... are all older).
OPSET = 18
#: Largest accepted |onnxruntime - PyTorch| relative to max(1, |PyTorch|).
TOLERANCE = 1e-4


class ExportMismatchError(RuntimeError):
    """The exported graph does not reproduce the PyTorch model."""


def input_size(pipeline: list,
               shape: Optional[Sequence[int]]) -> Tuple[int, int, list]:
    """The (H, W) of the graph and the pipeline that produces it.

    The pipeline runs on two blank images of other aspect ratios; if both
    come out at one size, that is the size. ``shape`` overrides it by a
    final ``Resize`` (and is needed when the output size varies).
    """
    from mmengine.dataset import Compose
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import TRANSFORMS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        compose = Compose([TRANSFORMS.build(dict(t)) for t in pipeline])
    sizes = set()
    for h, w in ((300, 400), (410, 290)):
        img = np.zeros((h, w, 3), np.uint8)
        out = compose(dict(img=img, img_shape=(h, w), ori_shape=(h, w)))
        sizes.add(tuple(out['inputs'].shape[-2:]))
    if shape is not None:
        height, width = (int(s) for s in shape)
        if sizes != {(height, width)}:
            # Resize takes (w, h); PackInputs must stay last.
            pack = [t for t in pipeline if t['type'].endswith('PackInputs')]
            rest = [t for t in pipeline if t not in pack]
            pipeline = rest + [dict(type='Resize', scale=(width, height))
                               ] + pack
        return height, width, pipeline
    if len(sizes) != 1:
        raise ValueError(
            'The test pipeline gives images of varying size '
            f'({sorted(sizes)}); the graph has a static size: pass '
            '--shape H W.')
    height, width = sizes.pop()
    return height, width, pipeline


def load_classifier(config: str,
                    checkpoint: str,
                    cfg_options: Optional[dict] = None,
                    class_attributes=None):
    """Build the model, load its weights and (zero-shot) its classes.

    Returns:
        tuple: ``(model, cfg, meta, semantics)``; ``semantics`` is the
        :class:`~zeromamba_mm.structures.ClassSemantics` of a zero-shot model
        (None otherwise).
    """
    cfg, _ = resolve_model(config, False)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = get_model(cfg, pretrained=False, device='cpu')
    meta = load_model_weights(model, checkpoint)
    model.eval()
    if not is_zero_shot(model):
        return model, cfg, meta, None
    # The inferencer checks the classes against the head as PyTorch
    # inference does; the rule that picks them is semantics_for_inference.
    inferencer = ZSLInferencer(
        model,
        pretrained=False,
        device='cpu',
        class_attributes=semantics_for_inference(meta, checkpoint,
                                                 class_attributes))
    return model, cfg, meta, inferencer.semantics


def _metadata(model, meta: dict, wrapper, semantics, point: dict, height: int,
              width: int, pipeline: list, dynamic_batch: bool,
              source: dict) -> dict:
    pre = model.data_preprocessor
    mean = getattr(pre, 'mean', None)
    std = getattr(pre, 'std', None)
    values = dict(
        format_version=FORMAT_VERSION,
        kind='zsl' if wrapper.zero_shot else 'classifier',
        mode=wrapper.mode,
        input=dict(
            name='image',
            layout='NCHW float32, 0-255, channel order of the test '
            'pipeline output (BGR for image files)',
            height=height,
            width=width,
            dynamic_batch=dynamic_batch),
        pipeline=pipeline,
        mean_std=dict(
            mean=None if mean is None else mean.flatten().tolist(),
            std=None if std is None else std.flatten().tolist(),
            to_rgb=bool(getattr(pre, '_channel_conversion', False))),
        source=source)
    if wrapper.zero_shot:
        values.update(
            classes=list(semantics.class_names),
            class_attributes=np.asarray(wrapper.head.class_attributes.cpu(),
                                        np.float32).astype(float).tolist(),
            seen_classes=[int(i) for i in semantics.seen_classes]
            if semantics.seen_classes is not None else [],
            unseen_classes=[int(i) for i in semantics.unseen_classes]
            if semantics.unseen_classes is not None else [],
            attribute_names=(None if semantics.attribute_names is None else
                             list(semantics.attribute_names)),
            operating_point=point)
    else:
        dataset_meta = meta.get('dataset_meta') or {}
        classes = dataset_meta.get('classes') or [
            str(i) for i in range(int(model.head.num_classes))
        ]
        values.update(classes=list(classes))
    return values


def _example_inputs(wrapper,
                    height: int,
                    width: int,
                    batch: int,
                    seed: int,
                    extra_classes: int = 0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=generator) * 255
    if wrapper.mode != 'attributes':
        return (image, )
    matrix = wrapper.head.class_attributes.float()
    if extra_classes:
        new = torch.rand(extra_classes, matrix.shape[1], generator=generator)
        matrix = torch.cat([matrix, new])
    return image, matrix


def verify(path: str,
           wrapper,
           example_inputs: Sequence[tuple],
           tolerance: float = TOLERANCE) -> float:
    """Run the file with onnxruntime and compare with PyTorch.

    Returns:
        float: The largest relative deviation seen.

    Raises:
        ExportMismatchError: If an output deviates beyond ``tolerance``.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])
    worst = 0.0
    for inputs in example_inputs:
        with torch.no_grad():
            expected = wrapper(*inputs)
        expected = expected if isinstance(expected, tuple) else (expected, )
        feeds = {
            name: x.numpy().astype(np.float32)
            for name, x in zip(wrapper.input_names, inputs)
        }
        try:
            got = session.run(list(wrapper.output_names), feeds)
        except Exception as e:  # onnxruntime's own error types
            raise ExportMismatchError(
                'The exported graph fails in onnxruntime on inputs of shapes '
                f'{[tuple(x.shape) for x in inputs]}: {e}') from e
        for name, ref, out in zip(wrapper.output_names, expected, got):
            ref = ref.numpy()
            if ref.shape != out.shape:
                raise ExportMismatchError(
                    f'Output {name!r}: onnxruntime gives shape {out.shape}, '
                    f'PyTorch {ref.shape} for inputs of shapes '
                    f'{[tuple(x.shape) for x in inputs]}.')
            finite = np.isfinite(ref)
            if not np.array_equal(finite, np.isfinite(out)):
                raise ExportMismatchError(
                    f'Output {name!r}: non-finite values differ.')
            err = np.abs(ref[finite] - out[finite]).max(initial=0.0) / max(
                1.0,
                np.abs(ref[finite]).max(initial=0.0))
            worst = max(worst, float(err))
            if err > tolerance:
                raise ExportMismatchError(
                    f'Output {name!r} of the exported graph deviates from '
                    f'PyTorch by {err:.3g} (relative; tolerance '
                    f'{tolerance:g}) on inputs of shapes '
                    f'{[tuple(x.shape) for x in inputs]}: some part of the '
                    'model does not export exactly (data-dependent Python '
                    'control flow is recorded for the example input only).')
    return worst


def export_onnx(config: str,
                checkpoint: str,
                out: str,
                shape: Optional[Sequence[int]] = None,
                dynamic_batch: bool = False,
                mode: str = 'scores',
                cfg_options: Optional[dict] = None,
                class_attributes=None,
                tolerance: float = TOLERANCE) -> dict:
    """Export ``config`` + ``checkpoint`` to ``out`` (see module doc).

    Args:
        config (str): Config file.
        checkpoint (str): Checkpoint file.
        out (str): The ``.onnx`` file to write; must not exist.
        shape (Sequence[int], optional): (H, W) of the graph input; by
            default the size the test pipeline produces.
        dynamic_batch (bool): Leave the batch dimension free.
        mode (str): ``'scores'`` or ``'attributes'``.
        cfg_options (dict, optional): Config overrides.
        class_attributes (optional): Classes to store instead of the
            checkpoint's (a file or array, as for ``ZSLInferencer``).
        tolerance (float): Largest relative deviation from PyTorch.

    Returns:
        dict: ``out``, the metadata written and the deviation measured.
    """
    if osp.exists(out):
        raise FileExistsError(f'{out} exists; choose another --out path '
                              '(nothing is overwritten).')
    model, cfg, meta, semantics = load_classifier(config, checkpoint,
                                                  cfg_options,
                                                  class_attributes)
    # The operating point of tools/test.py and the inferencer: the
    # checkpoint's, else the config's test metric's.
    point = resolve_operating_point(
        cfg, meta, source=checkpoint) if is_zero_shot(model) else \
        OperatingPoint(0.0, 'softmax', selected_on='n/a (no zero-shot head)')
    wrapper = ExportableClassifier(model, mode, point.gamma,
                                   point.score_space).eval()
    height, width, pipeline = input_size(pipeline_without_loading(cfg), shape)
    values = _metadata(
        model, meta, wrapper, semantics, point.to_meta(), height, width,
        pipeline, dynamic_batch,
        dict(
            config=osp.basename(str(config)),
            checkpoint=osp.basename(str(checkpoint)),
            torch=torch.__version__))
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    deviation = []

    def write(tmp: str) -> None:
        deviation.append(
            _export_to(tmp, wrapper, values, height, width, dynamic_batch,
                       tolerance))

    # Written beside `out`, checked, then linked: never replaces a file.
    write_atomically(out, write, overwrite=False)
    return dict(out=out, metadata=values, deviation=deviation[0])


def _export_to(path: str, wrapper, values: dict, height: int, width: int,
               dynamic_batch: bool, tolerance: float) -> float:
    import onnx
    batch = 2 if dynamic_batch else 1
    # One class more than the head stores: torch.export would otherwise
    # read the number of classes from the stored matrix (same size).
    example = _example_inputs(wrapper, height, width, batch, 0, 1)
    # torch.export's dynamic dimensions: the batch (--dynamic-batch) and,
    # in 'attributes' mode, the number of classes scored.
    dims = [{0: torch.export.Dim('batch', min=1)} if dynamic_batch else {}]
    if wrapper.mode == 'attributes':
        dims.append({0: torch.export.Dim('classes', min=1)})
    with warnings.catch_warnings():
        # The exporter's progress notes are not for the user: verify()
        # below is the check that matters.
        warnings.simplefilter('ignore')
        with torch.no_grad(), frozen_decisions(wrapper.head), \
                fresh_caches(wrapper):
            _record(
                wrapper,
                example,
                path,
                dynamo=True,
                # onnxruntime optimises the graph when it loads it; the
                # exporter's own pass costs several times the export.
                optimize=False,
                external_data=False,
                verbose=False,
                opset_version=OPSET,
                input_names=list(wrapper.input_names),
                output_names=list(wrapper.output_names),
                dynamic_shapes=tuple(dims))
    model = onnx.load(path)
    for key, value in encode_metadata(values).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    load_onnx_model(path)
    checks = [example, _example_inputs(wrapper, height, width, batch, 1, 2)]
    if dynamic_batch:
        checks.append(_example_inputs(wrapper, height, width, 3, 2, 1))
    return verify(path, wrapper, checks, tolerance)


def _record(wrapper, example, path: str, **kwargs) -> None:
    """``torch.onnx.export``, with its failures told as export errors."""
    try:
        torch.onnx.export(wrapper, example, path, **kwargs)
    except Exception as e:  # torch.export's many error types
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        where = [ln.strip() for ln in lines if ln.strip().startswith('File')]
        raise ExportMismatchError(
            'torch.onnx could not record the model as a static graph: '
            f'{type(e).__name__}: {lines[0] if lines else e}' +
            (f' (at {where[-1]})' if where else '') + '. Data-dependent '
            'Python control flow (if/for on tensor values) cannot be '
            'exported exactly; make the branch depend on shapes or '
            'constants only.') from e
