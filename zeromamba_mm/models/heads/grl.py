"""GRL: ZeroMamba's Global Representation Learning."""
from typing import Optional, Union

from mmengine.model import BaseModule
from torch import Tensor, nn

from zeromamba_mm.registry import MODELS


@MODELS.register_module()
class GlobalRepresentationLearning(BaseModule):
    """Map the backbone's ImageNet logits to the global prediction.

    ``Ã_global = fc(imagenet_logits)`` with ``fc = Linear(in_channels, A)`` and
    no nonlinearity in between (ZeroMamba, `arXiv:2408.14868
    <https://arxiv.org/abs/2408.14868>`_). The 1000-d input is the output of
    the fine-tuned ImageNet classifier, so the global branch reuses the
    backbone's class knowledge.

    Args:
        num_attributes (int): Number of attributes A.
        in_channels (int): Dimension of the input logits. Defaults to 1000.
        bias (bool): Give the linear map a bias. The authors train without
            one but build their test-time model with ``bias=True`` (and load
            non-strictly, leaving a random bias); ``False`` is the training
            recipe. Defaults to False.
        init_cfg (dict, optional): Initialisation config. Defaults to None
            (PyTorch's Linear init, as the authors).
    """

    def __init__(self,
                 num_attributes: int,
                 in_channels: int = 1000,
                 bias: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None):
        super().__init__(init_cfg=init_cfg)
        self.in_channels = int(in_channels)
        self.fc = nn.Linear(self.in_channels, int(num_attributes), bias=bias)

    def forward(self, logits: Tensor) -> Tensor:
        """``Ã_global`` (B, A) from the ImageNet logits (B, in_channels)."""
        if logits.dim() != 2 or logits.shape[1] != self.in_channels:
            raise ValueError(
                'GlobalRepresentationLearning expects ImageNet logits of '
                f'shape (B, {self.in_channels}); got {tuple(logits.shape)}. '
                'Use '
                'ZeroMambaNeck to produce them.')
        return self.fc(logits)
