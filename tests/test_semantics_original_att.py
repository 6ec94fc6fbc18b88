"""A model trained on ``original_att`` (raw, not normalised class rows) gives
the same class scores in the test metric and in ZSLInferencer: training
records the class semantics it is tested on in the checkpoint, and inference
restores them as stored (it used to L2-normalise them again)."""
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.registry import DefaultScope

from zeromamba_mm.apis import ZSLInferencer
from zeromamba_mm.datasets import ZSLDataset, make_demo_data
from zeromamba_mm.engine import ZSLRunner
from zeromamba_mm.registry import DATASETS, METRICS
from zeromamba_mm.structures import ClassSemantics
from zeromamba_mm.utils.safe_load import load_torch_file

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'configs', 'demo', 'linear_resnet18_zsl_demo.py')


@METRICS.register_module(force=True)
class _RecordTestScores(BaseMetric):
    """Keeps the scores the test evaluator's metrics see, per image."""
    seen: dict = {}

    def process(self, data_batch, data_samples) -> None:
        for sample in data_samples:
            _RecordTestScores.seen[sample['img_path']] = \
                sample['pred_score'].cpu().numpy().copy()
            self.results.append(sample['img_path'])

    def compute_metrics(self, results) -> dict:
        return {}


def _config(data_root: str, work_dir: str, name: str) -> Config:
    cfg = Config.fromfile(CONFIG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].batch_size = 4
        cfg[loader].dataset.data_root = data_root
        cfg[loader].dataset.attribute_key = 'original_att'
    cfg.data_preprocessor.num_classes = 8
    cfg.model.data_preprocessor.num_classes = 8
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.test_evaluator = [
        dict(cfg.val_evaluator),
        dict(type='zeromamba_mm._RecordTestScores')
    ]
    cfg.work_dir = work_dir
    cfg.experiment_name = name
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('semantics')
    data_root = str(root / 'data')
    make_demo_data(
        data_root,
        seed=0,
        num_classes=8,
        num_unseen=2,
        images_per_class=3,
        image_size=16)
    work_dir = str(root / 'work')
    saved = DefaultScope._instance_dict.copy()
    ZSLRunner.from_cfg(_config(data_root, work_dir, 'orig_train')).train()
    yield data_root, work_dir, osp.join(work_dir, 'epoch_1.pth')
    DefaultScope._instance_dict = saved  # the runner made its scope current


def test_checkpoint_records_the_tested_semantics_as_used(trained):
    data_root, _, checkpoint = trained
    meta = load_torch_file(checkpoint)['meta']  # weights-only: plain values
    stored = ClassSemantics.from_meta(meta['zsl_class_semantics'])
    test = ZSLDataset(
        data_root=data_root,
        split='test',
        path_preset='DEMO',
        img_prefix='images',
        attribute_key='original_att',
        lazy_init=True)
    expected = test.metainfo['class_semantics']
    assert stored == expected and stored.normalization == 'none'
    # original_att of the demo is multi-hot: raw rows are not unit rows.
    assert set(np.unique(stored.attributes)) == {0.0, 1.0}
    assert not np.allclose(np.linalg.norm(stored.attributes, axis=1), 1)
    assert 'test dataset' in meta['zsl_class_semantics']['recorded_from']
    # The training dataset's semantics are stored as plain values too.
    assert isinstance(meta['dataset_meta']['class_semantics'], dict)


def test_metric_and_inferencer_give_the_same_scores(trained,
                                                   restore_default_scope):
    data_root, work_dir, checkpoint = trained
    cfg = _config(data_root, work_dir, 'orig_test')
    cfg.load_from = checkpoint
    _RecordTestScores.seen = {}
    ZSLRunner.from_cfg(cfg).test()
    metric_scores = dict(_RecordTestScores.seen)
    test = DATASETS.build(cfg.test_dataloader.dataset)
    assert sorted(metric_scores) == sorted(
        test.get_data_info(i)['img_path'] for i in range(len(test)))

    inferencer = ZSLInferencer(
        _config(data_root, work_dir, 'orig_infer'),
        pretrained=checkpoint,
        device='cpu')
    assert inferencer.semantics.normalization == 'none'
    paths = sorted(metric_scores)
    results = inferencer(paths, batch_size=4, score_space='raw', gamma=0.0)
    for path, result in zip(paths, results):
        np.testing.assert_allclose(
            result['pred_scores'], metric_scores[path], rtol=1e-5, atol=1e-5)
    # A class added by its raw attributes gets the recorded normalisation
    # (none): its scores are the model's attributes dotted with the raw row.
    row = inferencer.class_attributes[0] + inferencer.class_attributes[-1]
    inferencer.add_classes('mixed', row)
    np.testing.assert_array_equal(inferencer.class_attributes[-1],
                                  row.astype(np.float32))


def test_checkpoint_without_the_key_uses_the_dataset_meta(trained, tmp_path):
    data_root, work_dir, checkpoint = trained
    old = load_torch_file(checkpoint)
    del old['meta']['zsl_class_semantics']
    old['meta']['dataset_meta'].pop('class_semantics')
    path = str(tmp_path / 'old.pth')
    torch.save(old, path)
    inferencer = ZSLInferencer(
        _config(data_root, work_dir, 'orig_old'),
        pretrained=path,
        device='cpu')
    # Older checkpoints: the training classes, normalised as asked.
    assert inferencer.semantics.normalization == 'l2'
    np.testing.assert_allclose(
        np.linalg.norm(inferencer.class_attributes, axis=1), 1, rtol=1e-6)
    assert inferencer.seen_classes.tolist() == \
        old['meta']['dataset_meta']['seen_classes'].tolist()


def test_resume_finds_the_stored_metainfo_equal(trained, tmp_path,
                                               restore_default_scope):
    data_root, work_dir, checkpoint = trained
    cfg = _config(data_root, str(tmp_path / 'resumed'), 'orig_resume')
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=2)
    cfg.load_from, cfg.resume = checkpoint, True
    runner = ZSLRunner.from_cfg(cfg)
    runner.train()
    logs = [
        open(path).read()
        for path in glob.glob(str(tmp_path / 'resumed' / '*' / '*.log'))
    ]
    assert logs
    assert not any('dataset metainfo from the resumed checkpoint is different'
                   in log for log in logs)
    resumed = load_torch_file(str(tmp_path / 'resumed' / 'epoch_2.pth'))
    assert resumed['meta']['zsl_class_semantics']['normalization'] == 'none'
