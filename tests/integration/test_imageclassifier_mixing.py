"""ZeroMamba's neck + head inside a plain mmpretrain ImageClassifier.

``configs/mixing/zeromamba-head_imageclassifier_demo.py`` trains one epoch
on the reduced demo data with mmpretrain's ``ClassNumCheckHook`` active
(it asserts on any module attribute called ``num_classes`` that differs
from the dataset's class count), then the checkpoint predicts all classes.
"""
import glob
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.dataset import default_collate

from .conftest import REPO, data_root_options, run_tool

CONFIG = 'configs/mixing/zeromamba-head_imageclassifier_demo.py'


def test_plain_image_classifier_trains_and_predicts_all_classes(
        demo_root, tmp_path):
    child = tmp_path / 'with_class_num_check.py'
    child.write_text(
        f"_base_ = ['{osp.join(REPO, CONFIG)}']\n"
        'custom_hooks = [\n'
        "    dict(type='zeromamba_mm.ZSLSemanticsHook'),\n"
        "    dict(type='mmpretrain.ClassNumCheckHook'),\n"
        ']\n')
    work_dir = str(tmp_path / 'work')
    result = run_tool(
        ['tools/train.py', str(child), '--work-dir', work_dir,
         '--cfg-options'] + data_root_options(demo_root) + [
             f'model.head.word_vectors={demo_root}/attribute_w2v.npy',
             'train_cfg.max_epochs=1', 'train_dataloader.batch_size=32'
         ])
    assert 'ImageClassifier' in result.stdout + result.stderr
    (ckpt, ) = glob.glob(osp.join(work_dir, 'epoch_1.pth'))

    from mmpretrain.models import ImageClassifier

    import zeromamba_mm  # noqa: F401
    from zeromamba_mm.checkpoint import load_checkpoint_file
    from zeromamba_mm.registry import DATASETS, MODELS
    cfg = Config.fromfile(osp.join(REPO, CONFIG))
    cfg.model.head.word_vectors = None
    model = MODELS.build(cfg.model)
    assert type(model) is ImageClassifier
    model.load_state_dict(load_checkpoint_file(ckpt), strict=True)
    model.eval()

    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.data_root = demo_root
    dataset = DATASETS.build(dataset_cfg)
    meta = dataset.metainfo
    model.head.set_class_semantics(meta['class_attributes'],
                                   meta['seen_classes'])
    batch = default_collate([dataset[i] for i in range(4)])
    with torch.no_grad():
        data = model.data_preprocessor(batch)
        results = model(**data, mode='predict')
        feats = model.extract_feat(data['inputs'])
        expected = model.head(feats) @ torch.as_tensor(
            meta['class_attributes'], dtype=torch.float32).t()
    num_classes = len(meta['classes'])
    assert num_classes == 24
    for result, score in zip(results, expected):
        assert result.pred_score.shape == (num_classes, )
        torch.testing.assert_close(result.pred_score, score)
