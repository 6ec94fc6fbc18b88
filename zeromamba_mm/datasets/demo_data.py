"""A small synthetic zero-shot dataset in the xlsa17 layout.

Each image shows one shape on a background. Its class is a combination of
six attribute groups (20 binary attributes)::

    shape       circle square triangle cross diamond
    colour      red green blue yellow magenta
    texture     plain stripes dots
    size        small large
    position    left centre right
    background  dark light

A class's ``original_att`` column is its multi-hot vector (one value per
group, so six ones) and its ``att`` column the same vector L2-normalised. The
unseen classes are combinations never shown in training, while every single
attribute value appears in some seen class, so zero-shot transfer through the
attributes is possible (and tested). Images get per-image jitter (position,
size, colour, background gradient and pixel noise) so they are not
trivially memorisable.

Written files (``make_demo_data(out_dir)``)::

    out_dir/att_splits.mat      att, original_att (A, C), allclasses_names,
                                trainval_loc, test_seen_loc, test_unseen_loc,
                                attribute_names (A, 1) cell
    out_dir/res101.mat          image_files (original-style /BS/... paths),
                                labels (1-based); no features
    out_dir/images/<class>/<class>_<k>.jpg
    out_dir/attribute_w2v.npy   (A, 300) float32 attribute "word vectors"
    out_dir/attributes.txt      attribute names, one per line
    out_dir/README.txt

Load it with ``ZSLDataset(data_root=out_dir, img_prefix='images',
path_preset='DEMO', split=...)``; ``metainfo['attribute_names']`` comes from
the ``attribute_names`` cell (``'shape: circle'``...).
The same seed gives byte-identical files (for a given Pillow/libjpeg).
"""
import io
import os
import os.path as osp
import shutil
from itertools import combinations
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .path_rules import DEMO_PATH_PREFIX

__all__ = [
    'ATTRIBUTE_GROUPS', 'attribute_names', 'sample_demo_classes',
    'render_demo_image', 'make_demo_data'
]

ATTRIBUTE_GROUPS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ('shape', ('circle', 'square', 'triangle', 'cross', 'diamond')),
    ('colour', ('red', 'green', 'blue', 'yellow', 'magenta')),
    ('texture', ('plain', 'stripes', 'dots')),
    ('size', ('small', 'large')),
    ('position', ('left', 'centre', 'right')),
    ('background', ('dark', 'light')),
)

_RGB = {
    'red': (220, 45, 45),
    'green': (45, 185, 65),
    'blue': (50, 80, 225),
    'yellow': (230, 210, 45),
    'magenta': (205, 55, 200),
}
_W2V_DIM = 300
_MAT_HEADER = b'MATLAB 5.0 MAT-file, written by zeromamba_mm demo_data'


def attribute_names() -> List[str]:
    """Names of the 20 attributes, ``'group: value'`` (e.g. ``'shape:
    circle'``), in column order, as pictures and reports show them."""
    return [f'{g}: {v}' for g, values in ATTRIBUTE_GROUPS for v in values]


def _multi_hot(combo: Sequence[int]) -> np.ndarray:
    vec = []
    for (_, values), choice in zip(ATTRIBUTE_GROUPS, combo):
        part = np.zeros(len(values))
        part[choice] = 1
        vec.append(part)
    return np.concatenate(vec)


def _class_name(combo: Sequence[int]) -> str:
    return '_'.join(values[c]
                    for (_, values), c in zip(ATTRIBUTE_GROUPS, combo))


def sample_demo_classes(rng: np.random.Generator,
                        num_classes: int = 24,
                        num_unseen: int = 6) -> Tuple[List[tuple], np.ndarray]:
    """Draw class combinations and the unseen ones.

    Conditions (re-drawn until met): classes differ in at least 2 groups,
    unseen classes pairwise in at least 3 (so that they can be told apart by
    their attributes), and every attribute value occurs in a seen class.

    Returns:
        tuple: list of per-class value indices, sorted unseen class ids.
    """
    sizes = [len(v) for _, v in ATTRIBUTE_GROUPS]
    if not 0 < num_unseen < num_classes:
        raise ValueError('Need 0 < num_unseen < num_classes, got '
                         f'{num_unseen} and {num_classes}.')

    def dist(a, b):
        return sum(x != y for x, y in zip(a, b))

    for _ in range(10000):
        combos: List[tuple] = []
        while len(combos) < num_classes:
            cand = tuple(int(rng.integers(s)) for s in sizes)
            if all(dist(cand, c) >= 2 for c in combos):
                combos.append(cand)
        unseen = np.sort(rng.choice(num_classes, num_unseen, replace=False))
        if any(
                dist(combos[a], combos[b]) < 3
                for a, b in combinations(unseen, 2)):
            continue
        seen = [c for i, c in enumerate(combos) if i not in set(unseen)]
        if all({c[g]
                for c in seen} == set(range(s)) for g, s in enumerate(sizes)):
            return combos, unseen.astype(np.int64)
    raise RuntimeError('Could not draw demo classes; use more classes.')


def _shape_mask(shape: str, xx: np.ndarray, yy: np.ndarray,
                r: float) -> np.ndarray:
    ax, ay = np.abs(xx), np.abs(yy)
    if shape == 'circle':
        return xx**2 + yy**2 <= r**2
    if shape == 'square':
        return np.maximum(ax, ay) <= 0.82 * r
    if shape == 'triangle':  # apex up, base at y = +0.8 r
        return (yy <= 0.8 * r) & (ax <= (yy + r) * 0.58)
    if shape == 'cross':
        arm = 0.34 * r
        return ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))
    if shape == 'diamond':
        return ax + ay <= r
    raise ValueError(f'Unknown shape {shape!r}.')


def render_demo_image(combo: Sequence[int],
                      rng: np.random.Generator,
                      size: int = 64) -> np.ndarray:
    """Draw one (size, size, 3) uint8 RGB image of the class ``combo``."""
    shape, colour, texture, scale, position, background = (
        values[c] for (_, values), c in zip(ATTRIBUTE_GROUPS, combo))
    s = size / 64.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)

    base = rng.uniform(25, 60) if background == 'dark' else rng.uniform(
        180, 225)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy) / size
    img = base + 20 * ramp[..., None] + rng.normal(0, 8, (size, size, 3))

    radius = s * (
        rng.uniform(7, 9) if scale == 'small' else rng.uniform(13, 15))
    cx = s * ({
        'left': 20,
        'centre': 32,
        'right': 44
    }[position] + rng.uniform(-3, 3))
    cy = s * (32 + rng.uniform(-8, 8))
    mask = _shape_mask(shape, xx - cx, yy - cy, radius)

    rgb = np.clip(np.asarray(_RGB[colour]) + rng.normal(0, 12, 3), 0, 255)
    fill = np.broadcast_to(rgb, img.shape).copy()
    period = max(2, int(round(4 * s)))
    phase = int(rng.integers(period * 2))
    if texture == 'stripes':
        dark = ((xx + yy + phase) // period) % 2 == 0
        fill[dark] *= 0.4
    elif texture == 'dots':
        step = 2 * period + 1
        dark = (((xx + phase) % step) < period) & ((
            (yy + phase) % step) < period)
        fill[dark] *= 0.4
    img[mask] = fill[mask] + rng.normal(0, 6, (int(mask.sum()), 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _attribute_word_vectors(rng: np.random.Generator) -> np.ndarray:
    """Unit vectors: 0.6 * group direction + 0.8 * value direction, so
    attributes of one group are related (cosine ~0.36) like real word
    vectors of related words, and different groups nearly orthogonal."""
    rows = []
    for _, values in ATTRIBUTE_GROUPS:
        group = rng.normal(size=_W2V_DIM)
        group /= np.linalg.norm(group)
        for _ in values:
            value = rng.normal(size=_W2V_DIM)
            value /= np.linalg.norm(value)
            vec = 0.6 * group + 0.8 * value
            rows.append(vec / np.linalg.norm(vec))
    return np.stack(rows).astype(np.float32)


def _savemat(path: str, data: dict) -> None:
    """``scipy.io.savemat`` with a fixed header (it stamps the time)."""
    import scipy.io as sio
    buf = io.BytesIO()
    sio.savemat(buf, data, format='5', do_compression=False)
    raw = bytearray(buf.getvalue())
    raw[:116] = _MAT_HEADER.ljust(116, b' ')
    with open(path, 'wb') as f:
        f.write(bytes(raw))


def _cell(strings: Sequence[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


def _loc(indices: Sequence[int]) -> np.ndarray:
    # xlsa17 stores 1-based uint16 column vectors.
    return (np.asarray(indices, dtype=np.int64) + 1).astype(np.uint16).reshape(
        -1, 1)


def make_demo_data(out_dir: str,
                   seed: int = 0,
                   num_classes: int = 24,
                   num_unseen: int = 6,
                   images_per_class: int = 40,
                   image_size: int = 64,
                   trainval_ratio: float = 0.8,
                   force: bool = False) -> Dict[str, object]:
    """Write the demo dataset to ``out_dir`` (see the module doc).

    Args:
        out_dir (str): Output folder. It must be absent or empty unless
            ``force=True``, which replaces ``out_dir/images`` and the files
            listed above (nothing else).
        seed (int): Seed; the same seed gives identical files. Defaults to 0.
        num_classes (int): Number of classes. Defaults to 24.
        num_unseen (int): Number of unseen classes. Defaults to 6.
        images_per_class (int): Defaults to 40.
        image_size (int): Image side in pixels. Defaults to 64.
        trainval_ratio (float): Share of each seen class's images in
            trainval; the rest is test_seen. Defaults to 0.8.
        force (bool): Allow writing into a non-empty folder.

    Returns:
        dict: Counts of the written dataset (classes, images, splits).
    """
    from PIL import Image
    if osp.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise FileExistsError(
            f'{out_dir} exists and is not empty; pass force=True (--force) '
            'to overwrite the demo files in it.')
    if images_per_class < 2:
        raise ValueError('images_per_class must be at least 2.')
    if images_per_class * num_classes >= 2**16:
        raise ValueError('Too many images for uint16 xlsa17 indices.')
    rng = np.random.default_rng(seed)
    combos, unseen = sample_demo_classes(rng, num_classes, num_unseen)
    names = [_class_name(c) for c in combos]
    original_att = np.stack([_multi_hot(c) for c in combos])  # (C, A)
    att = original_att / np.linalg.norm(original_att, axis=1, keepdims=True)

    image_dir = osp.join(out_dir, 'images')
    if osp.isdir(image_dir):
        shutil.rmtree(image_dir)
    # (relative path, label, split) for every image
    records: List[Tuple[str, int, str]] = []
    for label, (combo, name) in enumerate(zip(combos, names)):
        os.makedirs(osp.join(image_dir, name))
        n_trainval = int(round(trainval_ratio * images_per_class))
        n_trainval = min(max(n_trainval, 1), images_per_class - 1)
        is_trainval = np.zeros(images_per_class, dtype=bool)
        is_trainval[rng.permutation(images_per_class)[:n_trainval]] = True
        for k in range(images_per_class):
            rel = f'{name}/{name}_{k + 1:04d}.jpg'
            pixels = render_demo_image(combo, rng, image_size)
            Image.fromarray(pixels).save(
                osp.join(image_dir, rel), format='JPEG', quality=90)
            if label in unseen:
                split = 'test_unseen'
            else:
                split = 'trainval' if is_trainval[k] else 'test_seen'
            records.append((rel, label, split))

    # Like res101.mat: images sorted by path, so the list order (folder
    # names) differs from the class order - labels must come from `labels`.
    records.sort(key=lambda r: r[0])
    image_files = [DEMO_PATH_PREFIX + r[0] for r in records]
    labels = np.asarray([r[1] for r in records], dtype=np.int64)
    split_of = np.asarray([r[2] for r in records])
    locs = {
        f'{s}_loc': _loc(np.flatnonzero(split_of == s))
        for s in ('trainval', 'test_seen', 'test_unseen')
    }
    _savemat(
        osp.join(out_dir, 'att_splits.mat'),
        dict(
            att=att.T,
            original_att=original_att.T,
            allclasses_names=_cell(names),
            **locs,
            # Written last, so the bytes of the variables above are those
            # of the files written before attribute names were added.
            attribute_names=_cell(attribute_names())))
    _savemat(
        osp.join(out_dir, 'res101.mat'),
        dict(
            image_files=_cell(image_files),
            labels=(labels + 1).astype(np.float64).reshape(-1, 1)))
    np.save(
        osp.join(out_dir, 'attribute_w2v.npy'), _attribute_word_vectors(rng))
    with open(osp.join(out_dir, 'attributes.txt'), 'w') as f:
        f.write('\n'.join(attribute_names()) + '\n')

    summary = dict(
        num_classes=num_classes,
        num_seen=num_classes - len(unseen),
        num_unseen=len(unseen),
        num_attributes=original_att.shape[1],
        num_images=len(records),
        trainval=len(locs['trainval_loc']),
        test_seen=len(locs['test_seen_loc']),
        test_unseen=len(locs['test_unseen_loc']),
        unseen_classes=[names[i] for i in unseen],
        seed=seed)
    with open(osp.join(out_dir, 'README.txt'), 'w') as f:
        f.write(_readme(summary, image_size))
    return summary


def _readme(summary: dict, image_size: int) -> str:
    groups = '\n'.join(f'  {g:<11} {" ".join(v)}' for g, v in ATTRIBUTE_GROUPS)
    unseen = '\n'.join(f'  {n}' for n in summary['unseen_classes'])
    seed = summary['seed']
    return f"""zeromamba_mm demo zero-shot dataset (synthetic, seed {seed})
Generated by tools/make_demo_data.py (zeromamba_mm.datasets.demo_data).

{summary['num_classes']} classes ({summary['num_seen']} seen, \
{summary['num_unseen']} unseen), {summary['num_attributes']} binary \
attributes in groups:
{groups}
Each class is one value per group; class names list them in that order.
Unseen classes are combinations never shown in training; every attribute value
occurs in some seen class.

{summary['num_images']} JPEG images of {image_size}x{image_size} pixels.
Splits: trainval {summary['trainval']}, test_seen {summary['test_seen']}, \
test_unseen {summary['test_unseen']}.
Unseen classes:
{unseen}

Files (xlsa17 layout):
  att_splits.mat     att (A x C, unit columns), original_att (A x C multi-hot),
                     allclasses_names, trainval_loc, test_seen_loc,
                     test_unseen_loc (1-based uint16), attribute_names
  res101.mat         image_files (original-style paths under
                     {DEMO_PATH_PREFIX}), labels (1-based); no features
  images/<class>/    the images
  attribute_w2v.npy  (A, 300) float32 unit "word vectors": 0.6 * a random
                     group direction + 0.8 * a random value direction
                     (attributes of one group are related)
  attributes.txt     attribute names, one per line

Load with:
  ZSLDataset(data_root=<this folder>, img_prefix='images', path_preset='DEMO',
             split='trainval')
"""
