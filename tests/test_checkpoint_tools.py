"""The tools with full checkpoints: ``tools/train.py --resume`` is strict
and stops before the first iteration, and ``tools/test.py`` and
``ZSLInferencer`` need none of the pretraining files of ``init_cfg``."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from test_check_data import make_own_dataset
from test_tools_safety import SMALL, run_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ZEROMAMBA_DEMO = osp.join(REPO, 'configs', 'zeromamba_demo.py')
LINEAR_DEMO = osp.join(REPO, 'configs', 'demo', 'linear_resnet18_zsl_demo.py')
OWN_DATA = osp.join(REPO, 'configs', 'own_data', 'zeromamba_own_data.py')


def _demo_options(root: str, mlp_hidden: int) -> list:
    return [
        'train_cfg.max_epochs=1', f'model.head.mlp_hidden={mlp_hidden}',
        f'model.head.word_vectors={root}/attribute_w2v.npy'
    ] + [
        f'{phase}_dataloader.{key}' for phase in ('train', 'val', 'test')
        for key in (f'dataset.data_root={root}', 'num_workers=0',
                    'persistent_workers=False')
    ]


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """One epoch of the ZeroMamba demo with mlp_hidden=64 (AdamW)."""
    from zeromamba_mm.datasets.demo_data import make_demo_data
    root = str(tmp_path_factory.mktemp('demo'))
    make_demo_data(root, seed=0, images_per_class=2)
    work = str(tmp_path_factory.mktemp('run') / 'work')
    with pytest.MonkeyPatch.context() as monkeypatch:
        code = run_tool(monkeypatch, 'train',
                        [ZEROMAMBA_DEMO, '--work-dir', work, '--cfg-options'] +
                        _demo_options(root, 64))
    assert code == 0
    return root, osp.join(work, 'epoch_1.pth')


def _iterations_logged(work_dir: str) -> int:
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    return sum(open(log).read().count('Epoch(train)') for log in logs)


def test_resume_with_changed_sizes_is_refused_before_training(
        monkeypatch, capsys, tmp_path, demo_run):
    root, checkpoint = demo_run
    work = str(tmp_path / 'resumed')
    code = run_tool(monkeypatch, 'train', [
        ZEROMAMBA_DEMO, '--work-dir', work, '--resume', checkpoint,
        '--cfg-options'
    ] + _demo_options(root, 128))
    err = capsys.readouterr().err
    assert code == 1
    assert f'Checkpoint {checkpoint} does not match ZeroShotClassifier' in err
    assert 'head.slp.mlp_local.0.weight: expected (128, 20), found ' \
           '(64, 20)' in err
    assert '--resume continues a run of this same config' in err
    # Not AdamW's size error at the first step: no step was taken.
    assert 'The size of tensor' not in err
    assert _iterations_logged(work) == 0
    assert not glob.glob(osp.join(work, 'epoch_*.pth'))


def test_resume_from_another_architecture_is_refused(monkeypatch, capsys,
                                                     tmp_path, demo_run):
    root, checkpoint = demo_run
    work = str(tmp_path / 'linear')
    code = run_tool(monkeypatch, 'train', [
        LINEAR_DEMO, '--work-dir', work, '--resume', checkpoint,
        '--cfg-options'
    ] + SMALL + [
        f'{phase}_dataloader.dataset.data_root={root}'
        for phase in ('train', 'val', 'test')
    ])
    err = capsys.readouterr().err
    assert code == 1
    assert 'missing from checkpoint: backbone.stem.0.conv.weight' in err or \
        'missing from checkpoint: backbone.' in err
    assert 'unexpected in checkpoint: backbone.patch_embed.0.weight' in err
    assert _iterations_logged(work) == 0


# The own-data template's VMamba-S, made small; its init_cfg still names
# the ImageNet file checkpoints/vssm_small_0229_ckpt_epoch_222.pth.
TINY_OWN = """_base_ = ['./zeromamba_own_data.py']
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64],
                  ssm_ratio=1.0, d_state=1, dt_rank='auto', mlp_ratio=2.0),
        drop_path_rate=0.0),
    neck=dict(in_channels=64, imagenet_classes=32),
    head=dict(in_channels=64, imagenet_classes=32, mlp_hidden=32))
test_dataloader = dict(num_workers=0, persistent_workers=False)
test_evaluator = dict(gamma=0.5)
"""


def _own_data_config(folder, data: str) -> str:
    from test_check_data import OLD_PREFIX
    text = open(OWN_DATA).read()
    for old, new in [
        ("data_root = 'data/my_dataset'", f'data_root = {data!r}'),
        ('img_size = 224', 'img_size = 32'),
        ("img_prefix='images'", "img_prefix='photos'"),
        ("old_prefix='/old/prefix/of/images/'", f'old_prefix={OLD_PREFIX!r}'),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    (folder / 'zeromamba_own_data.py').write_text(text)
    (folder / 'tiny.py').write_text(TINY_OWN)
    return str(folder / 'tiny.py')


def test_test_tool_and_inferencer_need_no_pretraining_file(
        monkeypatch, capsys, tmp_path):
    from zeromamba_mm.apis import ZSLInferencer
    from zeromamba_mm.registry import MODELS
    data = str(tmp_path / 'my_dataset')
    make_own_dataset(data)
    config = _own_data_config(tmp_path, data)
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    cfg = Config.fromfile(config)
    pretrained = cfg.model.backbone.init_cfg.checkpoint
    assert not osp.exists(pretrained)
    # A trained model's checkpoint (its weights are all that matter here).
    model_cfg = cfg.model.copy()
    model_cfg.backbone.init_cfg = None
    model_cfg.neck.init_cfg = None
    checkpoint = str(tmp_path / 'trained.pth')
    torch.save({'state_dict': MODELS.build(model_cfg).state_dict()},
               checkpoint)

    code = run_tool(
        monkeypatch, 'test',
        [config, checkpoint, '--work-dir',
         str(tmp_path / 'test_work')])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert 'Results: ZSL T1' in out
    assert pretrained not in err

    inferencer = ZSLInferencer(
        config,
        pretrained=checkpoint,
        class_attributes=osp.join(data, 'att_splits.mat'),
        device='cpu')
    image = glob.glob(osp.join(data, 'photos', '*', '*'))[0]
    result = inferencer(image)[0]
    assert result['pred_label'] >= 0
