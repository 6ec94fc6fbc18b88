"""ZSLSemanticsHook stops a run before its first iteration when the
validation split cannot produce the metric the best checkpoint is chosen on
(it used to fail with ``KeyError: 'gzsl/H'`` after a whole epoch)."""
import os.path as osp
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner import BaseLoop

from zeromamba_mm.datasets import ZSLDataset, make_demo_data
from zeromamba_mm.engine import ZSLRunner
from zeromamba_mm.engine.hooks import ZSLSemanticsHook
from zeromamba_mm.evaluation import GZSLMetric

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'demo', 'linear_resnet18_zsl_demo.py')


@HOOKS.register_module(force=True)
class _CountTrainIters(Hook):
    """Counts the training iterations that ran."""
    iters = 0

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        _CountTrainIters.iters += 1


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('demo')
    make_demo_data(
        str(root),
        seed=0,
        num_classes=8,
        num_unseen=2,
        images_per_class=3,
        image_size=16)
    return str(root)


def build_runner(data_root, work_dir, val_split, indices=None):
    cfg = Config.fromfile(CONFIG)
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.batch_size = 4
        loader.dataset.data_root = data_root
    cfg.val_dataloader.dataset.split = val_split
    if indices is not None:
        cfg.val_dataloader.dataset.indices = indices
    cfg.data_preprocessor.num_classes = 8
    cfg.model.data_preprocessor.num_classes = 8
    cfg.model.backbone.depth = 18
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint.save_best = 'gzsl/H'
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='_CountTrainIters')]
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'hook_{osp.basename(str(work_dir))}'
    return ZSLRunner.from_cfg(cfg)


class _Loop(BaseLoop):
    """A validation loop holding only what the check reads."""

    def __init__(self, dataset, metric):
        self.dataloader = SimpleNamespace(dataset=dataset)
        self.evaluator = SimpleNamespace(metrics=[metric])

    def run(self):
        pass


def test_val_split_without_unseen_images_stops_before_training(
        data_root, tmp_path, restore_default_scope):
    runner = build_runner(data_root, tmp_path / 'work', 'test_seen')
    _CountTrainIters.iters = 0
    with pytest.raises(ValueError) as err:
        runner.train()
    assert _CountTrainIters.iters == 0
    assert not list((tmp_path / 'work').rglob('*.pth'))
    msg = str(err.value)
    assert "chosen on 'gzsl/H'" in msg
    assert 'images of seen and unseen classes' in msg
    assert f"split='test_seen', ann_file='{data_root}/att_splits.mat'" in msg
    assert 'holds 6 seen-class and 0 unseen-class images' in msg
    assert "split='test'" in msg and "'clean_val'" in msg
    assert 'save_best to a key this split yields (gzsl/S)' in msg


def test_val_subset_without_unseen_images_stops_before_training(
        data_root, tmp_path, restore_default_scope):
    """split='test' holds both groups, but a subset of it (``indices``)
    may not."""
    runner = build_runner(data_root, tmp_path / 'work', 'test')
    dataset = runner.val_dataloader.dataset  # build it to find a subset
    seen = set(dataset.metainfo['seen_classes'].tolist())
    labels = [
        dataset.get_data_info(i)['gt_label'] for i in range(len(dataset))
    ]
    first = next(i for i, label in enumerate(labels) if label not in seen)
    assert first > 0, 'the test split starts with a seen-class image'
    runner = build_runner(data_root, tmp_path / 'work2', 'test', first)
    _CountTrainIters.iters = 0
    with pytest.raises(ValueError) as err:
        runner.train()
    assert _CountTrainIters.iters == 0
    msg = str(err.value)
    assert f"split='test', ann_file='{data_root}/att_splits.mat', " \
           f'indices={first}) holds {first} seen-class and 0 unseen-class ' \
           'images' in msg
    assert 'Give val_dataloader.dataset.indices that keep images of both' \
        in msg


@pytest.mark.parametrize(
    'split, save_best, prefix, fails',
    [
        ('test_unseen', 'val/gzsl/H', 'val', True),
        ('test_unseen', 'val/gzsl/S', 'val', True),
        ('test_unseen', 'val/zsl/top1', 'val', False),
        ('test_unseen', 'gzsl/H', 'val', False),  # another metric's key
        ('test_seen', 'zsl/top1', None, True),
        ('test_seen', 'gzsl/AUSUC', None, True),
        ('test_seen', 'gzsl/S', None, False),
        ('test_seen', 'auto', None, False),
        ('test', 'gzsl/H', None, False),
        ('clean_val', 'gzsl/H', None, False),
    ])
def test_keys_each_split_can_produce(data_root, split, save_best, prefix,
                                     fails):
    dataset = ZSLDataset(
        data_root=data_root,
        split=split,
        path_preset='DEMO',
        img_prefix='images',
        check_images=False)
    metric = GZSLMetric(prefix=prefix)
    runner = SimpleNamespace(
        _val_loop=_Loop(dataset, metric),
        hooks=[SimpleNamespace(save_best=[save_best])])
    if fails:
        with pytest.raises(ValueError, match=f'chosen on {save_best!r}'):
            ZSLSemanticsHook().before_train(runner)
    else:
        ZSLSemanticsHook().before_train(runner)
