"""Checks of the inferencers' inputs: images (files, folders, arrays),
batch sizes and classes added by their attributes."""
import os
import os.path as osp
from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.image import imread
from mmengine.config import Config
from mmpretrain.datasets import remove_transform

__all__ = [
    'ImageType', 'IMAGE_EXTENSIONS', 'list_images', 'load_image',
    'check_batch_size', 'check_new_classes', 'pipeline_without_loading'
]

ImageType = Union[str, Path, np.ndarray]
#: Files taken from a directory given as input.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif',
                    '.tiff', '.webp')


def list_images(directory: str) -> List[str]:
    """The image files of a directory, sorted by name (not recursive)."""
    found = sorted(
        osp.join(directory, name) for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_EXTENSIONS)
        and osp.isfile(osp.join(directory, name)))
    if not found:
        raise FileNotFoundError(
            f'{directory} is a directory without images (looked for '
            f'{", ".join(IMAGE_EXTENSIONS)}); give image files or a '
            'directory of images.')
    return found


def load_image(item: ImageType, channel_order: str = 'bgr') -> np.ndarray:
    """A file or a uint8 (H, W, 3) array -> BGR, as pipelines expect.

    Args:
        item (str | Path | np.ndarray): An image file or array.
        channel_order (str): Of an array: ``'bgr'`` or ``'rgb'``.

    Returns:
        np.ndarray: uint8 (H, W, 3) BGR.
    """
    if channel_order not in ('bgr', 'rgb'):
        raise ValueError("channel_order must be 'bgr' or 'rgb', got "
                         f'{channel_order!r}.')
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise ValueError('Image arrays must be uint8 (H, W, 3); got '
                             f'dtype {item.dtype}, shape {item.shape}.')
        return np.ascontiguousarray(item if channel_order == 'bgr' else item[
            ..., ::-1])
    if not isinstance(item, (str, Path)):
        raise TypeError('Images must be file paths or numpy arrays, got '
                        f'{type(item).__name__}.')
    if not osp.isfile(str(item)):
        raise FileNotFoundError(f'Image file not found: {item}')
    try:
        img = imread(str(item), flag='color', channel_order='bgr')
    except Exception as e:  # cv2/turbojpeg errors of a corrupt file
        raise ValueError(f'Cannot decode image {item}: {e}') from e
    if img is None:
        raise ValueError(f'Cannot decode image {item}: the file is '
                         'corrupt or not an image.')
    return img


def check_batch_size(batch_size) -> None:
    """Refuse a batch size below 1 (mmpretrain divides by it)."""
    if (isinstance(batch_size, bool) or not isinstance(batch_size,
                                                       (int, np.integer))
            or batch_size < 1):
        raise ValueError(
            'batch_size (--batch-size of tools/infer.py) is the number '
            'of images per forward pass and must be a whole number >= 1; '
            f'got {batch_size!r}.')


def check_new_classes(names: Union[str, Sequence[str]], attributes,
                      num_attributes: int,
                      existing: Sequence[str]) -> Tuple[list, np.ndarray]:
    """Names and (N, A) attributes of classes to add, checked.

    Args:
        names (str | Sequence[str]): Non-empty names, none in ``existing``.
        attributes (array): (A,) or (N, A) attribute vector(s).
        num_attributes (int): A of the model.
        existing (Sequence[str]): The classes scored already.

    Returns:
        tuple[list, np.ndarray]: The names and the (N, A) float64 rows.
    """
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f'Class names must be non-empty strings; got {name!r} '
                f'among {names!r}.')
    attributes = np.asarray(
        attributes.detach().cpu()
        if isinstance(attributes, torch.Tensor) else attributes,
        dtype=np.float64)
    given = attributes.shape
    attributes = attributes[None] if attributes.ndim == 1 else attributes
    expected = (len(names), num_attributes)
    if attributes.shape != expected:
        raise ValueError(
            f'add_classes({names[:5]!r}, ...) needs one vector of '
            f'{num_attributes} attributes per class, i.e. shape '
            f'{expected} (or ({num_attributes},) for one class), as '
            f'the model was built with num_attributes='
            f'{num_attributes}; got shape {given}.')
    existing = set(existing)
    clash = [name for name in names if name in existing]
    if clash:
        raise ValueError(f'Classes {clash[:5]} already exist; use '
                         'set_classes() to change them.')
    return names, attributes


def pipeline_without_loading(cfg: Config) -> List[dict]:
    """The config's test pipeline without ``LoadImageFromFile``: the
    inferencers load images (files or in-memory arrays) themselves.

    Raises:
        KeyError: if the config has no ``test_dataloader.dataset.pipeline``.
    """
    try:
        pipeline = cfg.test_dataloader.dataset.pipeline
    except AttributeError as e:
        raise KeyError(
            'The config has no test_dataloader.dataset.pipeline, which the '
            'inferencers and the ONNX export use to prepare images; add the '
            'test pipeline of a config under configs/.') from e
    return [dict(t) for t in remove_transform(pipeline, 'LoadImageFromFile')]
