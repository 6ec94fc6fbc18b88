"""A classification data preprocessor that also carries extra views."""
from typing import List

import torch
from mmpretrain.models.utils.data_preprocessor import ClsDataPreprocessor

from zeromamba_mm.registry import MODELS


@MODELS.register_module()
class MultiViewClsDataPreprocessor(ClsDataPreprocessor):
    """mmpretrain's ``ClsDataPreprocessor`` for ``MultiView`` pipelines.

    With mmpretrain's ``MultiView`` transform the training inputs are V
    views per image. The first view is the clean image of the head's loss:
    it is processed exactly as by ``ClsDataPreprocessor`` (labels, one-hot,
    batch augments) and returned as ``inputs``. The other views are
    normalised the same way (no batch augments) and attached to each data
    sample as ``views`` (a list of (C, H, W) tensors), where training
    signals such as :class:`~zeromamba_mm.models.OPERASignal` read them.
    Single-view inputs (validation, test) pass through unchanged.

    Args:
        **kwargs: Arguments of ``ClsDataPreprocessor``.
    """

    def _normalise(self, view: torch.Tensor) -> torch.Tensor:
        if self.to_rgb and view.size(-3) == 3:
            view = view.flip(-3)
        view = view.float()
        if self._enable_normalize:
            view = (view - self.mean) / self.std
        return view

    def forward(self, data: dict, training: bool = False) -> dict:
        """Process the first view as ``ClsDataPreprocessor``, keep the rest.

        Args:
            data (dict): Data from the dataloader (``default_collate`` or
                ``pseudo_collate``).
            training (bool): Whether batch augments apply.
        """
        inputs = data['inputs']
        views: List[List[torch.Tensor]] = []
        first = inputs[0] if isinstance(inputs, list) and inputs else None
        view_major = isinstance(first, (list, tuple)) or (isinstance(
            first, torch.Tensor) and first.dim() == 4)
        if view_major and len(inputs) > 1:
            # Views first: pseudo_collate gives V lists of B (C, H, W)
            # tensors, default_collate V (B, C, H, W) batches.
            views = [list(v) for v in zip(*inputs[1:])]
            inputs = inputs[0]
        out = super().forward(dict(data, inputs=inputs), training)
        if views and views[0]:
            samples = out['data_samples']
            if samples is None or len(samples) != len(views):
                raise ValueError('MultiViewClsDataPreprocessor: extra views '
                                 'need one data sample per image.')
            for sample, sample_views in zip(samples, views):
                sample.set_field(
                    [self._normalise(self.cast_data(v))
                     for v in sample_views],
                    'views',
                    field_type='data')
        return out
