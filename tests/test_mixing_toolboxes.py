"""zeromamba_mm backbones inside the real mmseg and mmdet toolboxes.

Each test loads a config of ``configs/mixing`` -- the snippet that
docs/mixing.md quotes, written over the toolbox's own ``_base_`` config
(``mmseg::`` / ``mmdet::``, shipped inside the installed toolbox) -- shrinks
the arch and the input, points it at a tiny dataset generated in
``tmp_path`` (ADE20K layout with seg maps, COCO json with boxes) and trains
it with MMEngine's Runner on one fixed batch: the loss must be finite and
fall, and a backward pass must reach every backbone parameter.

mmseg and mmdet import ``mmcv.ops``, whose compiled extension mmcv-lite
lacks; where it is missing, ``tests/_mmcv_ext_shim.py`` stands in and every
compiled op raises when called. So these tests show that training (and
mmseg's validation) runs no compiled op; detection inference does (NMS),
which the RetinaNet test checks explicitly.
"""
import json
import os
import os.path as osp
import re
import uuid

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

import _mmcv_ext_shim  # noqa: I100
from zeromamba_mm.models.backbones import Vim

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIXING = osp.join(REPO, 'configs', 'mixing')
SEG_VMAMBA = 'upernet_vmamba-s_ade20k-512x512.py'
SEG_VIM = 'upernet-mln_vim-t_ade20k-512x512.py'
DET_VMAMBA = 'retinanet_vmamba-t_fpn_1x_coco.py'
SIZE = 64  # input images are SIZE x SIZE
ITERS = 8  # Runner iterations on the fixed batch
# A tiny VMamba: one block per stage, 8/16/32/64 channels.
TINY_VMAMBA = dict(
    depths=[1, 1, 1, 1], dims=8, ssm_ratio=1.0, d_state=1, mlp_ratio=2.0)
# Shapes a pixel class can be learnt from: (colour BGR, ADE20K label).
# ADE20K's reduce_zero_label maps label k to class k - 1 (0 is ignored).
SEG_CLASSES = (((40, 40, 40), 1), ((30, 200, 60), 2), ((220, 60, 30), 3))


@pytest.fixture(scope='module', autouse=True)
def toolboxes():
    """Import mmseg and mmdet (with the shim where mmcv._ext is missing)."""
    _mmcv_ext_shim.install()
    try:
        import mmdet  # noqa: F401
        import mmseg  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f'The mixing tests need mmseg and mmdet ({err}). Install the '
            "test extra: pip install -c requirements/constraints.txt -e "
            "'.[tests]'") from err


@pytest.fixture(autouse=True)
def restore_default_scope():
    """The Runners below make mmseg/mmdet the current default scope; later
    tests build from the plugin's registries and must not look there."""
    saved = DefaultScope._instance_dict.copy()
    yield
    DefaultScope._instance_dict.clear()
    DefaultScope._instance_dict.update(saved)


def write_seg_data(root: str) -> None:
    """Two ADE20K-style training pairs: 3 coloured rectangles per image."""
    rng = np.random.default_rng(0)
    for index in range(2):
        image = np.full((SIZE, SIZE, 3), 128, np.uint8)
        labels = np.zeros((SIZE, SIZE), np.uint8)  # 0: ignored
        for colour, label in SEG_CLASSES:
            y, x = rng.integers(0, SIZE - 24, size=2)
            image[y:y + 24, x:x + 24] = colour
            labels[y:y + 24, x:x + 24] = label
        name = f'ADE_train_{index:08d}'
        for sub, array, ext in (('images', image, 'jpg'),
                                ('annotations', labels, 'png')):
            folder = osp.join(root, sub, 'training')
            os.makedirs(folder, exist_ok=True)
            assert cv2.imwrite(osp.join(folder, f'{name}.{ext}'), array)


def write_det_data(root: str) -> str:
    """Two images with one box each, COCO json; returns the json path."""
    os.makedirs(osp.join(root, 'images'))
    boxes = ([10, 12, 30, 28], [28, 20, 26, 34])  # x, y, w, h
    categories = [dict(id=1, name='person'), dict(id=3, name='car')]
    images, annotations = [], []
    for index, ((x, y, w, h), category) in enumerate(zip(boxes,
                                                          categories)):
        image = np.full((SIZE, SIZE, 3), 100, np.uint8)
        image[y:y + h, x:x + w] = (230, 180, 40) if index else (30, 60, 220)
        name = f'{index:06d}.png'
        assert cv2.imwrite(osp.join(root, 'images', name), image)
        images.append(dict(id=index, file_name=name, width=SIZE,
                           height=SIZE))
        annotations.append(
            dict(id=index, image_id=index, category_id=category['id'],
                 bbox=[x, y, w, h], area=w * h, iscrowd=0))
    ann_file = osp.join(root, 'train.json')
    with open(ann_file, 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=categories), f)
    return ann_file


def runner_settings(cfg: Config, work_dir: str, val: bool,
                    lr: float) -> None:
    """A short, quiet, deterministic run on the fixed batch (AdamW, no
    weight decay: weights move only through gradients)."""
    cfg.work_dir = work_dir
    # Unique per test: a Runner's default scope is registered by this name.
    cfg.experiment_name = f'mixing-{uuid.uuid4().hex}'
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=0)
    cfg.env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
    cfg.launcher = 'none'
    cfg.optim_wrapper = dict(
        type='OptimWrapper',
        optimizer=dict(type='AdamW', lr=lr, weight_decay=0.))
    cfg.param_scheduler = None
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=ITERS,
        val_interval=ITERS if val else ITERS + 1)
    cfg.default_hooks.checkpoint = None
    cfg.visualizer.vis_backends = None
    loader = dict(batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.update(
        loader, sampler=dict(type='InfiniteSampler', shuffle=False))
    if val:
        cfg.val_dataloader.update(
            loader, sampler=dict(type='DefaultSampler', shuffle=False))
    else:
        cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_dataloader = cfg.test_cfg = cfg.test_evaluator = None


def train(cfg: Config) -> tuple:
    """Train; return the Runner and the loss of every iteration."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    return runner, [float(v) for v in losses]


def fixed_batch(runner: Runner) -> dict:
    """The two training samples, collated as the train loader does (a new
    iterator of the infinite loader would depend on the sampler's state)."""
    loader = runner.train_dataloader
    return loader.collate_fn([loader.dataset[i] for i in range(2)])


def assert_learns(runner: Runner, losses: list) -> None:
    """Finite, falling loss; a backward pass reaches the whole backbone."""
    assert len(losses) == ITERS
    assert all(np.isfinite(losses)), losses
    # Falling: the second half's mean is clearly below the first loss (a
    # single Adam step may overshoot on one batch).
    assert np.mean(losses[ITERS // 2:]) < 0.9 * losses[0], losses

    model = runner.model
    model.train()
    data = model.data_preprocessor(fixed_batch(runner), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    model.zero_grad()
    loss.backward()
    no_grad = [
        name for name, param in model.backbone.named_parameters()
        if param.grad is None or not torch.isfinite(param.grad).all()
        or not param.grad.abs().sum() > 0
    ]
    assert not no_grad, f'no (finite, nonzero) gradient: {no_grad}'


def load_mixing_config(name: str) -> Config:
    cfg = Config.fromfile(osp.join(MIXING, name))
    cfg.model.backbone.init_cfg = None  # no release files here
    return cfg


def seg_settings(cfg: Config, root: str, channels: int) -> None:
    """ADE20K data at SIZE x SIZE without random augmentation; small
    heads."""
    cfg.model.data_preprocessor.size = (SIZE, SIZE)
    cfg.model.decode_head.channels = channels
    cfg.model.auxiliary_head.channels = channels
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', reduce_zero_label=True),
        dict(type='PackSegInputs')
    ]
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.update(
            data_root=root,
            data_prefix=dict(
                img_path='images/training',
                seg_map_path='annotations/training'),
            pipeline=pipeline)


def test_upernet_vmamba_trains_and_validates_in_mmseg(tmp_path):
    root = str(tmp_path / 'ade')
    write_seg_data(root)
    cfg = load_mixing_config(SEG_VMAMBA)
    assert cfg.default_scope == 'mmseg'
    assert cfg.model.type == 'EncoderDecoder'
    assert cfg.model.decode_head.type == 'UPerHead'
    cfg.model.backbone.update(arch=TINY_VMAMBA, drop_path_rate=0.)
    cfg.model.decode_head.in_channels = [8, 16, 32, 64]
    cfg.model.auxiliary_head.in_channels = 32
    seg_settings(cfg, root, channels=16)
    runner_settings(cfg, str(tmp_path / 'work'), val=True, lr=5e-3)

    runner, losses = train(cfg)

    assert type(runner.model.backbone).__name__ == 'VMamba'
    assert_learns(runner, losses)
    # mmseg's IoUMetric ran on the validation split after the last
    # iteration.
    assert 0 <= runner.message_hub.get_scalar('val/mIoU').current() <= 100


@pytest.mark.parametrize('family', ['vim-tiny', 'globalmamba-m*', 'v2m-t'])
def test_upernet_vim_family_trains_in_mmseg_through_multilevelneck(
        tmp_path, family):
    root = str(tmp_path / 'ade')
    write_seg_data(root)
    cfg = load_mixing_config(SEG_VIM)
    assert cfg.model.neck.type == 'MultiLevelNeck'
    assert cfg.model.neck.scales == [4, 2, 1, 0.5]
    # The family's mixer, tokenizer and class token; 16 channels, 4 blocks.
    cfg.model.backbone.arch = dict(
        Vim.arch_zoo[family], embed_dims=16, depth=4)
    cfg.model.backbone.update(
        img_size=SIZE, patch_size=8, out_indices=(0, 1, 2, 3))
    cfg.model.neck.update(in_channels=[16] * 4, out_channels=16)
    cfg.model.decode_head.in_channels = [16] * 4
    cfg.model.auxiliary_head.in_channels = 16
    seg_settings(cfg, root, channels=16)
    runner_settings(cfg, str(tmp_path / 'work'), val=False, lr=5e-3)

    runner, losses = train(cfg)

    assert type(runner.model.backbone).__name__ == 'Vim'
    assert_learns(runner, losses)


def test_retinanet_vmamba_trains_in_mmdet(tmp_path):
    root = str(tmp_path / 'coco')
    ann_file = write_det_data(root)
    cfg = load_mixing_config(DET_VMAMBA)
    assert cfg.default_scope == 'mmdet'
    assert cfg.model.type == 'RetinaNet'
    cfg.model.backbone.update(
        arch=TINY_VMAMBA, drop_path_rate=0.)  # out_indices (1, 2, 3)
    cfg.model.neck.update(in_channels=[16, 32, 64], out_channels=16)
    cfg.model.bbox_head.update(
        in_channels=16, feat_channels=16, stacked_convs=1)
    cfg.train_dataloader.dataset.update(
        data_root=root,
        ann_file=ann_file,
        data_prefix=dict(img='images/'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs')
        ])
    runner_settings(cfg, str(tmp_path / 'work'), val=False, lr=1e-3)

    runner, losses = train(cfg)

    assert type(runner.model.backbone).__name__ == 'VMamba'
    assert_learns(runner, losses)

    # Inference ends in NMS, a compiled op: with the shim it must fail
    # loudly (never silently); with full mmcv it returns boxes. (rescale:
    # the pipeline has no Resize, so there is no scale factor to undo.)
    model = runner.model.eval()
    model.bbox_head.test_cfg.score_thr = 0.
    data = model.data_preprocessor(fixed_batch(runner), False)
    if _mmcv_ext_shim.real_extension_available():
        results = model.predict(
            data['inputs'], data['data_samples'], rescale=False)
        assert len(results[0].pred_instances.bboxes) > 0
    else:
        with pytest.raises(_mmcv_ext_shim.CompiledOpMissing,
                           match="'nms'"):
            model.predict(
                data['inputs'], data['data_samples'], rescale=False)


@pytest.mark.parametrize('name', [SEG_VMAMBA, SEG_VIM, DET_VMAMBA])
def test_docs_quote_the_tested_configs(name):
    """docs/mixing.md shows each tested config's code exactly."""
    with open(osp.join(MIXING, name)) as f:
        code = ''.join(line for line in f if not line.startswith('#'))
    with open(osp.join(REPO, 'docs', 'mixing.md')) as f:
        docs = f.read()
    blocks = re.findall(r'```python\n(.*?)```', docs, re.S)
    assert code in blocks, f'docs/mixing.md does not quote {name}'
