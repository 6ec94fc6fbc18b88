"""The zero-shot learning dataset: xlsa17 splits or user tables."""
import os.path as osp
import warnings
from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.fileio import join_path
from mmpretrain.datasets import BaseDataset

from zeromamba_mm.registry import DATASETS
from .table_format import load_table_annotation, read_rows
from .xlsa17 import ZSLAnnotation, ZSLDataError, holdout_per_class, load_xlsa17

__all__ = ['ZSLDataset', 'CleanSplit', 'make_clean_split']


class CleanSplit(NamedTuple):
    """A validation split carved from the seen classes only.

    Attributes:
        train (np.ndarray): ``clean_train`` image indices.
        val_seen (np.ndarray): Held-out images of the remaining seen classes
            (pseudo test-seen).
        val_unseen (np.ndarray): All trainval images of the pseudo-unseen
            classes.
        seen_classes (np.ndarray): Remaining seen classes (sorted).
        unseen_classes (np.ndarray): Pseudo-unseen classes (sorted).
    """
    train: np.ndarray
    val_seen: np.ndarray
    val_unseen: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray


def make_clean_split(trainval: np.ndarray,
                     labels: np.ndarray,
                     seen_classes: np.ndarray,
                     unseen_ratio: float = 0.2,
                     val_ratio: float = 0.2,
                     seed: int = 0) -> CleanSplit:
    """Carve a model-selection split out of the trainval images.

    Published ZSL results pick epochs and calibration on the test sets; this
    split lets one select on seen-class data only. With
    ``rng = numpy.random.default_rng(seed)``:

    1. ``max(1, round(unseen_ratio * S))`` of the S seen classes are drawn
       with ``rng.choice`` as pseudo-unseen;
    2. in each remaining class, :func:`holdout_per_class` draws
       ``round(val_ratio * n)`` trainval images as pseudo test-seen.

    Args:
        trainval (np.ndarray): Trainval image indices.
        labels (np.ndarray): Global labels of all images.
        seen_classes (np.ndarray): The seen classes.
        unseen_ratio (float): Fraction of seen classes held out, in (0, 1).
        val_ratio (float): Fraction of the remaining classes' images held
            out, in [0, 1).
        seed (int): Seed of both draws.

    Returns:
        CleanSplit: Disjoint index sets covering ``trainval``.
    """
    seen_classes = np.unique(np.asarray(seen_classes, dtype=np.int64))
    if not 0 < unseen_ratio < 1:
        raise ValueError(
            f'clean_unseen_ratio must be in (0, 1), got {unseen_ratio}.')
    num_pseudo = max(1, int(round(unseen_ratio * len(seen_classes))))
    if num_pseudo >= len(seen_classes):
        raise ZSLDataError(
            f'The clean split needs at least 2 seen classes; there are '
            f'{len(seen_classes)} and clean_unseen_ratio={unseen_ratio} '
            f'holds out {num_pseudo}.')
    rng = np.random.default_rng(seed)
    pseudo_unseen = np.sort(
        rng.choice(seen_classes, size=num_pseudo, replace=False))
    remaining = np.setdiff1d(seen_classes, pseudo_unseen)
    trainval = np.asarray(trainval, dtype=np.int64)
    in_pseudo = np.isin(labels[trainval], pseudo_unseen)
    train, val_seen = holdout_per_class(trainval[~in_pseudo], labels,
                                        val_ratio, rng)
    return CleanSplit(train, val_seen, trainval[in_pseudo], remaining,
                      pseudo_unseen)


@DATASETS.register_module()
class ZSLDataset(BaseDataset):
    """Zero-shot learning dataset (CUB, SUN, AWA2, FLO, the demo, or yours).

    Reads the proposed splits of `Xian et al. (TPAMI 2018)
    <https://arxiv.org/abs/1707.00600>`_ (``att_splits.mat`` +
    ``res101.mat``; ``features`` is never needed) or plain tables (see
    :mod:`zeromamba_mm.datasets.table_format`). Each sample is
    ``dict(img_path=..., gt_label=<global class id>)``, so mmpretrain
    pipelines (``LoadImageFromFile``, ``Resize``, ``PackInputs``...) apply.
    Labels always come from the annotation (``labels`` of ``res101.mat``),
    never from folder names.

    ``metainfo`` holds:

    - ``classes``: tuple of the C class names (``class_000``... when the file
      has none, as FLO's).
    - ``class_attributes``: (C, A) float32 - the transposed ``att`` with unit
      rows, or the raw ``original_att`` (where AWA2 marks missing values
      with -1) when ``attribute_key='original_att'``.
    - ``seen_classes`` / ``unseen_classes``: sorted int64 global ids of the
      training and the zero-shot classes *of the protocol this split belongs
      to*: trainval/test_unseen classes for the standard splits, train/val
      classes for ``train``/``val``, and the pseudo split for
      ``clean_train``/``clean_val``. ``class_attributes`` always covers all
      C classes.
    - ``attribute_names`` (tuple of str or None) and ``num_attributes``.

    Splits:

    - ``trainval``, ``test_seen``, ``test_unseen``; ``test`` = test_seen then
      test_unseen (for GZSL).
    - ``clean_train`` / ``clean_val`` (see :func:`make_clean_split`): a
      validation protocol inside the seen classes that never touches test
      images. ``clean_val`` = pseudo test-seen images, then all images of the
      pseudo-unseen classes.
    - ``train`` / ``val`` (xlsa17's own validation split) only with
      ``allow_overlapping_splits=True``: their images overlap ``test_seen``.

    Args:
        data_root (str): Root of the files below. Defaults to ''.
        split (str): One of the splits above. Defaults to ``'trainval'``.
        data_format (str): ``'xlsa17'`` (.mat files) or ``'table'``.
        split_file (str, optional): xlsa17 ``att_splits.mat``. Defaults to
            ``'att_splits.mat'``.
        image_list_file (str, optional): ``res101.mat`` (xlsa17) or the image
            list CSV (table). Defaults to ``'res101.mat'`` / ``'images.csv'``.
        class_list_file (str): Table format class list.
            Defaults to ``'classes.csv'``.
        attribute_file (str): Table format attribute CSV/.npy.
            Defaults to ``'attributes.csv'``.
        img_prefix (str): Image root; relative paths are joined to
            ``data_root``. Defaults to ''.
        path_preset (str, optional): xlsa17 only. ``'CUB'``, ``'SUN'``,
            ``'AWA2'``, ``'DEMO'`` or ``'auto'``: strips the original
            ``/BS/...`` prefix of that dataset (see ``PATH_PRESETS``).
        path_rule (dict, optional): xlsa17 only; for any other dataset:
            ``dict(old_prefix=..., new_prefix='')`` or ``dict(keep_last=N)``.
            With neither a preset nor a rule, paths are used as stored.
        attribute_key (str): ``'att'`` (normalised) or ``'original_att'``
            (raw). Defaults to ``'att'``.
        class_names_file (str, optional): Text file with one class name per
            line, replacing the stored names (e.g. for FLO).
        attribute_names_file (str, optional): Text file with one attribute
            name per line.
        holdout_ratio (float): Table format without a split column: share of
            each seen class's images in ``test_seen``. Defaults to 0.2.
        holdout_seed (int): Seed of that hold-out. Defaults to 0.
        allow_overlapping_splits (bool): Allow ``train``/``val``.
        clean_unseen_ratio (float): Share of seen classes held out as
            pseudo-unseen by the clean splits. Defaults to 0.2.
        clean_val_ratio (float): Share of the other seen classes' trainval
            images held out as pseudo test-seen. Defaults to 0.2.
        clean_seed (int): Seed of the clean splits. Defaults to 0.
        check_images (bool): Check that every image of the split exists on
            the local file system (raise otherwise). Defaults to True.
        metainfo (dict, optional): Extra meta information. ``classes`` given
            here must have C entries.
        pipeline (Sequence): Processing pipeline. Defaults to ().
        test_mode (bool): Defaults to False.
        lazy_init (bool): Defer building the sample list (metainfo is
            available at once). Defaults to False.
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``indices``, ``serialize_data``, ``classes``...).

    Examples:
        >>> ds = ZSLDataset(
        ...     data_root='data/AWA2', split='test', path_preset='AWA2',
        ...     img_prefix='Animals_with_Attributes2/JPEGImages')
        >>> ds.metainfo['class_attributes'].shape
        (50, 85)
    """

    STANDARD_SPLITS = ('trainval', 'test_seen', 'test_unseen', 'test')
    CLEAN_SPLITS = ('clean_train', 'clean_val')
    OVERLAPPING_SPLITS = ('train', 'val')
    SPLITS = STANDARD_SPLITS + CLEAN_SPLITS + OVERLAPPING_SPLITS

    def __init__(self,
                 data_root: str = '',
                 split: str = 'trainval',
                 data_format: str = 'xlsa17',
                 split_file: Optional[str] = None,
                 image_list_file: Optional[str] = None,
                 class_list_file: str = 'classes.csv',
                 attribute_file: str = 'attributes.csv',
                 img_prefix: str = '',
                 path_preset: Optional[str] = None,
                 path_rule: Optional[dict] = None,
                 attribute_key: str = 'att',
                 class_names_file: Optional[str] = None,
                 attribute_names_file: Optional[str] = None,
                 holdout_ratio: float = 0.2,
                 holdout_seed: int = 0,
                 allow_overlapping_splits: bool = False,
                 clean_unseen_ratio: float = 0.2,
                 clean_val_ratio: float = 0.2,
                 clean_seed: int = 0,
                 check_images: bool = True,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 **kwargs):
        if split not in self.SPLITS:
            raise ValueError(
                f'Unknown split {split!r}; choose one of {self.SPLITS}.')
        if split in self.OVERLAPPING_SPLITS:
            if not allow_overlapping_splits:
                raise ValueError(
                    f'split={split!r} uses xlsa17 train_loc/val_loc, whose '
                    'images overlap test_seen_loc: selecting models on them '
                    'leaks test images. Use clean_train/clean_val, or pass '
                    'allow_overlapping_splits=True to use them anyway.')
            warnings.warn(
                f'ZSLDataset split={split!r}: xlsa17 train_loc/val_loc '
                'overlap test_seen_loc; results selected on them are not '
                'clean zero-shot results.')
        if data_format not in ('xlsa17', 'table'):
            raise ValueError("data_format must be 'xlsa17' or 'table', got "
                             f'{data_format!r}.')
        if data_format == 'table' and (path_preset or path_rule):
            raise ValueError('path_preset/path_rule apply to xlsa17 .mat '
                             'files; table image paths are relative to '
                             'img_prefix already.')
        self.split = split
        self.data_format = data_format
        self.check_images = check_images
        if split_file is None:
            split_file = 'att_splits.mat' if data_format == 'xlsa17' else ''
        if image_list_file is None:
            image_list_file = ('res101.mat'
                               if data_format == 'xlsa17' else 'images.csv')
        self._root = data_root

        # Parse the files first so that metainfo exists even with
        # ``lazy_init=True`` (hooks and metrics read it before iterating).
        if data_format == 'xlsa17':
            annotation = load_xlsa17(
                self._resolve(split_file),
                self._resolve(image_list_file),
                attribute_key=attribute_key,
                path_preset=path_preset,
                path_rule=path_rule)
            if attribute_names_file is not None:
                names = [
                    ','.join(f)
                    for _, f in read_rows(self._resolve(attribute_names_file))
                ]
                if len(names) != annotation.num_attributes:
                    raise ZSLDataError(
                        f'{self._resolve(attribute_names_file)} lists '
                        f'{len(names)} attribute names but {split_file} has '
                        f'{annotation.num_attributes} attributes.')
                annotation.attribute_names = tuple(names)
            ann_file = split_file
        else:
            annotation = load_table_annotation(
                self._resolve(class_list_file),
                self._resolve(attribute_file),
                self._resolve(image_list_file),
                attribute_key=attribute_key,
                attribute_names_file=(self._resolve(attribute_names_file)
                                      if attribute_names_file else None),
                holdout_ratio=holdout_ratio,
                holdout_seed=holdout_seed)
            ann_file = image_list_file
        if class_names_file is not None:
            path = self._resolve(class_names_file)
            names = [','.join(f) for _, f in read_rows(path)]
            if len(names) != annotation.num_classes:
                raise ZSLDataError(
                    f'{path} lists {len(names)} class names but the dataset '
                    f'has {annotation.num_classes} classes.')
            annotation.class_names = tuple(names)

        self._indices_of_split, zsl_meta = self._select(
            annotation, split, clean_unseen_ratio, clean_val_ratio, clean_seed)
        self._annotation: Optional[ZSLAnnotation] = annotation

        super().__init__(
            ann_file=ann_file,
            metainfo=metainfo,
            data_root=data_root,
            data_prefix=img_prefix,
            pipeline=pipeline,
            test_mode=test_mode,
            lazy_init=True,
            **kwargs)
        computed = sorted(set(self._metainfo) & set(zsl_meta) - {'classes'})
        if computed:
            raise ValueError(
                f'metainfo keys {computed} are computed from the annotation '
                'files and cannot be given; use class_names_file / '
                'attribute_names_file / attribute_key instead.')
        given = self._metainfo.get('classes')
        if given is not None and len(given) != annotation.num_classes:
            raise ZSLDataError(
                f'metainfo/classes gives {len(given)} class names but the '
                f'dataset has {annotation.num_classes} classes.')
        if given is not None:
            zsl_meta['classes'] = tuple(given)
        self._metainfo.update(zsl_meta)
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------------
    def _resolve(self, path: str) -> str:
        if not path or osp.isabs(path) or not self._root:
            return path
        return join_path(self._root, path)

    @staticmethod
    def _validate_classes(annotation: ZSLAnnotation) -> tuple:
        """Check the standard split and return (seen, unseen) class ids."""
        labels, splits = annotation.labels, annotation.splits
        seen = annotation.seen_classes
        if seen is None:
            seen = np.unique(labels[splits['trainval']])
        unseen = annotation.unseen_classes
        if unseen is None:
            unseen = np.unique(labels[splits['test_unseen']])
        seen = np.sort(np.asarray(seen, dtype=np.int64))
        unseen = np.sort(np.asarray(unseen, dtype=np.int64))
        both = np.intersect1d(seen, unseen)
        if both.size:
            raise ZSLDataError(
                f'{annotation.source}: seen and unseen classes overlap: '
                f'{[annotation.class_names[c] for c in both[:5]]}.')
        for name, allowed, kind in (('trainval', seen, 'seen'), ('test_seen',
                                                                 seen, 'seen'),
                                    ('test_unseen', unseen, 'unseen')):
            wrong = ~np.isin(labels[splits[name]], allowed)
            if wrong.any():
                cls = int(labels[splits[name]][wrong][0])
                raise ZSLDataError(
                    f'{annotation.source}: {int(wrong.sum())} {name} images '
                    f'belong to classes outside the {kind} classes (first: '
                    f'{annotation.class_names[cls]!r}).')
        return seen, unseen

    def _select(self, annotation: ZSLAnnotation, split: str,
                unseen_ratio: float, val_ratio: float, seed: int):
        """Return the image indices of ``split`` and its ZSL metainfo."""
        seen, unseen = self._validate_classes(annotation)
        splits, labels = annotation.splits, annotation.labels
        if split in ('trainval', 'test_seen', 'test_unseen'):
            indices = splits[split]
        elif split == 'test':
            indices = np.concatenate(
                [splits['test_seen'], splits['test_unseen']])
        elif split in self.CLEAN_SPLITS:
            clean = make_clean_split(splits['trainval'], labels, seen,
                                     unseen_ratio, val_ratio, seed)
            indices = (
                clean.train if split == 'clean_train' else np.concatenate(
                    [clean.val_seen, clean.val_unseen]))
            seen, unseen = clean.seen_classes, clean.unseen_classes
        else:  # train / val: xlsa17's own (overlapping) validation protocol
            missing = [f'{k}_loc' for k in ('train', 'val') if k not in splits]
            if missing:
                raise ZSLDataError(
                    f'{annotation.source} has no {missing}; split {split!r} '
                    f'needs them. Splits present: {sorted(splits)}.')
            indices = splits[split]
            seen = np.unique(labels[splits['train']])
            unseen = np.unique(labels[splits['val']])
        meta = dict(
            classes=tuple(annotation.class_names),
            class_attributes=np.ascontiguousarray(
                annotation.attributes, dtype=np.float32),
            seen_classes=np.asarray(seen, dtype=np.int64),
            unseen_classes=np.asarray(unseen, dtype=np.int64),
            attribute_names=(tuple(annotation.attribute_names)
                             if annotation.attribute_names else None),
            num_attributes=annotation.num_attributes)
        return np.asarray(indices, dtype=np.int64), meta

    def load_data_list(self) -> List[dict]:
        """Build ``dict(img_path, gt_label)`` for every image of the split."""
        annotation = self._annotation
        if annotation is None:
            raise RuntimeError('The annotation was released after full_init.')
        data_list, missing = [], []
        for i in self._indices_of_split:
            path = annotation.image_paths[i]
            if self.img_prefix and not osp.isabs(path):
                img_path = osp.join(self.img_prefix, path)
            else:
                img_path = path
            if self.check_images and not osp.isfile(img_path):
                missing.append(img_path)
            data_list.append(
                dict(img_path=img_path, gt_label=int(annotation.labels[i])))
        if missing:
            hint = ''
            if missing[0].startswith('/BS/'):
                hint = (" These are the authors' original paths: set "
                        "path_preset (e.g. 'auto') or path_rule.")
            raise FileNotFoundError(
                f'{len(missing)} of {len(data_list)} images of split '
                f'{self.split!r} are missing (image root '
                f'{self.img_prefix!r}); first: {missing[:5]}.{hint} Pass '
                'check_images=False to skip this check.')
        return data_list

    def full_init(self):
        """Build the sample list, then drop the parsed annotation."""
        if self._fully_initialized:
            return
        super().full_init()
        self._annotation = None

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        meta = self._metainfo
        return [
            f'Split: \t{self.split}',
            f'Annotation file: \t{self.ann_file}',
            f'Prefix of images: \t{self.img_prefix}',
            f'Seen / unseen classes: \t{len(meta["seen_classes"])} / '
            f'{len(meta["unseen_classes"])}',
            f'Number of attributes: \t{meta["num_attributes"]}',
        ]

    @property
    def seen_classes(self) -> np.ndarray:
        """Sorted global ids of the training classes of this split."""
        return self._metainfo['seen_classes'].copy()

    @property
    def unseen_classes(self) -> np.ndarray:
        """Sorted global ids of the zero-shot classes of this split."""
        return self._metainfo['unseen_classes'].copy()

    @property
    def class_attributes(self) -> np.ndarray:
        """(C, A) float32 class-attribute matrix."""
        return self._metainfo['class_attributes'].copy()
