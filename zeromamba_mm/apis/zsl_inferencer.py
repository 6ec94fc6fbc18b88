"""Zero-shot inference with a trained model, as an MMPretrain inferencer.

A zero-shot model predicts an attribute vector ``Â`` per image and scores any
class by its attribute vector ``a_c`` (``s(x, c) = Â · a_c``), so the classes
are an *input* of inference: a class-attribute file (see
:func:`~zeromamba_mm.datasets.load_class_semantics`), an array, or the
dataset metainfo that MMEngine stores in its checkpoints. Classes never seen
in training can be added at any time with :meth:`ZSLInferencer.add_classes`.
Classes are ranked at the checkpoint's operating point, as ``tools/test.py``
scores them.

Example::

    >>> from zeromamba_mm.apis import ZSLInferencer
    >>> inferencer = ZSLInferencer(
    ...     'configs/zeromamba_demo.py', pretrained='work_dirs/demo/best.pth',
    ...     class_attributes='data/zsl_demo/att_splits.mat')
    >>> inferencer('demo.jpg', topk=3, show_dir='vis/')[0]['pred_class']
    'red_circle_plain_small_left_dark'
"""
import os.path as osp
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.model import BaseModel
from mmengine.registry import DefaultScope
from mmpretrain.apis import get_model
from mmpretrain.apis.base import BaseInferencer
from mmpretrain.registry import TRANSFORMS
from mmpretrain.structures import DataSample

from zeromamba_mm.checkpoint import load_model_weights
from zeromamba_mm.datasets.class_semantics import load_class_semantics
from zeromamba_mm.datasets.inference_semantics import \
    semantics_for_inference
from zeromamba_mm.models.utils.semantics_adapter import \
    set_model_class_semantics
from zeromamba_mm.structures.class_semantics import ClassSemantics
from zeromamba_mm.evaluation.operating_point import resolve_operating_point
from zeromamba_mm.structures.operating_point import OperatingPoint
from zeromamba_mm.visualization.zsl_visualizer import ZSLVisualizer
from .images import (ImageType, check_batch_size, check_new_classes,
                     list_images, load_image, pipeline_without_loading)
from .model_zoo import list_plugin_models, resolve_model
from .ranking import LABEL_SPACES, rank_classes

__all__ = ['ZSLInferencer', 'LABEL_SPACES', 'list_images']


class ZSLInferencer(BaseInferencer):
    """Classify images among classes described by attribute vectors.

    Built on MMPretrain's :class:`~mmpretrain.apis.BaseInferencer`: the model
    comes from :func:`mmpretrain.apis.get_model` (a model name of
    :meth:`list_models`, a config file or a :obj:`Config`), the test pipeline
    from the config (without ``LoadImageFromFile``), and ``__call__`` passes
    its keyword arguments to :meth:`preprocess`, :meth:`visualize` and
    :meth:`postprocess`. Weights are read by
    :func:`zeromamba_mm.utils.safe_load.load_torch_file` (nothing in the file
    is run) and loaded strictly.

    Args:
        model (str | Config | BaseModel): A model name, a config path or
            :obj:`Config`, or a built model (``ZeroShotClassifier`` or an
            ``ImageClassifier`` with an attribute head).
        pretrained (str | bool): The trained weights. ``True`` (default)
            takes the config's ``load_from``; ``False`` keeps an untrained
            model. A local path is needed for a model name: the release files
            cannot be downloaded.
        device (str | torch.device, optional): Defaults to CUDA if available.
        class_attributes (str | Path | array | ClassSemantics, optional):
            The classes to score (``.npy``/``.csv``/xlsa17 ``att_splits.mat``,
            a (C, A) array, or a ClassSemantics taken as it is).
            Defaults to the classes the checkpoint was tested on
            (``meta['zsl_class_semantics']``, used as stored: the rows the
            model was trained with), else (older checkpoints) the training
            classes in ``meta['dataset_meta']``.
        class_names (str | Sequence[str], optional): Class names (a list or a
            text file). Defaults to the file's.
        seen_classes (Sequence[int | str], optional): Ids or names of the
            training classes, needed for ``gamma`` and ``label_space``.
        attribute_names (str | Sequence[str], optional): Attribute names (in
            pictures). Defaults to the file's or the dataset metainfo's.
        normalize_attributes (bool): L2-normalise the rows of
            ``class_attributes`` (the xlsa17 ``att`` convention). Classes
            added by :meth:`add_classes` get the normalisation of the classes
            scored. Defaults to True.
        checkpoint (str, optional): Alias of ``pretrained``.
        gamma (float, optional): Overrides the γ of :attr:`operating_point`
            (the checkpoint's, else the config's test metric's).
        score_space (str, optional): Overrides its score space.
        operating_point_overrides_by (str): Named in ``selected_on``.
        **kwargs: Model config overrides, as in ``get_model``.

    Arrays are ``uint8`` (H, W, 3) images, **BGR** as ``mmcv.imread`` reads
    files (``channel_order='rgb'`` for arrays from PIL or matplotlib).
    """

    preprocess_kwargs: set = {'channel_order'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {
        'show', 'show_dir', 'wait_time', 'resize', 'rescale_factor',
        'draw_score', 'topk_attributes', 'topk', 'score_space', 'gamma',
        'label_space', 'channel_order'
    }
    postprocess_kwargs: set = {'topk', 'score_space', 'gamma', 'label_space'}

    def __init__(self,
                 model: Union[str, Path, Config, BaseModel],
                 pretrained: Union[bool, str, Path] = True,
                 device: Union[str, torch.device, None] = None,
                 class_attributes=None,
                 class_names: Union[None, str, Sequence[str]] = None,
                 seen_classes=None,
                 attribute_names: Union[None, str, Sequence[str]] = None,
                 normalize_attributes: bool = True,
                 checkpoint: Optional[str] = None,
                 gamma: Optional[float] = None,
                 score_space: Optional[str] = None,
                 operating_point_overrides_by: str = 'keyword arguments',
                 **kwargs) -> None:
        if checkpoint is not None:
            if pretrained not in (True, checkpoint):
                raise ValueError('Give the weights once: pretrained= or its '
                                 f'alias checkpoint=, not both ({pretrained!r}'
                                 f' and {checkpoint!r}).')
            pretrained = checkpoint
        if isinstance(model, BaseModel):
            if getattr(model, '_config', None) is None:
                raise ValueError(
                    'The built model has no `_config` (set model._config = '
                    'Config(...) with test_dataloader.dataset.pipeline) or '
                    'build the inferencer from a config file.')
            built = model
        else:
            config, weights = resolve_model(model, pretrained)
            pretrained = weights
            built = get_model(config, pretrained=False, **kwargs)
        meta = {}
        if isinstance(pretrained, (str, Path)):
            meta = load_model_weights(built, str(pretrained))
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        super().__init__(built, pretrained=False, device=device)
        self.checkpoint_meta = meta
        self.normalize_attributes = normalize_attributes
        self._apply(
            semantics_for_inference(
                dict(meta, dataset_meta=meta.get('dataset_meta') or getattr(
                    self.model, '_dataset_meta', None)),
                str(pretrained) if pretrained else 'the model', class_attributes,
                class_names, seen_classes, attribute_names,
                normalize_attributes))
        #: γ and score space of :meth:`rank`; ``gamma_given``: by the caller.
        self.gamma_given = gamma is not None
        self.operating_point: OperatingPoint = resolve_operating_point(
            getattr(self.model, '_config', None) or self.cfg,
            meta,
            source=(str(pretrained) if isinstance(pretrained, (str, Path)) else
                    'the model (no checkpoint)'),
            gamma=gamma,
            score_space=score_space,
            overridden_by=operating_point_overrides_by)

    def set_operating_point(self,
                            gamma: Optional[float] = None,
                            score_space: Optional[str] = None,
                            by: str = 'keyword arguments') -> None:
        """Override γ and/or the score space of :attr:`operating_point`."""
        self.gamma_given = self.gamma_given or gamma is not None
        self.operating_point = self.operating_point.with_overrides(
            gamma, score_space, by=by)

    def _init_pipeline(self, cfg: Config) -> Callable:
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            return Compose(
                [TRANSFORMS.build(t) for t in pipeline_without_loading(cfg)])

    # -------------------------------------------------------------- classes
    @property
    def num_attributes(self) -> int:
        """The attribute dimension A of the model's head."""
        return int(self.model.head.num_attributes)

    @property
    def classes(self):
        """Names of the classes scored, in score order."""
        return self.semantics.class_names

    @property
    def class_attributes(self) -> np.ndarray:
        """(C, A) attribute vectors of the scored classes (a copy)."""
        return self.semantics.attributes.copy()

    @property
    def seen_classes(self) -> Optional[np.ndarray]:
        """Ids of the classes seen in training (None if unknown)."""
        seen = self.semantics.seen_classes
        return None if seen is None else seen.copy()

    @property
    def attribute_names(self):
        """Attribute names (``attr_<i>`` where unknown)."""
        return self.semantics.attribute_names or tuple(
            f'attr_{i}' for i in range(self.num_attributes))

    def set_classes(self,
                    class_attributes,
                    class_names=None,
                    seen_classes=None,
                    attribute_names=None) -> None:
        """Replace the classes to score (see ``load_class_semantics``; a
        :class:`ClassSemantics` is taken as it is)."""
        if isinstance(class_attributes, ClassSemantics):
            return self._apply(class_attributes)
        self._apply(
            load_class_semantics(
                class_attributes,
                class_names=class_names,
                seen_classes=seen_classes,
                attribute_names=attribute_names,
                normalize=self.normalize_attributes))

    def add_classes(self, names: Union[str, Sequence[str]],
                    attributes) -> None:
        """Add classes, e.g. never seen in training, by their attributes.

        Args:
            names (str | Sequence[str]): Name(s) of the new class(es):
                non-empty, distinct, and not a name already scored.
            attributes (array): (A,) or (N, A) raw attribute vector(s), in
                the units of the class file; they get the normalisation
                recorded for the scored classes (``semantics.normalization``).
                A is the model's ``num_attributes``.

        Raises:
            ValueError: on an empty or repeated name, or attributes of
                another shape, naming the name or the expected count.
        """
        names, attributes = check_new_classes(names, attributes,
                                              self.num_attributes,
                                              self.classes)
        old = self.semantics
        added = np.arange(old.num_classes, old.num_classes + len(names))
        unseen = (None if old.unseen_classes is None else np.concatenate(
            [old.unseen_classes, added]))
        # New rows get the normalisation of the classes scored so far.
        self._apply(
            old.replace(
                attributes=np.concatenate(
                    [old.attributes, old.normalize_new_rows(attributes)]),
                class_names=old.class_names + tuple(names),
                unseen_classes=unseen,
                source=f'{old.source} + added classes'))

    def _apply(self, semantics: ClassSemantics) -> None:
        if semantics.num_attributes != self.num_attributes:
            raise ValueError(
                f'The class attributes of {semantics.source} have '
                f'{semantics.num_attributes} attributes per class, but the '
                f"model's head ({type(self.model.head).__name__}) was built "
                f'with num_attributes={self.num_attributes}.')
        set_model_class_semantics(self.model, semantics)
        self.semantics = semantics

    # ------------------------------------------------------------ inference
    def _inputs_to_list(self, inputs) -> list:
        """A directory becomes its image files, sorted (not every file)."""
        if isinstance(inputs, (str, Path)) and osp.isdir(str(inputs)):
            return list_images(str(inputs))
        return super()._inputs_to_list(inputs)

    def prepare(self, item: ImageType, channel_order: str = 'bgr') -> dict:
        """One image through the test pipeline (model input and meta)."""
        img = load_image(item, channel_order)
        return self.pipeline(
            dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2]))

    def __call__(self,
                 inputs,
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs):
        """Classify ``inputs`` (see mmpretrain's ``BaseInferencer``).

        Args:
            inputs: An image (path or array), a list of them, or a
                directory (its image files, sorted).
            return_datasamples (bool): Return ``DataSample`` objects instead
                of dicts. Defaults to False.
            batch_size (int): Images per forward pass, >= 1. Defaults to 1.
            **kwargs: Arguments of :meth:`preprocess`, :meth:`visualize` and
                :meth:`postprocess`.
        """
        check_batch_size(batch_size)
        return super().__call__(
            inputs, return_datasamples, batch_size=batch_size, **kwargs)

    def preprocess(self,
                   inputs: List[ImageType],
                   batch_size: int = 1,
                   channel_order: str = 'bgr'):
        """Yield collated batches of prepared images."""
        check_batch_size(batch_size)
        chunks = self._get_chunk_data(
            (self.prepare(x, channel_order) for x in inputs), batch_size)
        yield from map(default_collate, chunks)

    @torch.no_grad()
    def forward(self, data: dict, **kwargs) -> List[DataSample]:
        """Raw scores of all classes, plus ``pred_attributes`` (``Â``) and,
        for heads with attention (ZeroMamba's SLP, DRMN), the attention maps:
        all from one pass of the head (``head.predict``)."""
        data = self.model.data_preprocessor(data, False)
        feats = self.model.extract_feat(data['inputs'])
        preds = self.model.head.predict(feats, data.get('data_samples'))
        for pred in preds:
            for name in ('pred_attributes', 'attention_maps'):
                if name in pred:
                    pred.set_field(
                        pred.get(name).float().cpu(), name, dtype=None)
        return preds

    def rank(self,
             preds: List[DataSample],
             topk: int = 5,
             score_space: Optional[str] = None,
             gamma: Optional[float] = None,
             label_space: str = 'all'):
        """Scores (N, C), top-k labels (N, k): :func:`.rank_classes`."""
        point = self.operating_point
        raw = torch.stack([p.pred_score.detach().float().cpu()
                           for p in preds]).numpy()
        return rank_classes(
            raw,
            self.semantics.seen_classes,
            self.semantics.unseen_classes,
            point.gamma if gamma is None else gamma,
            point.score_space if score_space is None else score_space,
            topk=topk,
            label_space=label_space,
            gamma_needs_seen=gamma is not None or self.gamma_given)

    def visualize(self,
                  ori_inputs: list,
                  preds: List[DataSample],
                  show: bool = False,
                  show_dir: Optional[str] = None,
                  wait_time: float = 0,
                  resize: Optional[int] = None,
                  rescale_factor: Optional[float] = None,
                  draw_score: bool = True,
                  topk_attributes: int = 6,
                  channel_order: str = 'bgr',
                  **rank_kwargs) -> Optional[List[np.ndarray]]:
        """Draw the top-k classes (and SLP's attention maps) per image with
        :class:`~zeromamba_mm.visualization.ZSLVisualizer`; save PNGs to
        ``show_dir`` (never overwriting) or show them."""
        if not show and show_dir is None:
            return None
        if self.visualizer is None:
            self.visualizer = ZSLVisualizer.get_instance(
                f'zsl_inferencer_{id(self)}')
        self.visualizer.dataset_meta = dict(
            classes=self.classes,
            attribute_names=self.attribute_names,
            seen_classes=self.semantics.seen_classes)
        scores, top = self.rank(preds, **rank_kwargs)
        drawn = []
        for i, (item, pred) in enumerate(zip(ori_inputs, preds)):
            name = Path(item).stem if isinstance(item, (str, Path)) else str(i)
            inputs = self.prepare(item, channel_order)['inputs']
            # The model's view (after the pipeline) lines up with the maps.
            image = inputs.permute(1, 2, 0).numpy().astype(np.uint8)[..., ::-1]
            sample = pred.clone().set_pred_label(torch.from_numpy(
                top[i])).set_pred_score(torch.from_numpy(scores[i]))
            out_file = None
            if show_dir is not None:
                out_file = self.visualizer.unique_file(show_dir, name)
            drawn.append(
                self.visualizer.visualize_cls(
                    np.ascontiguousarray(image),
                    sample,
                    draw_gt=False,
                    draw_score=draw_score,
                    resize=resize,
                    rescale_factor=rescale_factor,
                    show=show,
                    wait_time=wait_time,
                    out_file=out_file,
                    name=name,
                    topk_attributes=topk_attributes))
        return drawn

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False,
                    **rank_kwargs) -> Union[List[dict], List[DataSample]]:
        """Per image (as mmpretrain's ``ImageClassificationInferencer``):
        ``pred_scores`` (C,) calibrated scores, ``pred_label``,
        ``pred_score``, ``pred_class``; plus ``topk_labels``,
        ``topk_classes``, ``topk_scores`` (best first)."""
        if return_datasamples:
            return preds
        if not preds:
            return []
        scores, top = self.rank(preds, **rank_kwargs)
        results = []
        for row, labels in zip(scores, top):
            labels = labels.tolist()
            results.append({
                'pred_scores': row.astype(np.float32),
                'pred_label': labels[0],
                'pred_score': float(row[labels[0]]),
                'pred_class': self.classes[labels[0]],
                'topk_labels': labels,
                'topk_classes': [self.classes[j] for j in labels],
                'topk_scores': [float(row[j]) for j in labels],
            })
        return results

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """This plugin's models in MMPretrain's model hub.

        Args:
            pattern (str, optional): A wildcard pattern, e.g.
                ``'*zeromamba*'``.

        Returns:
            list[str]: Model names, usable as ``model=``.
        """
        return list_plugin_models(pattern)
