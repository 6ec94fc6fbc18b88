"""Tests of the synthetic demo dataset and its CLI."""
import importlib.util
import os
import os.path as osp
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from zeromamba_mm.datasets import ZSLDataError, ZSLDataset, make_demo_data
from zeromamba_mm.datasets.demo_data import ATTRIBUTE_GROUPS, attribute_names

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('demo') / 'zsl_demo'
    make_demo_data(str(out), seed=0)
    return out


def load(demo_dir, split, **kwargs):
    kwargs.setdefault('path_preset', 'DEMO')
    return ZSLDataset(
        data_root=str(demo_dir),
        img_prefix='images',
        split=split,
        attribute_names_file='attributes.txt',
        serialize_data=False,
        **kwargs)


def all_files(root):
    return sorted(
        osp.relpath(osp.join(d, f), root) for d, _, fs in os.walk(root)
        for f in fs)


def test_layout_and_arrays(demo_dir):
    assert sorted(os.listdir(demo_dir)) == [
        'README.txt', 'att_splits.mat', 'attribute_w2v.npy', 'attributes.txt',
        'images', 'res101.mat'
    ]
    images = [f for f in all_files(demo_dir) if f.endswith('.jpg')]
    assert len(images) == 24 * 40
    size = sum(osp.getsize(demo_dir / f) for f in all_files(demo_dir))
    assert size < 5 * 2**20
    with Image.open(demo_dir / images[0]) as img:
        assert img.format == 'JPEG' and img.size == (64, 64)

    mat = sio.loadmat(str(demo_dir / 'att_splits.mat'))
    res = sio.loadmat(str(demo_dir / 'res101.mat'))
    assert 'features' not in res
    original, att = mat['original_att'], mat['att']
    assert original.shape == att.shape == (20, 24)
    # one value per group -> six ones per class
    np.testing.assert_array_equal(original.sum(0), len(ATTRIBUTE_GROUPS))
    np.testing.assert_allclose(att, original / np.sqrt(6))
    for key in ('trainval_loc', 'test_seen_loc', 'test_unseen_loc'):
        assert mat[key].dtype == np.uint16 and mat[key].shape[1] == 1
    assert [
        len(mat[k])
        for k in ('trainval_loc', 'test_seen_loc', 'test_unseen_loc')
    ] == [576, 144, 240]
    first = res['image_files'][0, 0][0]
    assert first.startswith('/BS/demo/work/data/ZSLDemo/images/')
    labels = res['labels'].ravel()
    assert labels.min() == 1 and labels.max() == 24
    # listed by path like res101.mat, so labels do not follow folder order
    assert np.any(np.diff(labels) < 0)

    w2v = np.load(demo_dir / 'attribute_w2v.npy')
    assert w2v.shape == (20, 300) and w2v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(w2v, axis=1), 1, atol=1e-5)
    cos = w2v @ w2v.T
    assert cos[0, 1] > 0.2 and abs(cos[0, 5]) < 0.2  # same / other group
    assert 'seed 0' in (demo_dir / 'README.txt').read_text()


def test_all_splits_load(demo_dir):
    sizes = {}
    for split in ('trainval', 'test_seen', 'test_unseen', 'test',
                  'clean_train', 'clean_val'):
        ds = load(demo_dir, split)
        sizes[split] = len(ds)
        for info in ds.data_list[::37]:
            # folders are class names; labels come from res101.mat
            folder = info['img_path'].split('/')[-2]
            assert folder == ds.metainfo['classes'][info['gt_label']]
    # clean: 4 of 18 seen classes pseudo-unseen; of the other 14 classes'
    # 32 trainval images, round(0.2 * 32) = 6 are pseudo test-seen.
    assert sizes == dict(
        trainval=576,
        test_seen=144,
        test_unseen=240,
        test=384,
        clean_train=14 * 26,
        clean_val=14 * 6 + 4 * 32)
    ds = load(demo_dir, 'test', path_preset='auto')
    meta = ds.metainfo
    assert len(meta['seen_classes']) == 18
    assert len(meta['unseen_classes']) == 6
    assert meta['attribute_names'] == tuple(attribute_names())
    assert meta['num_attributes'] == 20
    with pytest.warns(UserWarning), pytest.raises(
            ZSLDataError, match='train_loc'):
        load(demo_dir, 'train', allow_overlapping_splits=True)
    clean = load(demo_dir, 'clean_val').metainfo
    assert len(clean['unseen_classes']) == 4
    assert set(clean['unseen_classes']) < set(meta['seen_classes'])


def test_unseen_classes_are_new_combinations(demo_dir):
    ds = load(demo_dir, 'test', attribute_key='original_att')
    att = ds.metainfo['class_attributes']
    seen, unseen = ds.metainfo['seen_classes'], ds.metainfo['unseen_classes']
    seen_rows = {tuple(r) for r in att[seen]}
    assert not any(tuple(r) in seen_rows for r in att[unseen])
    # every attribute value occurs in some seen class
    assert np.all(att[seen].sum(0) > 0)


def test_same_seed_same_bytes(demo_dir, tmp_path):
    again = tmp_path / 'again'
    make_demo_data(str(again), seed=0)
    files = all_files(demo_dir)
    assert all_files(again) == files
    for f in files:
        assert (demo_dir / f).read_bytes() == (again / f).read_bytes(), f
    other = tmp_path / 'other'
    make_demo_data(str(other), seed=1)
    assert (other /
            'att_splits.mat').read_bytes() != (demo_dir /
                                               'att_splits.mat').read_bytes()


def _cli():
    spec = importlib.util.spec_from_file_location(
        'make_demo_data_cli', ROOT / 'tools' / 'make_demo_data.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / 'busy'
    out.mkdir()
    (out / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='not empty'):
        make_demo_data(str(out))
    cli = _cli()
    assert cli.main(['--out', str(out)]) == 1
    assert '--force' in capsys.readouterr().err
    assert cli.main(['--out', str(out), '--seed', '2', '--force']) == 0
    assert (out / 'keep.txt').read_text() == 'mine'  # others are left alone
    assert (out / 'res101.mat').is_file()
    assert '"num_images": 960' in capsys.readouterr().out


def _simple_features(path):
    """Background level, shape area/extent/fill/asymmetry, colour, texture."""
    img = np.asarray(Image.open(path), dtype=np.float64)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    fg = np.abs(img - bg).sum(-1) > 90
    ys, xs = np.nonzero(fg)
    if len(xs) == 0:
        return np.zeros(12)
    w, h = np.ptp(xs) + 1, np.ptp(ys) + 1
    colours = img[fg]
    lum = colours.sum(1)
    bright = colours[lum >= np.median(lum)].mean(0) / 255
    return np.array([
        bg.mean() / 255,
        fg.mean() * 10,
        xs.mean() / img.shape[1],
        np.sqrt(fg.mean()),
        fg.sum() / (w * h), (ys.mean() - ys.min()) / h, w / h, *bright,
        (lum < 0.6 * np.percentile(lum, 90)).mean()
    ])


def test_zero_shot_transfer_is_learnable(demo_dir):
    """Ridge regression from simple image features to attributes, fitted on
    seen classes only, recognises unseen classes far above chance (1/6)."""
    train = load(demo_dir, 'trainval', attribute_key='original_att')
    test = load(demo_dir, 'test_unseen', attribute_key='original_att')
    att = train.metainfo['class_attributes'].astype(np.float64)
    unseen = train.metainfo['unseen_classes']

    def design(ds):
        x = np.stack([_simple_features(i['img_path']) for i in ds.data_list])
        quad = [x[:, i:i + 1] * x[:, i:] for i in range(x.shape[1])]
        return np.concatenate([x, *quad], axis=1)

    x_train, x_test = design(train), design(test)
    y_train = np.array([i['gt_label'] for i in train.data_list])
    y_test = np.array([i['gt_label'] for i in test.data_list])
    assert not np.isin(y_train, unseen).any()
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    targets = att[y_train]
    weights = np.linalg.solve(
        x_train.T @ x_train + 1.0 * np.eye(x_train.shape[1]),
        x_train.T @ (targets - targets.mean(0)))
    pred_att = x_test @ weights + targets.mean(0)
    dist = ((pred_att[:, None] - att[unseen][None])**2).sum(-1)
    acc = np.mean(unseen[dist.argmin(1)] == y_test)
    print(f"zero-shot accuracy on unseen demo classes: {acc:.3f}")
    assert acc >= 3 / 6, acc
