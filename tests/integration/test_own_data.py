"""configs/own_data/zeromamba_own_data.py, copied out of the repository and
edited as a user would (the lines marked ``<-- CHANGE``), trains one epoch
on a small dataset of one's own (its own path prefix, 16 attributes) and
tests on *that* data."""
import os.path as osp
import re

from mmengine.config import Config

from test_check_data import OLD_PREFIX, make_own_dataset
from .conftest import REPO, run_tool

TEMPLATE = osp.join(REPO, 'configs', 'own_data', 'zeromamba_own_data.py')

# The demo's small VMamba (configs/zeromamba_demo.py) instead of VMamba-S
# from its ImageNet release file, and loaders without worker processes.
TINY = """_base_ = ['./zeromamba_own_data.py']
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64],
                  ssm_ratio=1.0, d_state=1, dt_rank='auto', mlp_ratio=2.0),
        drop_path_rate=0.0, init_cfg=None),
    neck=dict(in_channels=64, imagenet_classes=32, init_cfg=None),
    head=dict(in_channels=64, imagenet_classes=32, mlp_hidden=32))
train_dataloader = dict(batch_size=8, num_workers=0,
                        persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
default_hooks = dict(logger=dict(interval=1))
"""


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, f'template line {old!r} not found'
    return text.replace(old, new)


def test_template_trains_and_tests_on_own_data(tmp_path):
    data = str(tmp_path / 'my_dataset')
    counts = make_own_dataset(data)
    user = tmp_path / 'my_configs'
    user.mkdir()
    text = open(TEMPLATE).read()
    # Every field a user must change is marked.
    assert len(re.findall(r'<-- CHANGE', text)) >= 8
    for old, new in [
        ("data_root = 'data/my_dataset'", f'data_root = {data!r}'),
        ('img_size = 224', 'img_size = 32'),
        ("img_prefix='images'", "img_prefix='photos'"),
        ("old_prefix='/old/prefix/of/images/'", f'old_prefix={OLD_PREFIX!r}'),
        ('word_vectors=None,', f"word_vectors='{data}/attribute_w2v.npy',"),
        ('max_epochs=100', 'max_epochs=1'),
    ]:
        text = _edit(text, old, new)
    (user / 'zeromamba_own_data.py').write_text(text)
    (user / 'tiny.py').write_text(TINY)

    work = tmp_path / 'work'
    run_tool(['tools/check_data.py', str(user / 'tiny.py')])
    run_tool([
        'tools/train.py',
        str(user / 'tiny.py'), '--work-dir',
        str(work)
    ])
    checkpoint = work / 'epoch_1.pth'
    assert checkpoint.is_file()
    result = run_tool([
        'tools/test.py',
        str(user / 'tiny.py'),
        str(checkpoint), '--work-dir',
        str(work / 'test')
    ])
    output = result.stdout + result.stderr
    assert 'gzsl/H' in output

    # The run read the user's data in every phase, not the demo's.
    dumped = Config.fromfile(str(work / 'tiny.py'))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert dumped[loader].dataset.data_root == data
        assert 'zsl_demo' not in str(dumped[loader].dataset)
    assert dumped.test_dataloader.dataset.split == 'test'
    from zeromamba_mm.registry import DATASETS
    test_set = DATASETS.build(
        dict(dumped.test_dataloader.dataset, pipeline=[]))
    assert len(test_set) == counts['num_test'] == 32
    assert test_set.metainfo['class_attributes'].shape == (10, 16)
