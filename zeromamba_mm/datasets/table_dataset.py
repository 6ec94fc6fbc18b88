"""The table (CSV) format of the zero-shot datasets."""
from typing import Tuple

from zeromamba_mm.registry import DATASETS
from .table_format import load_table_annotation
from .annotation import ZSLAnnotation
from .zsl_dataset import BaseZSLDataset

__all__ = ['TableZSLDataset']


@DATASETS.register_module()
class TableZSLDataset(BaseZSLDataset):
    """A zero-shot dataset made of plain tables: a class list, a
    class-attribute table and an image list (formats in
    :mod:`zeromamba_mm.datasets.table_format`).

    Built by ``ZSLDataset(data_format='table', ...)``. See
    :class:`~zeromamba_mm.datasets.BaseZSLDataset` for the splits, the metainfo
    and the common arguments. Image paths are relative to ``img_prefix``.

    Args:
        data_root (str): Root of the files below. Defaults to ''.
        split (str): Split name. Defaults to ``'trainval'``.
        class_list_file (str): ``class,split`` CSV. Defaults to
            ``'classes.csv'``.
        attribute_file (str): Attribute CSV (with header) or (C, A) ``.npy``.
            Defaults to ``'attributes.csv'``.
        image_list_file (str): ``path,class[,split]`` CSV. Defaults to
            ``'images.csv'``.
        holdout_ratio (float): Without a split column: share of each seen
            class's images in ``test_seen``. Defaults to 0.2.
        holdout_seed (int): Seed of that hold-out. Defaults to 0.
        allow_paths_outside_prefix (bool): Accept absolute image paths and
            paths climbing out of ``img_prefix`` with ``..``. Defaults to
            False.
        **kwargs: The common arguments of ``BaseZSLDataset`` and mmpretrain's
            ``BaseDataset``.
    """

    DATA_FORMAT = 'table'
    FORMAT_ARGUMENTS = ('class_list_file', 'attribute_file', 'image_list_file',
                        'holdout_ratio', 'holdout_seed',
                        'allow_paths_outside_prefix')

    def __init__(self,
                 data_root: str = '',
                 split: str = 'trainval',
                 class_list_file: str = 'classes.csv',
                 attribute_file: str = 'attributes.csv',
                 image_list_file: str = 'images.csv',
                 holdout_ratio: float = 0.2,
                 holdout_seed: int = 0,
                 allow_paths_outside_prefix: bool = False,
                 **kwargs):
        self.class_list_file = class_list_file
        self.attribute_file = attribute_file
        self.image_list_file = image_list_file or 'images.csv'
        self.holdout_ratio = holdout_ratio
        self.holdout_seed = holdout_seed
        self.allow_paths_outside_prefix = allow_paths_outside_prefix
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _load_annotation(self) -> Tuple[ZSLAnnotation, str]:
        annotation = load_table_annotation(
            self._resolve(self.class_list_file),
            self._resolve(self.attribute_file),
            self._resolve(self.image_list_file),
            attribute_key=self.attribute_key,
            holdout_ratio=self.holdout_ratio,
            holdout_seed=self.holdout_seed,
            allow_paths_outside_prefix=self.allow_paths_outside_prefix,
            backend_args=self.backend_args)
        return annotation, self.image_list_file
