"""The xlsa17 ``.mat`` format of the zero-shot datasets."""
from typing import Optional, Tuple

from zeromamba_mm.registry import DATASETS
from .annotation import ZSLAnnotation
from .xlsa17 import load_xlsa17
from .zsl_dataset import BaseZSLDataset

__all__ = ['XLSA17Dataset']


@DATASETS.register_module()
class XLSA17Dataset(BaseZSLDataset):
    """The proposed splits of `Xian et al. (TPAMI 2018)
    <https://arxiv.org/abs/1707.00600>`_: ``att_splits.mat`` +
    ``res101.mat`` (``features`` is never read).

    Built by ``ZSLDataset(...)`` (the default ``data_format='xlsa17'``). See
    :class:`~zeromamba_mm.datasets.BaseZSLDataset` for the splits, the metainfo
    and the common arguments.

    Args:
        data_root (str): Root of the files below. Defaults to ''.
        split (str): Split name. Defaults to ``'trainval'``.
        split_file (str): ``att_splits.mat``. Defaults to
            ``'att_splits.mat'``.
        image_list_file (str): ``res101.mat``. Defaults to ``'res101.mat'``.
        path_preset (str, optional): ``'CUB'``, ``'SUN'``, ``'AWA2'``,
            ``'DEMO'`` (or a registered name) or ``'auto'``: strips the
            original ``/BS/...`` prefix of that dataset (see
            ``PATH_PRESETS``). Defaults to None.
        path_rule (dict, optional): For any other dataset:
            ``dict(old_prefix=..., new_prefix='')`` or ``dict(keep_last=N)``.
            With neither a preset nor a rule, paths are used as stored.
        **kwargs: The common arguments of ``BaseZSLDataset`` and mmpretrain's
            ``BaseDataset``.
    """

    DATA_FORMAT = 'xlsa17'
    FORMAT_ARGUMENTS = ('split_file', 'image_list_file', 'path_preset',
                        'path_rule')

    def __init__(self,
                 data_root: str = '',
                 split: str = 'trainval',
                 split_file: str = 'att_splits.mat',
                 image_list_file: str = 'res101.mat',
                 path_preset: Optional[str] = None,
                 path_rule: Optional[dict] = None,
                 **kwargs):
        # ``None`` (as the former single constructor took) means the default.
        self.split_file = split_file or 'att_splits.mat'
        self.image_list_file = image_list_file or 'res101.mat'
        self.path_preset = path_preset
        self.path_rule = path_rule
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _load_annotation(self) -> Tuple[ZSLAnnotation, str]:
        annotation = load_xlsa17(
            self._resolve(self.split_file),
            self._resolve(self.image_list_file),
            attribute_key=self.attribute_key,
            path_preset=self.path_preset,
            path_rule=self.path_rule,
            backend_args=self.backend_args)
        return annotation, self.split_file
