"""VMamba v2 backbone for MMPretrain.

VMamba: Visual State Space Model, Liu et al., NeurIPS 2024
(https://arxiv.org/abs/2401.10166); the released "v2" classification models
(T s1l8, S s2l15, B s2l15). The building blocks live in
:mod:`zeromamba_mm.models.backbones.vmamba_layers`.
"""
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from mmpretrain.models.utils import LayerNorm2d
from torch import Tensor
from torch.nn.modules.batchnorm import _BatchNorm

from zeromamba_mm import ops
from zeromamba_mm.checkpoint import init_weights_strictly
from zeromamba_mm.registry import MODELS
from ..utils.arch import parse_out_indices, resolve_arch
from .vmamba_checkpoint import mismatch_hint, vmamba_checkpoint_filter_fn
from .vmamba_layers import VSSBlock, make_downsample, make_stem
from .vmamba_variants import variant_ssm_cfgs


@MODELS.register_module()
class VMamba(BaseBackbone):
    """VMamba v2 (channel-first, ``v05_noz`` SS2D blocks).

    Stem "v2" (two 3x3/s2 convs, stride 4), four stages of VSS blocks with
    "v3" down-sampling (3x3/s2 conv + LN2d) between them. Parameter names
    follow the official release so its checkpoints load after
    :func:`~zeromamba_mm.models.utils.convert_official_vmamba`:
    ``patch_embed.{0,2,5,7}``, ``layers.{i}.blocks.{j}.{norm,op,norm2,mlp}``,
    ``layers.{i}.downsample.{1,3}`` and ``norm_out`` (the release's
    ``classifier.norm``).

    With ``ImageClassifier(VMamba(final_norm=True), GlobalAveragePooling,
    LinearClsHead)`` the official classifier (LN2d -> average pool ->
    linear) is reproduced exactly.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'`` or ``'base'``, or a dict
            with keys ``depths`` (4 ints), ``dims`` (list of 4 ints, or an
            int doubled at every stage), ``ssm_ratio``, ``d_state`` and
            ``mlp_ratio``; optional ``dt_rank`` (int or ``'auto'`` =
            ``ceil(C / 16)``, the default) and ``drop_path_rate``.
            Defaults to ``'small'``.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int] | int): Stages whose output is returned
            (negative indices count from the end). Defaults to ``(3,)``.
        drop_path_rate (float, optional): Stochastic depth rate, increased
            linearly over the blocks up to this value. ``None`` takes the
            arch's default (T 0.2, S 0.3, B 0.6). Defaults to None.
        final_norm (bool): Own ``norm_out`` (a LayerNorm2d over the last
            stage's channels) and apply it to the last stage's output when
            it is returned. With False there is no ``norm_out`` at all and
            the last stage is returned before that norm (ZeroMamba's
            ``x_pre``). Defaults to True.
        frozen_stages (int): -1 freezes nothing, 0 the stem, k >= 1 the stem
            and stages 0..k-1 (a stage being the down-sampling into it and
            its blocks; ``norm_out`` too when every stage is frozen). Frozen
            parts get ``requires_grad=False`` and stay in eval mode, which
            also switches off their drop path. Defaults to -1.
        norm_eval (bool): MMPretrain's switch to keep BatchNorm layers in
            eval mode while training. VMamba has only LayerNorms, which have
            no running statistics and behave the same in train and eval
            mode, so this is accepted for interface compatibility and has no
            effect on this model (BatchNorms added by a subclass would be
            set to eval). It does *not* freeze the norms' affine parameters.
            Defaults to False.
        with_cp (bool): Gradient checkpointing per block
            (``torch.utils.checkpoint``, ``use_reentrant=False``): less
            memory, one more forward of each block in backward. Defaults to
            False.
        scan_backend (str): Backend of the selective scan (one of
            ``zeromamba_mm.ops.BACKENDS``); ``'auto'`` lets
            :func:`zeromamba_mm.ops.selective_scan` choose from the tensors'
            device. Defaults to ``'auto'``.
        scan (str): ``'cross'`` (VMamba's 4-direction cross scan) or
            ``'2d'`` (V2M's 2-D scan from the four corners, our VMamba
            design: :class:`~.vmamba_variants.SS2DCorner2D`). Defaults to
            ``'cross'``.
        scan_cfg (dict, optional): Options of ``scan='2d'`` (``axis_order``,
            ``inter_norm``, ``out_scale``, ``legacy_v2m_mapping``).
        serialization (str): ``'none'`` or ``'dct'`` (GlobalMamba-style
            low-pass prefix tokens in every scan, our VMamba design:
            :class:`~.vmamba_variants.SS2DFrequency`). Defaults to
            ``'none'``.
        serialization_cfg (dict, optional): Options of ``'dct'``
            (``num_levels``, ``mask_shape``, ``mode``, ``stages``).
        init_cfg (dict | list[dict], optional): MMEngine init config.
            ``dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``
            (prefix optional, default ``'backbone.'``) loads an official
            release file or an mmpretrain checkpoint strictly, see
            :meth:`init_weights`. Defaults to None.
    """

    arch_zoo = {
        'tiny':
        dict(
            depths=[2, 2, 8, 2],
            dims=96,
            ssm_ratio=1.0,
            d_state=1,
            dt_rank='auto',
            mlp_ratio=4.0,
            drop_path_rate=0.2),
        'small':
        dict(
            depths=[2, 2, 15, 2],
            dims=96,
            ssm_ratio=2.0,
            d_state=1,
            dt_rank='auto',
            mlp_ratio=4.0,
            drop_path_rate=0.3),
        'base':
        dict(
            depths=[2, 2, 15, 2],
            dims=128,
            ssm_ratio=2.0,
            d_state=1,
            dt_rank='auto',
            mlp_ratio=4.0,
            drop_path_rate=0.6),
    }
    required_arch_keys = ('depths', 'dims', 'ssm_ratio', 'd_state',
                          'mlp_ratio')
    optional_arch_keys = ('dt_rank', 'drop_path_rate')

    def __init__(self,
                 arch: Union[str, dict] = 'small',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (3, ),
                 drop_path_rate: Optional[float] = None,
                 final_norm: bool = True,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 scan_backend: str = 'auto',
                 scan: str = 'cross',
                 scan_cfg: Optional[dict] = None,
                 serialization: str = 'none',
                 serialization_cfg: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.arch_settings = self._parse_arch(arch)
        depths = self.arch_settings['depths']
        dims = self.arch_settings['dims']
        self.depths, self.dims = depths, dims
        self.num_layers = len(depths)
        self.out_indices = parse_out_indices(out_indices, self.num_layers,
                                             'stages')
        if drop_path_rate is None:
            drop_path_rate = self.arch_settings.get('drop_path_rate', 0.)
        self.drop_path_rate = float(drop_path_rate)
        if not -1 <= frozen_stages <= self.num_layers:
            raise ValueError(f'frozen_stages must be in [-1, '
                             f'{self.num_layers}], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.final_norm = final_norm
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        # Fail at build time, not at the first forward, on a typo.
        known = getattr(ops, 'BACKENDS', None)
        if known is not None and scan_backend not in known:
            raise ValueError(f'Unknown scan_backend {scan_backend!r}; '
                             f'choose one of {tuple(known)}')
        self.scan_backend = scan_backend

        ssm_cfg = dict(
            d_state=self.arch_settings['d_state'],
            ssm_ratio=self.arch_settings['ssm_ratio'],
            dt_rank=self.arch_settings['dt_rank'],
            scan_backend=scan_backend)
        self.scan, self.serialization = scan, serialization
        stage_ssm_cfgs = variant_ssm_cfgs(ssm_cfg, self.num_layers, scan,
                                          scan_cfg, serialization,
                                          serialization_cfg)
        dpr = torch.linspace(
            0, self.drop_path_rate, sum(depths), device='cpu').tolist()

        self.patch_embed = make_stem(in_channels, dims[0])
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            blocks = nn.Sequential(*[
                VSSBlock(
                    dims[i],
                    drop_path=dpr[start + j],
                    mlp_ratio=self.arch_settings['mlp_ratio'],
                    ssm_cfg=stage_ssm_cfgs[i]) for j in range(depth)
            ])
            last = i == self.num_layers - 1
            downsample = nn.Identity() if last else make_downsample(
                dims[i], dims[i + 1])
            self.layers.append(
                nn.Sequential(
                    OrderedDict(blocks=blocks, downsample=downsample)))
        if final_norm:
            self.norm_out = LayerNorm2d(dims[-1])

        self.apply(self._init_official)
        self._freeze_stages()

    # ------------------------------------------------------------ arch ---
    @classmethod
    def _parse_arch(cls, arch: Union[str, dict]) -> dict:
        settings = resolve_arch(arch, cls.arch_zoo, cls.required_arch_keys,
                                cls.optional_arch_keys, 'VMamba')
        if isinstance(arch, dict):
            settings.setdefault('dt_rank', 'auto')
        depths = [int(d) for d in settings['depths']]
        dims = settings['dims']
        if isinstance(dims, int):
            dims = [dims * 2**i for i in range(len(depths))]
        dims = [int(d) for d in dims]
        if len(dims) != len(depths) or not depths:
            raise ValueError(f'VMamba arch: depths {depths} and dims {dims} '
                             'must be non-empty and of the same length')
        settings.update(depths=depths, dims=dims)
        return settings

    # ------------------------------------------------------------ init ---
    @staticmethod
    def _init_official(m: nn.Module) -> None:
        # The release's init: truncated normal (std 0.02) for linear layers
        # (1x1 projections and MLPs), unit LayerNorms; convs keep PyTorch's
        # default; SS2D initialises its own SSM parameters.
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def init_weights(self) -> None:
        """Initialise the weights, loading a pretrained file strictly.

        With ``init_cfg=dict(type='Pretrained', checkpoint=PATH,
        prefix='backbone.')``, PATH (an official release file or an
        mmpretrain/MMEngine checkpoint, detected from its keys) is read with
        ``weights_only=True``; keys under ``prefix`` (e.g.
        ``'model.backbone.'`` of a wrapped model) are taken without it,
        :func:`~zeromamba_mm.models.backbones.vmamba_checkpoint.
        vmamba_checkpoint_filter_fn` converts them, and the result is loaded
        strictly: any missing, unexpected or wrongly shaped key raises
        :class:`~zeromamba_mm.checkpoint.CheckpointMismatchError` naming the
        file and the keys. With ``final_norm=False`` the checkpoint's
        ``norm_out`` keys are skipped (logged). Other init types go through
        MMEngine as usual.
        """
        if not init_weights_strictly(
                self,
                vmamba_checkpoint_filter_fn,
                hint=lambda state: mismatch_hint(state, self)):
            super().init_weights()

    # ------------------------------------------------------- freezing ---
    @staticmethod
    def _freeze(module: nn.Module) -> None:
        module.eval()
        for param in module.parameters():
            param.requires_grad = False

    def _freeze_stages(self) -> None:
        if self.frozen_stages >= 0:
            self._freeze(self.patch_embed)
        for i in range(self.frozen_stages):
            if i > 0:
                self._freeze(self.layers[i - 1].downsample)
            self._freeze(self.layers[i].blocks)
        if self.frozen_stages == self.num_layers and self.final_norm:
            self._freeze(self.norm_out)

    def train(self, mode: bool = True) -> 'VMamba':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            # Only BatchNorm has running statistics to protect; VMamba has
            # none of its own (see the class docstring).
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    # -------------------------------------------------------- forward ---
    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Return the NCHW maps of the stages in ``out_indices``.

        Stage i has ``dims[i]`` channels and stride ``4 * 2**i``.
        """
        x = self.patch_embed(x)
        outs = []
        for i, layer in enumerate(self.layers):
            for block in layer.blocks:
                if self.with_cp and torch.is_grad_enabled():
                    x = cp.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if i in self.out_indices:
                out = x
                if self.final_norm and i == self.num_layers - 1:
                    out = self.norm_out(out)
                outs.append(out)
            x = layer.downsample(x)
        return tuple(outs)
