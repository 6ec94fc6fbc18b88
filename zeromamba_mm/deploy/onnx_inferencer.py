"""Zero-shot inference on an exported ONNX file with onnxruntime.

:class:`ONNXZSLInferencer` is :class:`~zeromamba_mm.apis.ZSLInferencer`
with onnxruntime in place of PyTorch: the same image loading and test
pipeline (stored in the file), the same ranking (score space, γ, label
space) and the same result dicts. It needs only the ``.onnx`` file written
by ``tools/deployment/pytorch2onnx.py``.

Example::

    >>> from zeromamba_mm.deploy import ONNXZSLInferencer
    >>> inferencer = ONNXZSLInferencer('demo.onnx')
    >>> inferencer('demo.jpg', **inferencer.operating_point)[0]['pred_class']
"""
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from zeromamba_mm.apis.zsl_inferencer import ZSLInferencer
from zeromamba_mm.structures.class_semantics import ClassSemantics
from zeromamba_mm.structures.operating_point import OperatingPoint
from .metadata import (DeployedModelError, check_mode, input_names,
                       load_onnx_model, read_metadata)

__all__ = ['ONNXZSLInferencer']


def _tuples(value):
    """JSON lists back to the tuples the transform configs were written
    with (e.g. ``Resize(scale=(w, h))``)."""
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_tuples(v) for v in value]
        return tuple(items) if all(isinstance(v, (int, float))
                                   for v in items) else items
    return value


def exported_operating_point(stored: dict, onnx_file: str) -> OperatingPoint:
    """The operating point kept in the file (its checkpoint's); files of
    format 1 wrote ``source`` where points now have ``selected_on``."""
    if 'source' in stored and 'selected_on' not in stored:
        stored = dict(
            gamma=stored['gamma'],
            score_space=stored['score_space'],
            protocol=stored.get('protocol', 'paper'),
            selected_on=stored['source'])
    return OperatingPoint.from_meta(
        stored, source=f'{onnx_file} metadata operating_point')


class ONNXZSLInferencer(ZSLInferencer):
    """Classify images with an exported zero-shot model (onnxruntime).

    Args:
        onnx_file (str): The ``.onnx`` file.
        class_attributes (str | array, optional): Classes to score instead
            of the file's (``'attributes'`` mode only), as for
            :class:`~zeromamba_mm.apis.ZSLInferencer`.
        class_names (str | Sequence[str], optional): Their names.
        seen_classes (Sequence[int | str], optional): Ids or names of the
            training classes among them.
        attribute_names (Sequence[str], optional): Attribute names.
        normalize_attributes (bool): L2-normalise class rows given here or
            to :meth:`add_classes`. Defaults to True.
        mode (str, optional): The export mode the caller needs
            (``'scores'`` or ``'attributes'``); None accepts either.
        num_threads (int, optional): onnxruntime intra-op threads (default:
            onnxruntime's choice, all cores).
    """

    def __init__(self,
                 onnx_file: str,
                 class_attributes=None,
                 class_names: Union[None, str, Sequence[str]] = None,
                 seen_classes=None,
                 attribute_names: Union[None, str, Sequence[str]] = None,
                 normalize_attributes: bool = True,
                 mode: Optional[str] = None,
                 num_threads: Optional[int] = None) -> None:
        import onnxruntime as ort
        self.onnx_file = str(onnx_file)
        proto = load_onnx_model(self.onnx_file)
        self.metadata = read_metadata(proto, self.onnx_file)
        check_mode(self.metadata, self.onnx_file, mode)
        if self.metadata['kind'] != 'zsl':
            raise DeployedModelError(
                f'{self.onnx_file}: a plain classifier (backbone config) '
                'with fixed classes, not a zero-shot model; run it with '
                'onnxruntime.InferenceSession (output "scores", the softmax '
                'over metadata zeromamba_mm.classes).')
        self.mode = self.metadata['mode']
        expected = ['image'] + (['class_attributes']
                                if self.mode == 'attributes' else [])
        if input_names(proto) != expected:
            raise DeployedModelError(
                f'{self.onnx_file}: graph inputs {input_names(proto)} do not '
                f'match --mode {self.mode} (expected {expected}); re-export '
                'with tools/deployment/pytorch2onnx.py.')
        options = ort.SessionOptions()
        # Errors only: its notes on graph optimisations are not for users.
        options.log_severity_level = 3
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        self.session = ort.InferenceSession(
            self.onnx_file, options, providers=['CPUExecutionProvider'])
        size = self.metadata['input']
        self.input_hw = (int(size['height']), int(size['width']))
        self.dynamic_batch = bool(size['dynamic_batch'])
        # What BaseInferencer.__init__ would set up from a torch model.
        self.model = None
        self.visualizer = None
        self.config = Config(
            dict(
                test_dataloader=dict(
                    dataset=dict(
                        pipeline=_tuples(self.metadata['pipeline'])))))
        self.pipeline = self._init_pipeline(self.config)
        self.checkpoint_meta = {}
        self.gamma_given = False
        self.operating_point = exported_operating_point(
            self.metadata['operating_point'], self.onnx_file)
        self.normalize_attributes = normalize_attributes
        stored = ClassSemantics(
            attributes=np.asarray(self.metadata['class_attributes'],
                                  np.float32),
            class_names=tuple(self.metadata['classes']),
            seen_classes=(np.asarray(self.metadata['seen_classes'], np.int64)
                          if self.metadata['seen_classes'] else None),
            attribute_names=(None if self.metadata['attribute_names'] is None
                             else tuple(self.metadata['attribute_names'])),
            # Not in the metadata: added classes are normalised as asked.
            normalization='l2' if normalize_attributes else 'none',
            source=self.onnx_file)
        if class_attributes is None:
            # As exported: the matrix is already as the head uses it.
            self._apply(stored)
        else:
            self.set_classes(class_attributes, class_names, seen_classes,
                             attribute_names or stored.attribute_names)

    @property
    def num_attributes(self) -> int:
        """The attribute dimension A of the exported head."""
        return len(self.metadata['class_attributes'][0])

    def _apply(self, semantics: ClassSemantics) -> None:
        if semantics.num_attributes != self.num_attributes:
            raise ValueError(
                f'The class attributes of {semantics.source} have '
                f'{semantics.num_attributes} attributes per class, but the '
                f'model in {self.onnx_file} predicts {self.num_attributes}.')
        if self.mode == 'scores' and hasattr(self, 'semantics'):
            raise DeployedModelError(
                f'{self.onnx_file} was exported with --mode scores: its '
                'classes are fixed in the graph. Re-export with --mode '
                'attributes to add or change classes.')
        self.semantics = semantics

    def _run(self, images: np.ndarray) -> List[np.ndarray]:
        feeds = {'image': images}
        if self.mode == 'attributes':
            feeds['class_attributes'] = self.semantics.attributes.astype(
                np.float32)
        return self.session.run(None, feeds)

    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> List[DataSample]:
        """Raw scores of all classes and, in ``'attributes'`` mode,
        ``pred_attributes``, as :meth:`ZSLInferencer.forward` gives them.
        """
        inputs = data['inputs']
        images = (torch.stack(inputs) if isinstance(inputs, (list, tuple)) else
                  inputs).float().numpy()
        if tuple(images.shape[-2:]) != self.input_hw:
            raise DeployedModelError(
                f'{self.onnx_file} takes {self.input_hw[0]}x'
                f'{self.input_hw[1]} images (static shape), but the pipeline '
                f'gave {images.shape[-2]}x{images.shape[-1]}; re-export with '
                '--shape H W for this size.')
        step = len(images) if self.dynamic_batch else 1
        outputs = [
            self._run(images[i:i + step]) for i in range(0, len(images), step)
        ]
        names = [o.name for o in self.session.get_outputs()]
        merged = {
            name: np.concatenate([o[k] for o in outputs])
            for k, name in enumerate(names)
        }
        preds = []
        for i in range(len(images)):
            raw = torch.from_numpy(merged['raw_scores'][i])
            pred = DataSample().set_pred_score(raw).set_pred_label(
                raw.argmax(dim=0, keepdim=True))
            if 'attributes' in merged:
                pred.set_field(
                    torch.from_numpy(merged['attributes'][i]),
                    'pred_attributes',
                    dtype=None)
            preds.append(pred)
        return preds
