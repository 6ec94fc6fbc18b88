"""A linear attribute-regression head (the classic ZSL baseline)."""
from typing import Optional, Tuple, Union

from torch import Tensor, nn

from zeromamba_mm.registry import MODELS
from .attribute_head import AttributeHead


@MODELS.register_module()
class LinearAttributeHead(AttributeHead):
    """Project pooled features linearly onto the attribute space.

    ``Â = W · f`` with ``f`` the last pooled feature vector (e.g. after
    ``GlobalAveragePooling``). Scores and losses come from
    :class:`AttributeHead`. This is the compatibility model of ALE/DeViSE-style
    ZSL and works on top of any mmpretrain backbone.

    Args:
        in_channels (int): Dimension of the pooled feature.
        num_attributes (int): Attribute dimension A.
        dropout (float): Dropout before the projection. Defaults to 0.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to a normal init (std 0.01) of the projection.
        **kwargs: Loss options of :class:`AttributeHead` (``loss``,
            ``attr_loss``).
    """

    def __init__(self,
                 in_channels: int,
                 num_attributes: int,
                 dropout: float = 0.0,
                 init_cfg: Optional[Union[dict, list]] = dict(
                     type='Normal', layer='Linear', std=0.01),
                 **kwargs):
        super().__init__(num_attributes, init_cfg=init_cfg, **kwargs)
        self.in_channels = in_channels
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(in_channels, num_attributes)

    def pre_logits(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """Predict ``Â`` (B, A) from the last pooled feature (B, C_in)."""
        pooled = feats[-1]
        if pooled.dim() != 2:
            raise ValueError(
                'LinearAttributeHead expects pooled features of shape (B, C); '
                f'got {tuple(pooled.shape)}. Add a GlobalAveragePooling neck.')
        return self.fc(self.dropout(pooled))
