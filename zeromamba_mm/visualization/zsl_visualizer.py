"""A visualizer for zero-shot predictions, attention maps and curves."""
import os
import os.path as osp
from typing import Optional, Sequence

import mmcv
import numpy as np
from mmengine.dist import master_only
from mmpretrain.structures import DataSample
from mmpretrain.visualization import UniversalVisualizer

from zeromamba_mm.registry import VISUALIZERS
from .attention import draw_attribute_attention
from .curves import draw_seen_unseen_curve, figure_to_array

__all__ = ['ZSLVisualizer']


@VISUALIZERS.register_module()
class ZSLVisualizer(UniversalVisualizer):
    """MMPretrain's ``UniversalVisualizer`` for zero-shot classifiers.

    :meth:`visualize_cls` draws the predicted classes as the base class does
    (unseen classes marked ``[unseen]`` when ``dataset_meta`` has
    ``seen_classes``) and, when the data sample carries ``attention_maps``
    (A, h, w) (e.g. from :class:`~zeromamba_mm.apis.ZSLInferencer` with SLP),
    the attention maps of the ``topk_attributes`` strongest attributes of
    ``pred_attributes`` beside it, titled by the attribute names of
    ``dataset_meta['attribute_names']`` (``attr_<i>`` when absent). The
    picture goes to ``out_file`` or to the vis backends (local,
    TensorBoard, W&B), so mmpretrain's ``VisualizationHook`` and
    ``tools/test.py --show-dir`` carry it. :meth:`visualize_seen_unseen_curve`
    sends a seen-unseen curve the same way.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        topk_attributes (int): Attention panels per image by default.
            Defaults to 6.
        **kwargs: Other arguments of ``UniversalVisualizer`` (``image``,
            ``vis_backends``, ``save_dir``, ...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 topk_attributes: int = 6,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.topk_attributes = topk_attributes
        self._hold_images = False

    @master_only
    def add_image(self, name: str, image: np.ndarray, step: int = 0) -> None:
        """Send ``image`` to the backends (not while composing a picture)."""
        if not self._hold_images:
            super().add_image(name, image, step)

    @staticmethod
    def unique_file(directory: str, name: str, suffix: str = '.png') -> str:
        """A path ``directory/name[_k].png`` that does not exist yet."""
        os.makedirs(directory, exist_ok=True)
        k = 0
        while True:
            path = osp.join(directory,
                            (name if k == 0 else f'{name}_{k}') + suffix)
            if not osp.exists(path):
                return path
            k += 1

    def _names(self, key: str, count: int, fallback: str) -> Sequence[str]:
        names = (self.dataset_meta or {}).get(key)
        if names is None or len(names) != count:
            return [f'{fallback}_{i}' for i in range(count)]
        return list(names)

    def visualize_cls(self,
                      image: np.ndarray,
                      data_sample: DataSample,
                      classes: Optional[Sequence[str]] = None,
                      draw_gt: bool = True,
                      draw_pred: bool = True,
                      draw_score: bool = True,
                      resize: Optional[int] = None,
                      rescale_factor: Optional[float] = None,
                      text_cfg: dict = dict(),
                      show: bool = False,
                      wait_time: float = 0,
                      out_file: Optional[str] = None,
                      name: str = '',
                      step: int = 0,
                      topk_attributes: Optional[int] = None) -> np.ndarray:
        """Draw the prediction (and attention maps) of one image.

        Args:
            image (np.ndarray): (H, W, 3) RGB image (as the model saw it).
            data_sample (DataSample): ``pred_label`` (one or more, best
                first), ``pred_score``; optionally ``gt_label``,
                ``pred_attributes`` (A,) and ``attention_maps`` (A, h, w).
            topk_attributes (int, optional): Attention panels; 0 draws none.
                Defaults to ``self.topk_attributes``.
            Others: as :meth:`UniversalVisualizer.visualize_cls`.

        Returns:
            np.ndarray: The picture (RGB).
        """
        meta = self.dataset_meta or {}
        classes = classes or meta.get('classes')
        if classes is not None and meta.get('seen_classes') is not None:
            seen = set(np.asarray(meta['seen_classes']).ravel().tolist())
            classes = [
                c if i in seen else f'{c} [unseen]'
                for i, c in enumerate(classes)
            ]
        self._hold_images = True
        try:
            drawn = super().visualize_cls(
                image,
                data_sample,
                classes=classes,
                draw_gt=draw_gt,
                draw_pred=draw_pred,
                draw_score=draw_score,
                resize=resize,
                rescale_factor=rescale_factor,
                text_cfg=text_cfg,
                show=False,
                out_file=None,
                name=name,
                step=step)
        finally:
            self._hold_images = False
        topk = self.topk_attributes if topk_attributes is None \
            else topk_attributes
        if topk and 'attention_maps' in data_sample:
            drawn = self._with_attention(drawn, image, data_sample, topk)
        self.set_image(drawn)
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step=step)
        return drawn

    def _with_attention(self, drawn: np.ndarray, image: np.ndarray,
                        data_sample: DataSample, topk: int) -> np.ndarray:
        """The prediction picture and the attention panels side by side."""
        maps = np.asarray(data_sample.attention_maps, dtype=np.float32)
        scores = np.asarray(
            data_sample.pred_attributes if 'pred_attributes' in data_sample
            else maps.reshape(maps.shape[0], -1).max(axis=1),
            dtype=np.float64)
        names = self._names('attribute_names', maps.shape[0], 'attr')
        panels = figure_to_array(
            draw_attribute_attention(
                np.ascontiguousarray(image),
                maps,
                scores,
                attribute_names=names,
                topk=min(topk, maps.shape[0]),
                title='attention of the strongest predicted attributes'))
        height = panels.shape[0]
        width = max(1, round(drawn.shape[1] * height / drawn.shape[0]))
        left = mmcv.imresize(drawn, (width, height))
        return np.ascontiguousarray(np.concatenate([left, panels], axis=1))

    def visualize_seen_unseen_curve(self,
                                    curve,
                                    name: str = 'seen_unseen_curve',
                                    gamma: Optional[float] = None,
                                    title: Optional[str] = None,
                                    out_file: Optional[str] = None,
                                    step: int = 0) -> np.ndarray:
        """Draw a seen-unseen curve and send it to the backends.

        Args:
            curve (str | CurvePoints | SeenUnseenCurve): See
                :func:`~zeromamba_mm.visualization.plot_seen_unseen_curve`.
            name (str): Image name for the backends.
            gamma (float, optional): γ whose operating point is marked.
            title (str, optional): Figure title.
            out_file (str, optional): Write the PNG here instead.
            step (int): Global step for the backends.

        Returns:
            np.ndarray: The picture (RGB).
        """
        drawn = figure_to_array(draw_seen_unseen_curve(curve, gamma, title))
        self.set_image(drawn)
        if out_file is not None:
            mmcv.imwrite(drawn[..., ::-1], out_file)
        else:
            self.add_image(name, drawn, step=step)
        return drawn
