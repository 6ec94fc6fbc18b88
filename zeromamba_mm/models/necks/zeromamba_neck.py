"""The ImageNet classifier of the backbone, kept as ZeroMamba's neck."""
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmpretrain.models.utils import LayerNorm2d
from torch import Tensor, nn

from zeromamba_mm.checkpoint import (load_checkpoint_file,
                                     split_pretrained_init_cfg,
                                     strict_load_state_dict)
from zeromamba_mm.registry import MODELS

#: Where the classifier norm lives in the supported checkpoint layouts:
#: official VMamba release, converted mmpretrain VMamba, this neck.
NORM_PREFIXES = ('classifier.norm.', 'backbone.norm_out.', 'neck.norm.')
#: Where the ImageNet linear layer lives: official VMamba release,
#: mmpretrain ``LinearClsHead`` (VMamba/ResNet), mmpretrain
#: ``VisionTransformerClsHead``, this neck.
FC_PREFIXES = ('classifier.head.', 'head.fc.', 'head.layers.head.', 'neck.fc.')


@MODELS.register_module()
class ZeroMambaNeck(BaseModule):
    """Keep the backbone's ImageNet classifier and pass both branches on.

    ZeroMamba (`arXiv:2408.14868 <https://arxiv.org/abs/2408.14868>`_) feeds
    the last stage map ``x_pre`` (before the classifier norm) to SLP and the
    fine-tuned ImageNet logits to GRL. This neck owns that classifier —
    ``norm`` (LayerNorm2d over channels, VMamba's ``classifier.norm``) →
    global average pool → ``fc`` Linear(C, imagenet_classes) — and returns
    ``(x_pre, imagenet_logits)``.

    Weights come from an ImageNet checkpoint through
    ``init_cfg=dict(type='Pretrained', checkpoint=PATH)``, loaded strictly
    (read with ``weights_only=True``): an official VMamba release file
    (``classifier.norm``/``classifier.head``), a converted mmpretrain VMamba
    checkpoint (``backbone.norm_out``/``head.fc``), an mmpretrain ResNet
    (``head.fc``, use ``norm=None``) or ViT (``head.layers.head``) checkpoint,
    or a checkpoint of a model with this neck (``neck.*``). The layout is
    detected from the keys; anything missing, ambiguous or of the wrong shape
    raises an error naming the file, keys and shapes.

    Args:
        in_channels (int): Channels C of the last stage. Defaults to 768.
        imagenet_classes (int): Classes of the ImageNet classifier (named so
            that mmpretrain's ClassNumCheckHook does not read them as the
            dataset's classes). Defaults to 1000.
        norm (str, optional): ``'ln2d'`` (VMamba) or None/``'none'`` for
            backbones whose pooled features feed the classifier directly
            (ResNet). Defaults to 'ln2d'.
        norm_eps (float): Epsilon of the LayerNorm2d. Defaults to 1e-5 (the
            official VMamba value).
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=PATH)`` or any MMEngine init config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int = 768,
                 imagenet_classes: int = 1000,
                 norm: Optional[str] = 'ln2d',
                 norm_eps: float = 1e-5,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if isinstance(norm, str) and norm.lower() == 'none':
            norm = None
        if norm is not None and norm.lower() != 'ln2d':
            raise ValueError(
                f"ZeroMambaNeck norm must be 'ln2d' or None, got {norm!r}.")
        self.in_channels = int(in_channels)
        self.imagenet_classes = int(imagenet_classes)
        self.norm = (
            LayerNorm2d(self.in_channels, eps=norm_eps)
            if norm is not None else None)
        self.fc = nn.Linear(self.in_channels, self.imagenet_classes)

    # ---------------------------------------------------------- forward ---
    def imagenet_logits(self, x_pre: Tensor) -> Tensor:
        """The ImageNet classifier's logits (B, imagenet_classes)."""
        x = self.norm(x_pre) if self.norm is not None else x_pre
        return self.fc(x.mean(dim=(2, 3)))

    def forward(
            self, inputs: Union[Tensor,
                                Sequence[Tensor]]) -> Tuple[Tensor, Tensor]:
        """``(x_pre, imagenet_logits)`` from the backbone output.

        Args:
            inputs (Tensor | tuple[Tensor]): The backbone's output; the last
                element is used (the last stage, before any norm).
        """
        x_pre = inputs if isinstance(inputs, Tensor) else inputs[-1]
        if x_pre.dim() != 4 or x_pre.shape[1] != self.in_channels:
            raise ValueError(f'ZeroMambaNeck expects the last stage map (B, '
                             f'{self.in_channels}, H, W) (in_channels='
                             f'{self.in_channels}); got {tuple(x_pre.shape)}.')
        return x_pre, self.imagenet_logits(x_pre)

    # ------------------------------------------------------------ init ---
    def _pretrained_cfg(self) -> Tuple[Optional[dict], List[dict]]:
        return split_pretrained_init_cfg(self.init_cfg, 'ZeroMambaNeck')

    def init_weights(self) -> None:
        """Initialise; load the ImageNet classifier strictly if asked.

        mmengine's own ``Pretrained`` init loads non-strictly and only warns;
        this neck reads the file itself and refuses any mismatch.
        """
        pretrained, others = self._pretrained_cfg()
        if pretrained is None:
            super().init_weights()
            return
        if self._is_init:
            return
        if others:
            from mmengine.model.weight_init import initialize
            initialize(self, others)
        path = pretrained.get('checkpoint')
        if not path:
            raise ValueError(
                "ZeroMambaNeck init_cfg=dict(type='Pretrained') needs "
                '`checkpoint`.')
        self.load_imagenet_classifier(path)
        self._is_init = True

    @staticmethod
    def _find_prefix(state_dict: Dict[str, Tensor], prefixes: Sequence[str],
                     what: str, path: str) -> Optional[str]:
        found = [
            p for p in prefixes if any(k.startswith(p) for k in state_dict)
        ]
        if len(found) > 1:
            raise ValueError(
                f'Checkpoint {path} has several candidate {what} layers '
                f'({found}); cannot tell which one is the ImageNet '
                'classifier.')
        return found[0] if found else None

    def load_imagenet_classifier(self, path: str) -> None:
        """Load ``norm`` and ``fc`` strictly from an ImageNet checkpoint.

        Args:
            path (str): Checkpoint file (see the class docstring for the
                layouts).

        Raises:
            KeyError: The file holds no classifier (or a norm the neck does
                not have, or lacks one it has).
            ValueError: The layout is ambiguous or the classifier head has
                extra layers (e.g. a ViT ``pre_logits``).
            CheckpointMismatchError: Missing, unexpected or wrongly shaped
                keys (named, with shapes).
        """
        state_dict = load_checkpoint_file(path)
        fc_prefix = self._find_prefix(state_dict, FC_PREFIXES, 'linear', path)
        norm_prefix = self._find_prefix(state_dict, NORM_PREFIXES, 'norm',
                                        path)
        if fc_prefix is None:
            raise KeyError(
                f'Checkpoint {path} holds no ImageNet classifier: expected '
                f'keys starting with one of {list(FC_PREFIXES)}, got e.g. '
                f'{list(state_dict)[:5]}.')
        if self.norm is None and norm_prefix is not None:
            raise KeyError(
                f'Checkpoint {path} has a classifier norm ({norm_prefix}*) '
                'but ZeroMambaNeck was built with norm=None: the logits would '
                "differ from the checkpoint's. Use norm='ln2d'.")
        if self.norm is not None and norm_prefix is None:
            raise KeyError(
                f'ZeroMambaNeck (norm=ln2d) needs the classifier norm, but '
                f'{path} has no key starting with one of '
                f'{list(NORM_PREFIXES)} (a ResNet checkpoint? then use '
                'norm=None).')
        chosen = {'fc.': fc_prefix}
        if norm_prefix is not None:
            chosen['norm.'] = norm_prefix
        # Keys of the same container (e.g. `head.layers.pre_logits.*` beside
        # `head.layers.head.*`) would be part of the classifier: refuse them
        # rather than silently drop a layer.
        containers = {
            p.rsplit('.', 2)[0] + '.'
            for p in chosen.values() if not p.startswith('backbone.')
        }
        extra = [
            k for k in state_dict if k.startswith(tuple(containers))
            and not k.startswith(tuple(chosen.values()))
        ]
        if extra:
            raise ValueError(
                f'Checkpoint {path}: the ImageNet classifier has layers this '
                f'neck does not model: {extra[:5]}.')
        state = OrderedDict()
        for ours, theirs in chosen.items():
            for key, value in state_dict.items():
                if key.startswith(theirs):
                    state[ours + key[len(theirs):]] = value
        strict_load_state_dict(
            self,
            state,
            source=path,
            hint=(f'Read {fc_prefix}* as fc' +
                  (f' and {norm_prefix}* as norm' if norm_prefix else '') +
                  f'; the neck has in_channels={self.in_channels}, '
                  f'imagenet_classes={self.imagenet_classes}.'))
        print_log(
            f'ZeroMambaNeck: loaded the ImageNet classifier from {path} '
            f'({", ".join(sorted(set(chosen.values())))})',
            logger='current')
