"""Attribute heads that wrap another attribute head and add a branch.

The training-signal heads (IDML's uncertainty branch, the PDML-inspired
region Gaussians) work with any attribute head of the plugin: the wrapped
head (``base``) predicts ``Â`` as before and the wrapper adds its own
branch on the features. The base head's parameters keep their names under
``head.base.``; :meth:`HeadWrapper.plain_state_dict` gives a checkpoint of
the plain model without the training-only branch.
"""
from typing import Dict, Optional, Sequence, Tuple, Union

from torch import Tensor

from zeromamba_mm.registry import MODELS
from .attribute_head import AttributeHead


def pooled_feature(feats: Sequence[Tensor],
                   in_channels: int,
                   feature_index: Optional[int] = None,
                   owner: str = 'head') -> Tensor:
    """The pooled backbone feature (B, C) a branch reads.

    By default the first (B, C, H, W) map of ``feats`` is average-pooled
    (ZeroMamba's ``x_pre``); without one, the last (B, C) tensor is taken
    (a ``GlobalAveragePooling`` neck). ``feature_index`` picks one.

    Args:
        feats (tuple[Tensor]): Features from the neck/backbone.
        in_channels (int): Expected channels C.
        feature_index (int, optional): Index into ``feats``.
        owner (str): Name used in error messages.
    """
    if isinstance(feats, Tensor):
        feats = (feats, )
    if feature_index is not None:
        if not -len(feats) <= feature_index < len(feats):
            raise ValueError(f'{owner}: feature_index={feature_index} is out '
                             f'of range for {len(feats)} feature tensors.')
        feat = feats[feature_index]
    else:
        maps = [f for f in feats if f.dim() == 4]
        vectors = [f for f in feats if f.dim() == 2]
        feat = maps[0] if maps else (vectors[-1] if vectors else None)
    if feat is None or feat.dim() not in (2, 4):
        raise ValueError(
            f'{owner} needs the pooled backbone feature: a (B, C, H, W) map '
            'or a pooled (B, C) tensor among the features; got shapes '
            f'{[tuple(f.shape) for f in feats]} (set feature_index).')
    if feat.dim() == 4:
        feat = feat.mean(dim=(2, 3))
    if feat.shape[1] != in_channels:
        raise ValueError(
            f'{owner} was built with in_channels={in_channels}, but the '
            f'pooled feature has {feat.shape[1]} channels (shapes '
            f'{[tuple(f.shape) for f in feats]}; set in_channels or '
            'feature_index).')
    return feat


def region_map(feats: Sequence[Tensor],
               in_channels: int,
               feature_index: Optional[int] = None,
               owner: str = 'head') -> Tensor:
    """The (B, C, H, W) region map a branch reads (the first 4-D feature).

    Args:
        feats (tuple[Tensor]): Features from the neck/backbone.
        in_channels (int): Expected channels C.
        feature_index (int, optional): Index into ``feats``.
        owner (str): Name used in error messages.
    """
    if isinstance(feats, Tensor):
        feats = (feats, )
    if feature_index is not None and -len(feats) <= feature_index < len(
            feats):
        candidates = [feats[feature_index]]
    else:
        candidates = [f for f in feats if f.dim() == 4]
    if not candidates or candidates[0].dim() != 4:
        raise ValueError(
            f'{owner} needs a (B, C, H, W) region map among the features '
            f'(e.g. x_pre of ZeroMambaNeck, or no pooling neck); got shapes '
            f'{[tuple(f.shape) for f in feats]} (set feature_index).')
    feat = candidates[0]
    if feat.shape[1] != in_channels:
        raise ValueError(
            f'{owner} was built with in_channels={in_channels}, but the '
            f'region map has {feat.shape[1]} channels.')
    return feat


class HeadWrapper(AttributeHead):
    """Base of heads that wrap an attribute head (``base``).

    The wrapper shares the base head's loss modules and class semantics;
    ``Â`` (:meth:`pre_logits`), the class scoring and the predictions are
    the base head's.

    Args:
        head (dict | AttributeHead): Config (or instance) of the wrapped
            attribute head, e.g. ``dict(type='zeromamba_mm.ZeroMambaHead',
            ...)``.
        init_cfg (dict | list[dict], optional): Initialisation config of the
            wrapper's own layers.
    """

    #: Prefixes (relative to the head) of the training-only parameters.
    training_only_prefixes: Tuple[str, ...] = ()

    def __init__(self,
                 head: Union[dict, AttributeHead],
                 init_cfg: Optional[Union[dict, list]] = None):
        base = head if isinstance(head, AttributeHead) else None
        if base is None:
            if not isinstance(head, dict) or 'type' not in head:
                raise TypeError(
                    f'{type(self).__name__}: head must be the config dict of '
                    'an attribute head, e.g. '
                    "dict(type='zeromamba_mm.ZeroMambaHead', ...); got "
                    f'{head!r}.')
            base = MODELS.build(head)
        if not isinstance(base, AttributeHead):
            raise TypeError(
                f'{type(self).__name__}: head must be an AttributeHead '
                f'(ZeroMambaHead, LinearAttributeHead, ...); got '
                f'{type(base).__name__}.')
        super().__init__(
            base.num_attributes,
            loss=base.loss_module,
            attr_loss=base.attr_loss_module,
            init_cfg=init_cfg)
        self.base = base

    def set_class_semantics(self, *args, **kwargs) -> None:
        """Set the classes on the wrapper and on the wrapped head.

        Args:
            *args: Arguments of the wrapped head's ``set_class_semantics``.
            **kwargs: Keyword arguments of the same.
        """
        self.base.set_class_semantics(*args, **kwargs)
        self.class_attributes = self.base.class_attributes
        self.seen_classes = self.base.seen_classes

    def pre_logits(self, feats: Tuple[Tensor, ...]) -> Tensor:
        """The wrapped head's ``Â`` (B, A)."""
        return self.base(feats)

    def class_scores(self,
                     pred_attributes: Tensor,
                     class_attributes: Optional[Tensor] = None) -> Tensor:
        """The wrapped head's scoring of ``Â`` (B, C)."""
        if class_attributes is None:
            class_attributes = self.class_attributes
        return self.base.class_scores(pred_attributes, class_attributes)

    def predict_outputs(self, feats: Tuple[Tensor, ...]) -> Dict[str, Tensor]:
        """The wrapped head's predictions (one pass of it)."""
        return self.base.predict_outputs(feats)

    @classmethod
    def plain_state_dict(cls,
                         state_dict: Dict[str, Tensor],
                         prefix: str = 'head.') -> Dict[str, Tensor]:
        """A state dict of the plain model (wrapped head only).

        Drops the wrapper's training-only parameters and renames
        ``{prefix}base.*`` to ``{prefix}*``, so the checkpoint loads strictly
        into the model built with the wrapped head's config.

        Args:
            state_dict (dict): State dict of a model with this head.
            prefix (str): Prefix of the head in ``state_dict``.
        """
        out = {}
        base_prefix = prefix + 'base.'
        dropped = tuple(prefix + p for p in cls.training_only_prefixes)
        for key, value in state_dict.items():
            if key.startswith(dropped):
                continue
            if key.startswith(base_prefix):
                key = prefix + key[len(base_prefix):]
            out[key] = value
        return out
