"""Show where a zero-shot model looks for each attribute.

ZeroMamba's SLP (`arXiv:2408.14868 <https://arxiv.org/abs/2408.14868>`_)
attends over the regions of the last backbone stage once per attribute. This
module runs one image through a :class:`~zeromamba_mm.apis.ZSLInferencer`,
reads those per-attribute attention maps from the head and draws the
strongest attributes as heat maps over the image the model saw (after the test
pipeline, so crops and resizes line up with the maps).

Any head works that offers ``attention_maps(feats) -> Tensor (B, A, h, w)``
(e.g. :class:`~zeromamba_mm.models.heads.ZeroMambaHead`).
"""
import os
import os.path as osp
import textwrap
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dataset import default_collate

from zeromamba_mm.utils.atomic_files import write_atomically

__all__ = [
    'AttributeAttention', 'compute_attribute_attention',
    'plot_attribute_attention', 'draw_attribute_attention',
    'visualize_attribute_attention', 'check_out_file', 'display_image'
]

SELECT_MODES = ('image', 'class')
#: Longest attribute name shown in a panel title (longer ones are cut).
_MAX_NAME = 58


@dataclass
class AttributeAttention:
    """The attention of one image.

    Attributes:
        image (np.ndarray): (H, W, 3) uint8 **RGB** image as the model saw it
            (after the test pipeline, before normalisation).
        maps (np.ndarray): (A, h, w) float32 attention maps, one per
            attribute.
        pred_attributes (np.ndarray): (A,) predicted attribute vector ``Â``.
        class_scores (np.ndarray): (C,) raw class scores ``Â · a_c``.
        pred_label (int): Top-1 class id at the inferencer's operating
            point (calibrated stacking, all classes).
        pred_class (str): Its name.
        shown (np.ndarray, optional): Ids of the attributes drawn, in panel
            order (set by :func:`visualize_attribute_attention`).
    """
    image: np.ndarray
    maps: np.ndarray
    pred_attributes: np.ndarray
    class_scores: np.ndarray
    pred_label: int
    pred_class: str
    shown: Optional[np.ndarray] = None


def check_out_file(out_file: str, overwrite: bool = False) -> None:
    """Refuse to overwrite ``out_file`` unless asked; create its folder."""
    if osp.exists(out_file) and not overwrite:
        raise FileExistsError(
            f'{out_file} exists; choose another output path (nothing was '
            'overwritten).')
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)


def save_figure(fig, out_file: str, overwrite: bool = False) -> str:
    """Save a figure as PNG through a temporary file: a crash leaves no
    partial file, and without ``overwrite`` no file is ever replaced (also
    not one created meanwhile).

    Returns:
        str: ``out_file``.
    """
    check_out_file(out_file, overwrite)
    try:
        write_atomically(
            out_file,
            lambda tmp: fig.savefig(tmp, format='png'),
            overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(
            f'{out_file} exists; choose another output path (nothing was '
            'overwritten).') from None
    return out_file


def display_image(inputs: torch.Tensor) -> np.ndarray:
    """Packed model input (3, H, W), BGR as MMPretrain loads it -> RGB."""
    img = inputs.detach().cpu().float().permute(1, 2, 0).numpy()
    if inputs.dtype != torch.uint8:  # a pipeline that normalises itself
        low, high = img.min(), img.max()
        img = (img - low) / max(high - low, 1e-12) * 255
    return np.ascontiguousarray(
        np.clip(img, 0, 255).astype(np.uint8)[..., ::-1])


@torch.no_grad()
def compute_attribute_attention(
        inferencer,
        image: Union[str, np.ndarray],
        channel_order: str = 'bgr') -> AttributeAttention:
    """Attention maps and predictions of one image.

    Args:
        inferencer (ZSLInferencer): A loaded inferencer whose model head has
            ``attention_maps(feats)``.
        image (str | np.ndarray): Image path or uint8 (H, W, 3) array.
        channel_order (str): Channel order of an array image, ``'bgr'``
            (default, as ``cv2.imread``) or ``'rgb'``.

    Returns:
        AttributeAttention: Image, maps and predictions.

    Raises:
        TypeError: If the head has no ``attention_maps`` method.
    """
    head = inferencer.model.head
    if not callable(getattr(head, 'attention_maps', None)):
        raise TypeError(
            f'The head {type(head).__name__} has no attention_maps(feats): '
            'attention maps need a head with per-attribute attention, e.g. '
            'zeromamba_mm.ZeroMambaHead (SLP).')
    data = inferencer.prepare(image, channel_order)
    pred = inferencer.forward(default_collate([data]))[0]
    maps = pred.attention_maps
    num_attributes = inferencer.num_attributes
    if maps.dim() != 3 or maps.shape[0] != num_attributes:
        raise ValueError(
            f'{type(head).__name__}.attention_maps returned maps of shape '
            f'{tuple(maps.shape)} per image; expected ({num_attributes}, h, '
            'w).')
    scores = pred.pred_score.float().cpu()
    # The class tools/infer.py predicts: calibrated at the operating point.
    label = int(inferencer.rank([pred], topk=1)[1][0, 0])
    return AttributeAttention(
        image=display_image(data['inputs']),
        maps=maps.numpy(),
        pred_attributes=pred.pred_attributes.numpy(),
        class_scores=scores.numpy(),
        pred_label=label,
        pred_class=inferencer.classes[label])


def _upsample(maps: np.ndarray, size) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))
    return F.interpolate(
        t[None], size=size, mode='bilinear', align_corners=False)[0].numpy()


def plot_attribute_attention(image: np.ndarray,
                             maps: np.ndarray,
                             attribute_scores: np.ndarray,
                             out_file: str,
                             attribute_names: Optional[Sequence[str]] = None,
                             topk: int = 6,
                             order: Optional[Sequence[int]] = None,
                             title: Optional[str] = None,
                             cmap: str = 'jet',
                             alpha: float = 0.7,
                             ncols: Optional[int] = None,
                             overwrite: bool = False) -> str:
    """Draw attention maps over an image and save the figure as PNG.

    See :func:`draw_attribute_attention` for the arguments; ``out_file`` is
    never overwritten unless ``overwrite``.

    Returns:
        str: ``out_file``.
    """
    fig = draw_attribute_attention(image, maps, attribute_scores,
                                   attribute_names, topk, order, title, cmap,
                                   alpha, ncols)
    return save_figure(fig, out_file, overwrite)


def draw_attribute_attention(image: np.ndarray,
                             maps: np.ndarray,
                             attribute_scores: np.ndarray,
                             attribute_names: Optional[Sequence[str]] = None,
                             topk: int = 6,
                             order: Optional[Sequence[int]] = None,
                             title: Optional[str] = None,
                             cmap: str = 'jet',
                             alpha: float = 0.7,
                             ncols: Optional[int] = None):
    """Draw attention maps over an image on a new matplotlib ``Figure``.

    Each panel shows the image with one attribute's map, bilinearly
    upsampled to the image size and min-max scaled per panel (maps are
    softmaxes over regions, so their absolute values mostly reflect the
    number of regions), titled ``"attribute name: score"``.

    Args:
        image (np.ndarray): (H, W, 3) uint8 RGB image.
        maps (np.ndarray): (A, h, w) attention maps.
        attribute_scores (np.ndarray): (A,) scores shown in the titles (and
            used to rank attributes when ``order`` is None).
        attribute_names (Sequence[str], optional): A names; ``attr_i`` if
            None.
        topk (int): Panels to draw. Defaults to 6.
        order (Sequence[int], optional): Attribute ids to draw, in order;
            defaults to the ``topk`` highest ``attribute_scores``.
        title (str, optional): Figure title.
        cmap (str): Matplotlib colour map of the heat maps. Defaults to
            'jet' (high attention red).
        alpha (float): Opacity of the heat maps where attention is highest
            (it fades with the attention). Defaults to 0.7.
        ncols (int, optional): Panels per row. Defaults to about the square
            root of the number of panels (at most 4).

    Returns:
        matplotlib.figure.Figure: The figure (Agg canvas, no pyplot).
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    image = np.asarray(image)
    maps = np.asarray(maps, dtype=np.float32)
    scores = np.asarray(attribute_scores, dtype=np.float64).ravel()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3), got {image.shape}.')
    if maps.ndim != 3 or scores.shape[0] != maps.shape[0]:
        raise ValueError(
            f'maps must be (A, h, w) with one score per attribute; got maps '
            f'{maps.shape} and {scores.shape[0]} scores.')
    num_attributes = maps.shape[0]
    names = (
        list(attribute_names) if attribute_names is not None else
        [f'attr_{i}' for i in range(num_attributes)])
    if len(names) != num_attributes:
        raise ValueError(f'{len(names)} attribute names for '
                         f'{num_attributes} attention maps.')
    if order is None:
        if not isinstance(topk, int) or topk < 1:
            raise ValueError(f'topk must be a positive int, got {topk!r}.')
        order = np.argsort(-scores, kind='stable')[:topk]
    order = [int(i) for i in order]
    if not order or min(order) < 0 or max(order) >= num_attributes:
        raise ValueError(f'Attribute ids {order} are not in '
                         f'[0, {num_attributes}).')

    height, width = image.shape[:2]
    up = _upsample(maps[order], (height, width))
    if ncols is None:
        ncols = min(4, int(np.ceil(np.sqrt(len(order)))))
    ncols = max(1, min(ncols, len(order)))
    nrows = int(np.ceil(len(order) / ncols))
    panel = 3.2
    fig = Figure(
        figsize=(panel * ncols, panel * nrows * height / width + 0.6 * nrows +
                 (0.5 if title else 0)),
        dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.axis('off')
    colormap = matplotlib.colormaps[cmap]
    for ax, attr, heat in zip(axes.ravel(), order, up):
        low, high = float(heat.min()), float(heat.max())
        heat = (heat - low) / (high - low) if high > low else heat * 0
        # The heat map's opacity follows the attention, so the image stays
        # visible where the attribute is not looked for.
        overlay = colormap(heat)
        overlay[..., 3] = alpha * heat
        ax.imshow(image)
        ax.imshow(overlay)
        # Long names (CUB: 'has_underparts_color::iridescent') are cut so
        # that the score always shows, on at most two lines.
        name = names[attr]
        if len(name) > _MAX_NAME:
            name = name[:_MAX_NAME - 3] + '...'
        label = f'{name}: {scores[attr]:.3g}'
        ax.set_title('\n'.join(textwrap.wrap(label, 34)), fontsize=9, pad=3)
    if title:
        width = int(panel * ncols * 12)  # characters that fit at size 11
        # Each line of the title wraps on its own (a lone '(...)' tail reads
        # better on a line of its own than split mid-phrase).
        fig.suptitle(
            '\n'.join(line for part in title.split('\n')
                      for line in textwrap.wrap(part, width)),
            fontsize=11)
    fig.text(
        0.5,
        0.005,
        f'heat: attention map ({cmap}), scaled to [0, 1] in each panel',
        ha='center',
        va='bottom',
        fontsize=8,
        color='0.3')
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def visualize_attribute_attention(
        inferencer,
        image: Union[str, np.ndarray],
        out_file: str,
        topk: int = 6,
        select: str = 'image',
        attribute_names: Optional[Sequence[str]] = None,
        channel_order: str = 'bgr',
        overwrite: bool = False) -> AttributeAttention:
    """Attention maps of the top-k attributes of one image, saved as PNG.

    Args:
        inferencer (ZSLInferencer): A loaded inferencer.
        image (str | np.ndarray): Image path or uint8 (H, W, 3) array.
        out_file (str): The PNG to write (never overwritten unless
            ``overwrite``).
        topk (int): Attributes to show. Defaults to 6.
        select (str): ``'image'`` ranks attributes by the predicted ``Â`` of
            the image; ``'class'`` by the attribute vector of the predicted
            class (the attributes the prediction rests on). Titles always
            show ``Â``. Defaults to 'image'.
        attribute_names (Sequence[str], optional): Defaults to the
            inferencer's.
        channel_order (str): Of array images. Defaults to 'bgr'.
        overwrite (bool): Defaults to False.

    Returns:
        AttributeAttention: What was drawn.
    """
    if select not in SELECT_MODES:
        raise ValueError(f'select must be one of {SELECT_MODES}, got '
                         f'{select!r}.')
    if not isinstance(topk, int) or topk < 1:
        raise ValueError(f'topk must be a positive int, got {topk!r}.')
    check_out_file(out_file, overwrite)
    result = compute_attribute_attention(inferencer, image, channel_order)
    ranking = (
        result.pred_attributes if select == 'image' else
        inferencer.class_attributes[result.pred_label])
    order = np.argsort(-ranking, kind='stable')[:topk]
    name = osp.basename(image) if isinstance(image, str) else 'image'
    title = (f'{name}: predicted {result.pred_class!r}\n'
             f'(top-{len(order)} attributes by '
             f"{'Â' if select == 'image' else 'class attributes'})")
    plot_attribute_attention(
        result.image,
        result.maps,
        result.pred_attributes,
        out_file,
        attribute_names=attribute_names or inferencer.attribute_names,
        order=order,
        title=title,
        overwrite=overwrite)
    result.shown = order
    return result
