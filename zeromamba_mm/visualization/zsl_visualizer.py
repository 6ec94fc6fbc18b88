"""A visualizer for zero-shot predictions, attention maps and curves."""
import textwrap
from typing import List, Optional, Sequence, Tuple

import mmcv
import numpy as np
from mmengine.visualization.utils import img_from_canvas
from mmpretrain.structures import DataSample
from mmpretrain.visualization import UniversalVisualizer

from zeromamba_mm.evaluation.score_spaces import to_numpy
from zeromamba_mm.registry import VISUALIZERS
from zeromamba_mm.utils.atomic_files import reserve_new_files
from .attention import draw_attribute_attention
from .curves import draw_seen_unseen_curve, figure_to_array

__all__ = ['ZSLVisualizer', 'draw_labelled_image', 'text_panel']

#: Text colours: classes seen in training, unseen classes, other lines.
SEEN_COLOUR, UNSEEN_COLOUR, PLAIN_COLOUR = '#1f4e9a', '#b34700', '#202020'
NOTE_COLOUR = '#707070'
UNSEEN_TAG = '[unseen]'


def text_panel(lines: Sequence[Tuple[str, str]],
               width: int,
               font_size: float = 11,
               dpi: int = 100):
    """Lines of text on a white figure ``width`` pixels wide.

    Lines too long for the width are wrapped (names without spaces are
    broken); the layout is measured with matplotlib's renderer and redone
    narrower until every line lies inside the figure, so no text is cut
    off.

    Args:
        lines (Sequence[tuple[str, str]]): ``(text, colour)`` per line.
        width (int): Width of the figure in pixels.
        font_size (float): Font size in points. Defaults to 11.
        dpi (int): Dots per inch. Defaults to 100.

    Returns:
        matplotlib.figure.Figure: The figure (Agg canvas), one
        ``fig.texts`` entry per wrapped line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    margin = 8
    line_px = font_size * dpi / 72 * 1.45
    # A first guess of the characters per line, corrected by measuring.
    chars = max(8, int((width - 2 * margin) / (font_size * 0.62)))
    while True:
        wrapped = [(part, colour) for text, colour in lines
                   for part in (textwrap.wrap(text, chars) or [''])]
        height = int(np.ceil(len(wrapped) * line_px + 2 * margin))
        fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        renderer = FigureCanvasAgg(fig).get_renderer()
        for k, (part, colour) in enumerate(wrapped):
            fig.text(
                margin / width,
                1 - (margin + k * line_px) / height,
                part,
                color=colour,
                fontsize=font_size,
                va='top',
                ha='left')
        right = max([t.get_window_extent(renderer).x1
                     for t in fig.texts] + [0])
        if right <= width - 1 or chars <= 8:
            return fig
        chars = max(8, int(chars * (width - 2 * margin) / right) - 1)


def draw_labelled_image(image: np.ndarray,
                        lines: Sequence[Tuple[str, str]],
                        min_width: int = 400,
                        font_size: float = 11,
                        dpi: int = 100) -> np.ndarray:
    """An image with lines of text on a white panel below it.

    The text is drawn at the picture's resolution after any scaling of the
    image, so it is sharp whatever the image size, and never cut off (see
    :func:`text_panel`).

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB image, shown at its size.
        lines (Sequence[tuple[str, str]]): ``(text, colour)`` per line.
        min_width (int): Least width of the picture in pixels (the panel is
            wider than a small image). Defaults to 400.
        font_size (float): Font size in points. Defaults to 11.
        dpi (int): Dots per inch of the text. Defaults to 100.

    Returns:
        np.ndarray: (H + panel, max(W, min_width), 3) uint8 RGB picture.
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    canvas_width = max(width, int(min_width))
    panel = img_from_canvas(
        text_panel(lines, canvas_width, font_size, dpi).canvas)
    picture = np.full((height, canvas_width, 3), 255, np.uint8)
    left = (canvas_width - width) // 2
    picture[:, left:left + width] = image
    return np.ascontiguousarray(np.concatenate([picture, panel]))


@VISUALIZERS.register_module()
class ZSLVisualizer(UniversalVisualizer):
    """MMPretrain's ``UniversalVisualizer`` for zero-shot classifiers.

    :meth:`visualize_cls` scales a small image up (``min_size``) and writes
    the prediction on a panel of its own below it, at the picture's
    resolution: sharp at any input size, long class names wrapped, never
    cut off. Classes not seen in training are tagged ``[unseen]`` and drawn
    in orange (seen ones in blue) when ``dataset_meta`` has
    ``seen_classes``. When the data sample carries ``attention_maps``
    (A, h, w) (e.g. from :class:`~zeromamba_mm.apis.ZSLInferencer` with
    SLP), the attention maps of the ``topk_attributes`` strongest
    attributes of ``pred_attributes`` are drawn beside it, titled by the
    attribute names of ``dataset_meta['attribute_names']`` (``attr_<i>``
    when absent). The picture goes to ``out_file`` or to the vis backends
    (local, TensorBoard, W&B), so
    :class:`~zeromamba_mm.engine.ZSLVisualizationHook` and
    ``tools/test.py --show-dir`` carry it.
    :meth:`visualize_seen_unseen_curve` sends a seen-unseen curve the same
    way.

    Args:
        name (str): Instance name. Defaults to ``'visualizer'``.
        topk_attributes (int): Attention panels per image by default.
            Defaults to 6.
        min_size (int): Images whose shorter side is smaller are scaled up
            to it (bicubic) unless ``resize``/``rescale_factor`` is given.
            Defaults to 256.
        font_size (float): Size of the prediction text in points (at 100
            dpi). Defaults to 11.
        **kwargs: Other arguments of ``UniversalVisualizer`` (``image``,
            ``vis_backends``, ``save_dir``, ...).
    """

    def __init__(self,
                 name: str = 'visualizer',
                 topk_attributes: int = 6,
                 min_size: int = 256,
                 font_size: float = 11,
                 **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.topk_attributes = topk_attributes
        self.min_size = min_size
        self.font_size = font_size

    @staticmethod
    def unique_file(directory: str, name: str, suffix: str = '.png') -> str:
        """A new file ``directory/name[_k].png``, created empty (claimed,
        so that no other writer takes it), for this visualizer to fill."""
        return reserve_new_files(directory, name, (suffix, ))[0]

    def _names(self, key: str, count: int, fallback: str) -> Sequence[str]:
        names = (self.dataset_meta or {}).get(key)
        if names is None or len(names) != count:
            return [f'{fallback}_{i}' for i in range(count)]
        return list(names)

    def _scaled(self, image: np.ndarray, resize: Optional[int],
                rescale_factor: Optional[float]) -> np.ndarray:
        """The image at the size it is shown (text is drawn after this)."""
        if resize is not None:
            height, width = image.shape[:2]
            scale = resize / min(height, width)
        elif rescale_factor is not None:
            scale = rescale_factor
        else:
            scale = max(1.0, self.min_size / min(image.shape[:2]))
        if scale == 1:
            return image
        return mmcv.imrescale(image, scale, interpolation='bicubic')

    def _label(self, label: int, classes: Optional[Sequence[str]],
               seen: Optional[set]) -> Tuple[str, str]:
        """``'name [unseen]'`` (or the id) and the colour of a class."""
        text = str(classes[label]) if classes is not None and \
            0 <= label < len(classes) else f'class {label}'
        if seen is None:
            return text, PLAIN_COLOUR
        if label in seen:
            return text, SEEN_COLOUR
        return f'{text} {UNSEEN_TAG}', UNSEEN_COLOUR

    def prediction_lines(self,
                         data_sample: DataSample,
                         classes: Optional[Sequence[str]] = None,
                         draw_gt: bool = True,
                         draw_pred: bool = True,
                         draw_score: bool = True) -> List[Tuple[str, str]]:
        """The text lines of a prediction, with their colours.

        Args:
            data_sample (DataSample): ``pred_label`` (one or more, best
                first), ``pred_score``; optionally ``gt_label``.
            classes (Sequence[str], optional): Class names; defaults to
                ``dataset_meta['classes']``.
            draw_gt (bool): Add the ground truth. Defaults to True.
            draw_pred (bool): Add the predicted classes. Defaults to True.
            draw_score (bool): Add their scores. Defaults to True.

        Returns:
            list[tuple[str, str]]: ``(text, colour)`` per line.
        """
        meta = self.dataset_meta or {}
        classes = classes if classes is not None else meta.get('classes')
        seen = None
        if meta.get('seen_classes') is not None:
            seen = set(np.asarray(meta['seen_classes']).ravel().tolist())
        lines = []
        if draw_gt and 'gt_label' in data_sample:
            for label in np.asarray(data_sample.gt_label).ravel().tolist():
                text, colour = self._label(int(label), classes, seen)
                lines.append((f'true: {text}', colour))
        if draw_pred and 'pred_label' in data_sample:
            labels = np.asarray(data_sample.pred_label).ravel().tolist()
            scores = data_sample.get('pred_score')
            if len(labels) > 1:
                lines.append(
                    (f'top-{len(labels)} predictions'
                     f'{" (score)" if draw_score else ""}:', PLAIN_COLOUR))
            for rank, label in enumerate(labels, start=1):
                text, colour = self._label(int(label), classes, seen)
                line = f'{rank}. {text}' if len(labels) > 1 else \
                    f'predicted: {text}'
                if draw_score and scores is not None:
                    line += f'  ({float(scores[int(label)]):.3g})'
                lines.append((line, colour))
        if seen is not None and lines:
            lines.append(('blue: seen in training; orange '
                          f'{UNSEEN_TAG}: unseen class', NOTE_COLOUR))
        return lines

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
            resize (int, optional): Shorter side of the shown image.
            rescale_factor (float, optional): Scale of the shown image.
                Defaults (both None): images with a shorter side below
                ``min_size`` are scaled up to it.
            text_cfg (dict): ``font_size`` overrides the instance's.
            topk_attributes (int, optional): Attention panels; 0 draws none.
                Defaults to ``self.topk_attributes``.
            Others: as :meth:`UniversalVisualizer.visualize_cls`.

        Returns:
            np.ndarray: The picture (RGB).
        """
        lines = self.prediction_lines(data_sample, classes, draw_gt, draw_pred,
                                      draw_score)
        drawn = draw_labelled_image(
            self._scaled(np.asarray(image), resize, rescale_factor),
            lines,
            font_size=text_cfg.get('font_size', self.font_size))
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
        # The fields may be tensors on the model's device (the
        # visualization hook draws what the head predicted).
        maps = to_numpy(data_sample.attention_maps, np.float32)
        scores = (
            to_numpy(data_sample.pred_attributes, np.float64)
            if 'pred_attributes' in data_sample else maps.reshape(
                maps.shape[0], -1).max(axis=1).astype(np.float64))
        names = self._names('attribute_names', maps.shape[0], 'attr')
        panels = figure_to_array(
            draw_attribute_attention(
                np.ascontiguousarray(image),
                maps,
                scores,
                attribute_names=names,
                topk=min(topk, maps.shape[0]),
                title='attention of the strongest predicted attributes'))
        # Side by side, the shorter one padded with white (no rescaling:
        # the text stays as sharp as drawn).
        height = max(drawn.shape[0], panels.shape[0])
        parts = [
            np.pad(
                part, ((0, height - part.shape[0]), (0, 0), (0, 0)),
                constant_values=255) for part in (drawn, panels)
        ]
        return np.ascontiguousarray(np.concatenate(parts, axis=1))

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
