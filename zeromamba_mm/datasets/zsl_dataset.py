"""The base of the zero-shot datasets.

One registered class per file format shares this base:
:class:`XLSA17Dataset` (``att_splits.mat`` + ``res101.mat``,
``type='zeromamba_mm.XLSA17Dataset'``) and :class:`TableZSLDataset` (CSV
tables, ``type='zeromamba_mm.TableZSLDataset'``); each adds itself to
:data:`DATA_FORMATS`, from which the builder of :mod:`.zsl_dataset_builder`
(``type='zeromamba_mm.ZSLDataset'``) picks one by ``data_format``.
"""
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.fileio import get_file_backend
from mmpretrain.datasets import BaseDataset

from .annotation import ZSLAnnotation
from .data_checks import ZSLDataError, check_no_duplicates
from .image_check import CHECK_MODES, check_image_files
from .samplers import seeded_rngs
from .text_files import read_name_list
from .zsl_splits import (CLEAN_SPLITS, CleanSplit, make_clean_split,
                         select_split)

__all__ = [
    'BaseZSLDataset', 'CleanSplit', 'make_clean_split', 'SampleLoadError',
    'DATA_FORMATS'
]

#: data_format name -> dataset class (each format class adds itself).
DATA_FORMATS: Dict[str, type] = {}


class SampleLoadError(RuntimeError):
    """Raised when the pipeline fails on one sample; names its file."""


class BaseZSLDataset(BaseDataset):
    """Zero-shot learning dataset (CUB, SUN, AWA2, FLO, the demo, or yours).

    The base of the format classes :class:`~zeromamba_mm.datasets.
    XLSA17Dataset` (the proposed splits of `Xian et al. (TPAMI 2018)
    <https://arxiv.org/abs/1707.00600>`_) and
    :class:`~zeromamba_mm.datasets.TableZSLDataset`; the builder
    :func:`ZSLDataset` picks one by ``data_format``. Each sample is
    ``dict(img_path=...,
    gt_label=<global class id>)``, so mmpretrain pipelines
    (``LoadImageFromFile``, ``Resize``, ``PackInputs``...) apply. Labels
    always come from the annotation, never from folder names. All files are
    read through :mod:`mmengine.fileio`, so ``data_root`` may live on any
    registered backend (``s3://...``, ``petrel://...``).

    ``metainfo`` holds:

    - ``class_semantics``: the split's
      :class:`~zeromamba_mm.structures.ClassSemantics` (matrix and its
      normalisation, names, seen/unseen ids); the keys below repeat its
      fields for mmpretrain and older readers.
    - ``classes``: tuple of the C class names (``class_000``... when the file
      has none, as FLO's).
    - ``class_attributes``: (C, A) float32 - the class-attribute matrix with
      unit rows (``attribute_key='att'``) or the raw values
      (``'original_att'``; AWA2 marks missing values with -1).
    - ``seen_classes`` / ``unseen_classes``: sorted int64 global ids of the
      training and the zero-shot classes *of the protocol this split belongs
      to*, from the split definition (the trainval classes, and all other
      classes of the class list), not from the images present.
    - ``classes_without_samples``: sorted int64 ids of the classes this
      split should evaluate or train (seen for trainval/test_seen, unseen
      for test_unseen, both for test/clean_val) that have no sample in it.
      They stay in the label space; the dataset warns, and the metric
      reports them.
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
        data_format (str, optional): The class's own format name
            (``'xlsa17'`` or ``'table'``), or None.
        img_prefix (str): Image root; relative paths are joined to
            ``data_root``. Defaults to ''.
        attribute_key (str): ``'att'`` (normalised) or ``'original_att'``
            (raw). Defaults to ``'att'``.
        class_names_file (str, optional): Text file with one class name per
            line, replacing the stored names (e.g. for FLO).
        attribute_names_file (str, optional): Text file with one attribute
            name per line.
        allow_overlapping_splits (bool): Allow ``train``/``val``.
        clean_unseen_ratio (float): Share of seen classes held out as
            pseudo-unseen by the clean splits. Defaults to 0.2.
        clean_val_ratio (float): Share of the other seen classes' trainval
            images held out as pseudo test-seen. Defaults to 0.2.
        clean_seed (int): Seed of the clean splits. Defaults to 0.
        check_images (bool | str): Check every image of the split before
            training with :func:`~zeromamba_mm.datasets.check_image_files`:
            ``True`` or ``'fast'`` (exists, non-empty, image header),
            ``'full'`` (also decode each one), ``False`` (no check).
            Defaults to True.
        backend_args (dict, optional): Arguments of the mmengine file
            backend (as ``LoadImageFromFile``'s). Defaults to None.
        metainfo (dict, optional): Extra meta information. ``classes`` given
            here must have C entries.
        pipeline (Sequence): Processing pipeline. Defaults to ().
        test_mode (bool): Defaults to False.
        lazy_init (bool): Defer building the sample list (metainfo is
            available at once). Defaults to False.
        **kwargs: The format's own arguments (see its class) and those of
            mmpretrain's ``BaseDataset`` (``indices``, ``serialize_data``,
            ``classes``...).

    Examples:
        >>> ds = ZSLDataset(  # the builder: data_format='xlsa17'

        ...     data_root='data/AWA2', split='test', path_preset='AWA2',
        ...     img_prefix='Animals_with_Attributes2/JPEGImages')
        >>> type(ds).__name__, ds.metainfo['class_attributes'].shape
        ('XLSA17Dataset', (50, 85))
    """

    STANDARD_SPLITS = ('trainval', 'test_seen', 'test_unseen', 'test')
    CLEAN_SPLITS = CLEAN_SPLITS
    OVERLAPPING_SPLITS = ('train', 'val')
    SPLITS = STANDARD_SPLITS + CLEAN_SPLITS + OVERLAPPING_SPLITS
    #: Name of the file format (set by each format class).
    DATA_FORMAT: Optional[str] = None
    #: The arguments of the format class's own ``__init__`` (the builder
    #: names the format an argument of another format belongs to).
    FORMAT_ARGUMENTS: Tuple[str, ...] = ()
    #: The pipeline is seeded from ``SeededIndex`` (EpochAwareSampler).
    accepts_seeded_indices = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.DATA_FORMAT is not None:
            DATA_FORMATS[cls.DATA_FORMAT] = cls

    def __init__(self,
                 data_root: str = '',
                 split: str = 'trainval',
                 data_format: Optional[str] = None,
                 img_prefix: str = '',
                 attribute_key: str = 'att',
                 class_names_file: Optional[str] = None,
                 attribute_names_file: Optional[str] = None,
                 allow_overlapping_splits: bool = False,
                 clean_unseen_ratio: float = 0.2,
                 clean_val_ratio: float = 0.2,
                 clean_seed: int = 0,
                 check_images: Union[bool, str] = True,
                 backend_args: Optional[dict] = None,
                 metainfo: Optional[dict] = None,
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 lazy_init: bool = False,
                 **kwargs):
        if self.DATA_FORMAT is None:
            raise TypeError(
                'BaseZSLDataset is the base of the format classes; build '
                'XLSA17Dataset, TableZSLDataset or ZSLDataset(data_format='
                '...).')
        if data_format is not None and data_format != self.DATA_FORMAT:
            raise ValueError(
                f'{type(self).__name__} reads data_format='
                f'{self.DATA_FORMAT!r}, got data_format={data_format!r}.')
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
        modes = {True: 'fast', False: None}
        if isinstance(check_images, bool):
            check_images = modes[check_images]
        elif check_images not in CHECK_MODES:
            raise ValueError(
                f'check_images must be True, False or one of {CHECK_MODES}, '
                f'got {check_images!r}.')
        self.split = split
        self.data_format = self.DATA_FORMAT
        self.check_images = check_images
        self.backend_args = backend_args
        self.attribute_key = attribute_key
        self._root = data_root

        # Parse the files first so that metainfo exists even with
        # ``lazy_init=True`` (hooks and metrics read it before iterating).
        annotation, ann_file = self._load_annotation()
        if attribute_names_file is not None:
            path = self._resolve(attribute_names_file)
            names = read_name_list(path, 'Attribute-name file', backend_args)
            if len(names) != annotation.num_attributes:
                raise ZSLDataError(
                    f'{path} lists {len(names)} attribute names but '
                    f'{annotation.source} has {annotation.num_attributes} '
                    'attributes.')
            annotation.semantics = annotation.semantics.replace(
                attribute_names=names)
        if class_names_file is not None:
            path = self._resolve(class_names_file)
            names = read_name_list(path, 'Class-name file', backend_args)
            if len(names) != annotation.num_classes:
                raise ZSLDataError(
                    f'{path} lists {len(names)} class names but the dataset '
                    f'has {annotation.num_classes} classes.')
            annotation.semantics = annotation.semantics.replace(
                class_names=names)

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
            check_no_duplicates([str(name) for name in given],
                                'metainfo',
                                'class names',
                                key='classes')
            zsl_meta['classes'] = tuple(given)
            zsl_meta['class_semantics'] = zsl_meta['class_semantics'].replace(
                class_names=tuple(given))
        self._metainfo.update(zsl_meta)
        self._warn_classes_without_samples()
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------------
    def _load_annotation(self) -> Tuple[ZSLAnnotation, str]:
        """Read the files of the format: (annotation, ann_file)."""
        raise NotImplementedError

    def _backend(self, path: str):
        return get_file_backend(
            path or '.', backend_args=self.backend_args, enable_singleton=True)

    @staticmethod
    def _is_abs(path: str) -> bool:
        return osp.isabs(path) or '://' in path

    def _resolve(self, path: str) -> str:
        """Join a file name to ``data_root`` (on its backend)."""
        if not path or self._is_abs(path) or not self._root:
            return path
        return self._backend(self._root).join_path(self._root, path)

    def _select(self, annotation: ZSLAnnotation, split: str,
                unseen_ratio: float, val_ratio: float, seed: int):
        """Return the image indices of ``split`` and its ZSL metainfo."""
        return select_split(annotation, split, unseen_ratio, val_ratio, seed)

    def _warn_classes_without_samples(self) -> None:
        without = self._metainfo['classes_without_samples']
        if without.size:
            names = [self._metainfo['classes'][c] for c in without[:10]]
            warnings.warn(
                f'{type(self).__name__} split={self.split!r} '
                f'({self.ann_file}): {without.size} class(es) of the split '
                f'have no image: {names}. They stay in the label space '
                "(metainfo['classes_without_samples']); their accuracy "
                'cannot be measured.')

    def _image_path(self, path: str) -> str:
        if self.img_prefix and not self._is_abs(path):
            return self._backend(self.img_prefix).join_path(
                self.img_prefix, path)
        return path

    def load_data_list(self) -> List[dict]:
        """Build ``dict(img_path, gt_label)`` for every image of the split."""
        annotation = self._annotation
        if annotation is None:
            raise RuntimeError('The annotation was released after full_init.')
        data_list = [
            dict(
                img_path=self._image_path(annotation.image_paths[i]),
                gt_label=int(annotation.labels[i]))
            for i in self._indices_of_split
        ]
        if self.check_images:
            self._check_images([d['img_path'] for d in data_list])
        return data_list

    def _check_images(self, paths: List[str]) -> None:
        problems = check_image_files(paths, self.check_images,
                                     self.backend_args)
        if not problems:
            return
        missing = [p for p, why in problems if why == 'missing']
        broken = [f'{p} ({why})' for p, why in problems if why != 'missing']
        where = (f'{len(paths)} images of split {self.split!r} (image root '
                 f'{self.img_prefix!r})')
        parts = []
        if missing:
            hint = ''
            if missing[0].startswith('/BS/'):
                hint = (" These are the authors' original paths: set "
                        "path_preset (e.g. 'auto') or path_rule.")
            parts.append(f'{len(missing)} of {where} are missing; first: '
                         f'{missing[:5]}.{hint}')
        if broken:
            parts.append(f'{len(broken)} of {where} are not readable '
                         f'images: {broken[:5]}.')
        message = ' '.join(parts) + (
            ' Fix or remove them (tools/check_data.py lists all), or pass '
            'check_images=False to skip this check.')
        raise (FileNotFoundError(message)
               if missing else ZSLDataError(message))

    def full_init(self):
        """Build the sample list, then drop the parsed annotation."""
        if self._fully_initialized:
            return
        super().full_init()
        self._annotation = None

    def __getitem__(self, idx: int) -> dict:
        """Process sample ``idx``; a :class:`SeededIndex` from
        :class:`EpochAwareSampler` seeds the pipeline's randomness."""
        seed = getattr(idx, 'sample_seed', None)
        if seed is None:
            return super().__getitem__(idx)
        with seeded_rngs(seed):
            return super().__getitem__(int(idx))

    def prepare_data(self, idx: int):
        """Run the pipeline; a failure names the sample's file (a zero-byte
        JPEG otherwise surfaces as a bare ``cv2.error``)."""
        try:
            return super().prepare_data(idx)
        except Exception as e:
            path = self.get_data_info(idx).get('img_path')
            raise SampleLoadError(
                f'{type(self).__name__} split={self.split!r}: the pipeline '
                f'failed on sample {int(idx)} ({path}): '
                f'{type(e).__name__}: {e}'.rstrip() + ' - check the file '
                "(check_images='full' or tools/check_data.py --mode full "
                'finds all such files up front).') from e

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        meta = self._metainfo
        return [
            f'Data format: \t{self.DATA_FORMAT}',
            f'Split: \t{self.split}',
            f'Annotation file: \t{self.ann_file}',
            f'Prefix of images: \t{self.img_prefix}',
            f'Seen / unseen classes: \t{len(meta["seen_classes"])} / '
            f'{len(meta["unseen_classes"])}',
            f'Classes without samples: \t'
            f'{len(meta["classes_without_samples"])}',
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
