"""Tests of ZSLDataset on the real xlsa17 split files (tests/data/xlsa17)."""
import copy
import os
import os.path as osp
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from zeromamba_mm.datasets import (PATH_PRESETS, BaseZSLDataset, ZSLDataError,
                                   ZSLDataset,
                                   load_table_annotation, load_xlsa17,
                                   make_clean_split, make_demo_data,
                                   remap_image_paths, save_table_annotation)
from zeromamba_mm.registry import DATASETS

DATA = Path(__file__).parent / 'data' / 'xlsa17'

# REFERENCE.md section 4: classes seen/unseen, attrs, images, splits.
REAL = {
    'AWA2':
    dict(
        seen=40,
        unseen=10,
        attrs=85,
        images=37322,
        trainval=23527,
        test_seen=5882,
        test_unseen=7913),
    'SUN':
    dict(
        seen=645,
        unseen=72,
        attrs=102,
        images=14340,
        trainval=10320,
        test_seen=2580,
        test_unseen=1440),
    'FLO':
    dict(
        seen=82,
        unseen=20,
        attrs=1024,
        images=8189,
        trainval=5631,
        test_seen=1403,
        test_unseen=1155),
}


def real(name, split='trainval', **kwargs):
    kwargs.setdefault('path_preset', name)
    kwargs.setdefault('check_images', False)
    kwargs.setdefault('img_prefix', 'images')
    # mmengine's serialisation runs gc.collect(): slow and not under test
    kwargs.setdefault('serialize_data', False)
    return ZSLDataset(data_root=str(DATA / name), split=split, **kwargs)


def infos(ds):
    if not ds.serialize_data:  # fast path, same content
        return ds.data_list
    return [ds.get_data_info(i) for i in range(len(ds))]


def labels_of(ds):
    return np.array([info['gt_label'] for info in infos(ds)])


def paths_of(ds):
    return [info['img_path'] for info in infos(ds)]


@pytest.fixture(scope='module')
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('zsl_demo')
    make_demo_data(str(out), seed=0, force=True)
    return out


def demo(demo_dir, split='trainval', **kwargs):
    kwargs.setdefault('serialize_data', False)
    return ZSLDataset(
        data_root=str(demo_dir),
        img_prefix='images',
        path_preset='DEMO',
        split=split,
        **kwargs)


# ---------------------------------------------------------------- real data
@pytest.mark.parametrize('name', ['AWA2', 'SUN'])
def test_real_counts_and_metainfo(name):
    ref = REAL[name]
    mat = sio.loadmat(str(DATA / name / 'att_splits.mat'))
    sizes = {}
    for split in ('trainval', 'test_seen', 'test_unseen', 'test'):
        ds = real(name, split)
        sizes[split] = len(ds)
        meta = ds.metainfo
        assert len(meta['seen_classes']) == ref['seen']
        assert len(meta['unseen_classes']) == ref['unseen']
    assert sizes['trainval'] == ref['trainval']
    assert sizes['test_seen'] == ref['test_seen']
    assert sizes['test_unseen'] == ref['test_unseen']
    assert sizes['test'] == ref['test_seen'] + ref['test_unseen']

    num_classes = ref['seen'] + ref['unseen']
    assert isinstance(meta['classes'], tuple) and len(
        meta['classes']) == num_classes
    assert all(isinstance(c, str) for c in meta['classes'])
    att = meta['class_attributes']
    assert att.dtype == np.float32 and att.shape == (num_classes, ref['attrs'])
    np.testing.assert_allclose(np.linalg.norm(att, axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(att, mat['att'].T, atol=1e-6)
    assert meta['num_attributes'] == ref['attrs']
    assert meta['seen_classes'].dtype == np.int64
    assert np.all(np.diff(meta['seen_classes']) > 0)
    assert np.intersect1d(meta['seen_classes'],
                          meta['unseen_classes']).size == 0
    assert meta['attribute_names'] is None


def test_real_labels_come_from_res101():
    res = sio.loadmat(str(DATA / 'AWA2' / 'res101.mat'))
    mat = sio.loadmat(str(DATA / 'AWA2' / 'att_splits.mat'))
    all_labels = res['labels'].ravel().astype(np.int64) - 1
    for split in ('trainval', 'test_unseen'):
        loc = mat[f'{split}_loc'].ravel().astype(np.int64) - 1
        ds = real('AWA2', split)
        got = labels_of(ds)
        assert isinstance(ds.get_data_info(0)['gt_label'], int)
        np.testing.assert_array_equal(got, all_labels[loc])
        # AWA2 folders are class names: they agree with the labels.
        names = ds.metainfo['classes']
        for path, label in list(zip(paths_of(ds), got))[::500]:
            assert path.split('/')[-2] == names[label]
    # The uint16 index of the last image (37322) must survive the cast.
    test = real('AWA2', 'test')
    assert len(set(paths_of(test))) == len(test)


def test_path_presets_and_rules():
    ds = real('AWA2', 'trainval', img_prefix='JPEGImages')
    root = str(DATA / 'AWA2' / 'JPEGImages')
    paths = paths_of(ds)
    assert all(p.startswith(root + '/') for p in paths)
    assert not any('//' in p or '/BS/' in p for p in paths)
    first = sio.loadmat(str(DATA / 'AWA2' / 'res101.mat'))['image_files']
    assert '//JPEGImages' in first[0, 0][0]  # the real double slash
    test_seen = real('AWA2', 'test_seen', img_prefix='JPEGImages')
    assert 'fox/fox_10202.jpg' in paths_of(test_seen)[0]

    auto = real('SUN', 'test_unseen', path_preset='auto', img_prefix='')
    assert paths_of(auto)[0] == osp.join(
        str(DATA / 'SUN'), 'a/airlock/sun_aalgvlxcyjeajlla.jpg')

    # Generic rules for any dataset; the double slash need not be repeated.
    orig = [first[i, 0][0] for i in range(3)]
    rule = dict(
        old_prefix='/BS/xian/work/data/Animals_with_Attributes2/',
        new_prefix='AwA2')
    assert remap_image_paths(orig, path_rule=rule)[0] == \
        'AwA2/JPEGImages/antelope/antelope_10001.jpg'
    assert remap_image_paths(orig, path_rule=dict(keep_last=2))[1] == \
        'antelope/antelope_10002.jpg'
    cub = PATH_PRESETS['CUB'] + '001.Black_footed_Albatross/x_1.jpg'
    assert remap_image_paths([cub],
                             'auto') == ['001.Black_footed_Albatross/x_1.jpg']
    with pytest.raises(ZSLDataError, match='do not start with the prefix'):
        remap_image_paths(orig, path_preset='SUN')
    with pytest.raises(ZSLDataError, match='no preset matching'):
        remap_image_paths(['/data/flowers/image_00001.jpg'], 'auto')
    with pytest.raises(ValueError, match='Unknown path_preset'):
        remap_image_paths(orig, path_preset='CUB200')
    with pytest.raises(ValueError, match='either path_preset or path_rule'):
        remap_image_paths(orig, path_preset='AWA2', path_rule=rule)


def test_flo_without_names_or_original_att(tmp_path):
    """FLO's att_splits.mat has neither class names nor original_att; its
    res101.mat is not in tests/data, so build one matching its splits."""
    ref = REAL['FLO']
    mat = sio.loadmat(str(DATA / 'FLO' / 'att_splits.mat'))
    rng = np.random.default_rng(0)
    unseen = rng.choice(102, ref['unseen'], replace=False)
    seen = np.setdiff1d(np.arange(102), unseen)
    labels = np.zeros(ref['images'], dtype=np.int64)
    for key, classes in (('trainval_loc', seen), ('test_seen_loc', seen),
                         ('test_unseen_loc', unseen)):
        loc = mat[key].ravel().astype(np.int64) - 1
        labels[loc] = classes[np.arange(len(loc)) % len(classes)]
    files = np.empty((ref['images'], 1), dtype=object)
    for i in range(ref['images']):
        files[i, 0] = f'/BS/somewhere/Flowers/jpg/image_{i + 1:05d}.jpg'
    res = tmp_path / 'res101.mat'
    sio.savemat(
        str(res),
        dict(image_files=files, labels=(labels + 1.0).reshape(-1, 1)))

    kwargs = dict(
        split_file=str(DATA / 'FLO' / 'att_splits.mat'),
        image_list_file=str(res),
        path_rule=dict(old_prefix='/BS/somewhere/Flowers/'),
        check_images=False,
        serialize_data=False)
    sizes = {}
    for split in ('trainval', 'test_seen', 'test_unseen'):
        ds = ZSLDataset(data_root=str(tmp_path), split=split, **kwargs)
        sizes[split] = len(ds)
    assert sizes == {k: ref[k] for k in sizes}
    meta = ds.metainfo
    assert meta['classes'][:2] == ('class_000', 'class_001')
    assert len(meta['classes']) == 102
    assert meta['class_attributes'].shape == (102, ref['attrs'])
    np.testing.assert_array_equal(meta['seen_classes'], seen)
    np.testing.assert_array_equal(meta['unseen_classes'], np.sort(unseen))
    assert paths_of(ds)[0].startswith(str(tmp_path / 'jpg' / 'image_'))

    names = tmp_path / 'names.txt'
    names.write_text(''.join(f'flower {i}\n' for i in range(102)))
    ds = ZSLDataset(
        data_root=str(tmp_path), class_names_file='names.txt', **kwargs)
    assert ds.metainfo['classes'][5] == 'flower 5'
    names.write_text('one\ntwo\n')
    with pytest.raises(ZSLDataError, match='2 class names .* 102 classes'):
        ZSLDataset(
            data_root=str(tmp_path), class_names_file='names.txt', **kwargs)
    with pytest.raises(ZSLDataError, match=r"no key\(s\) \['original_att'\]"):
        ZSLDataset(attribute_key='original_att', **kwargs)


def test_original_att_is_raw():
    ds = real('AWA2', 'test_unseen', attribute_key='original_att')
    mat = sio.loadmat(str(DATA / 'AWA2' / 'att_splits.mat'))
    att = ds.metainfo['class_attributes']
    assert att.dtype == np.float32
    np.testing.assert_allclose(att, mat['original_att'].T.astype(np.float32))
    assert att.min() == -1  # AWA2 marks missing values with -1
    assert np.abs(np.linalg.norm(att, axis=1) - 1).max() > 1


def test_split_names_and_overlapping_opt_in():
    with pytest.raises(ValueError, match="Unknown split 'validation'"):
        real('AWA2', 'validation')
    with pytest.raises(ValueError, match='overlap test_seen_loc'):
        real('AWA2', 'val')
    with pytest.warns(UserWarning, match='overlap test_seen_loc'):
        train = real('AWA2', 'train', allow_overlapping_splits=True)
    with pytest.warns(UserWarning):
        val = real('AWA2', 'val', allow_overlapping_splits=True)
    assert (len(train), len(val)) == (20218, 9191)
    # The xlsa17 validation protocol: train classes seen, val classes not.
    assert len(train.metainfo['seen_classes']) == 27
    assert len(val.metainfo['unseen_classes']) == 13
    np.testing.assert_array_equal(
        np.unique(labels_of(val)), val.metainfo['unseen_classes'])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        real('AWA2', 'test')  # standard splits never warn


def test_clean_splits_real():
    std = real('AWA2', 'trainval')
    seen = std.metainfo['seen_classes']
    trainval = set(paths_of(std))
    tests = set(paths_of(real('AWA2', 'test')))
    ctrain = real('AWA2', 'clean_train')
    cval = real('AWA2', 'clean_val')
    p_train, p_val = paths_of(ctrain), paths_of(cval)
    assert len(set(p_train) & set(p_val)) == 0
    assert set(p_train) | set(p_val) == trainval
    assert len(p_train) + len(p_val) == len(trainval)
    assert not (set(p_val) | set(p_train)) & tests

    meta = cval.metainfo
    pseudo_seen, pseudo_unseen = meta['seen_classes'], meta['unseen_classes']
    assert len(pseudo_unseen) == 8  # round(0.2 * 40)
    assert np.intersect1d(pseudo_seen, pseudo_unseen).size == 0
    np.testing.assert_array_equal(np.union1d(pseudo_seen, pseudo_unseen), seen)
    np.testing.assert_array_equal(ctrain.metainfo['unseen_classes'],
                                  pseudo_unseen)
    assert meta['class_attributes'].shape == (50, 85)
    y_train, y_val = labels_of(ctrain), labels_of(cval)
    assert np.isin(y_train, pseudo_seen).all()
    np.testing.assert_array_equal(np.unique(y_train), pseudo_seen)
    y_std = labels_of(std)
    for c in pseudo_unseen:  # every image of a pseudo-unseen class is val
        assert (y_val == c).sum() == (y_std == c).sum()
    # pseudo test-seen comes first, then pseudo-unseen
    n_seen_part = np.isin(y_val, pseudo_seen).sum()
    assert np.isin(y_val[:n_seen_part], pseudo_seen).all()
    for c in pseudo_seen[:5]:
        held = (y_val == c).sum() / (y_std == c).sum()
        assert abs(held - 0.2) < 0.01

    again = real('AWA2', 'clean_val')
    assert paths_of(again) == p_val
    other = real('AWA2', 'clean_val', clean_seed=1)
    assert not np.array_equal(other.metainfo['unseen_classes'], pseudo_unseen)


def test_make_clean_split_edge_cases():
    labels = np.repeat(np.arange(4), 5)
    split = make_clean_split(np.arange(20), labels, np.arange(4), 0.25, 0.2)
    assert len(split.unseen_classes) == 1
    assert len(split.val_seen) == 3 and len(split.train) == 12
    with pytest.raises(ZSLDataError, match='at least 2 seen classes'):
        make_clean_split(np.arange(5), labels, np.array([0]), 0.2, 0.2)
    with pytest.raises(ValueError, match='clean_unseen_ratio'):
        make_clean_split(np.arange(20), labels, np.arange(4), 0.0, 0.2)


def test_metainfo_is_safe_for_mmengine():
    ds = real('SUN', 'test', lazy_init=True)
    assert not ds._fully_initialized
    meta = ds.metainfo  # available before full_init
    assert meta['class_attributes'].shape == (717, 102)
    assert not any(isinstance(v, str) for v in meta.values())
    copied = copy.deepcopy(meta)
    np.testing.assert_array_equal(copied['seen_classes'], ds.seen_classes)
    assert len(ds) == 4020
    sub = ds.get_subset(10)
    assert len(sub) == 10 and sub.metainfo['num_attributes'] == 102
    with pytest.raises(ZSLDataError, match='3 class names'):
        real('AWA2', metainfo=dict(classes=('a', 'b', 'c')))
    with pytest.raises(ValueError, match=r"\['seen_classes'\] are computed"):
        real('AWA2', metainfo=dict(seen_classes=np.arange(3)))


def test_registry_build():
    from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
    cfg = dict(
        type='zeromamba_mm.ZSLDataset',
        data_root=str(DATA / 'AWA2'),
        split='test_unseen',
        path_preset='AWA2',
        check_images=False)
    ds = MMPRETRAIN_DATASETS.build(copy.deepcopy(cfg))
    assert isinstance(ds, BaseZSLDataset) and len(ds) == 7913
    assert DATASETS.get('ZSLDataset') is ZSLDataset


# ------------------------------------------------------------ bad inputs
def _small_mats(tmp_path, drop=None, **override):
    """A tiny consistent xlsa17 pair: 3 classes, 6 images."""
    att = np.array([[1., 0, 0], [0, 1, 0], [1, 1, 1]])  # (A=3, C=3)
    names = np.empty((3, 1), dtype=object)
    names[:, 0] = ['a', 'b', 'c']
    splits = dict(
        att=att,
        original_att=att,
        allclasses_names=names,
        trainval_loc=np.array([[1], [3]], dtype=np.uint16),
        test_seen_loc=np.array([[2], [4]], dtype=np.uint16),
        test_unseen_loc=np.array([[5], [6]], dtype=np.uint16))
    files = np.empty((6, 1), dtype=object)
    files[:, 0] = [f'/BS/x/img{i}.jpg' for i in range(6)]
    images = dict(
        image_files=files, labels=np.array([[1], [1], [2], [2], [3], [3.]]))
    for key, value in override.items():
        (splits if key in splits else images)[key] = value
    if drop:
        splits.pop(drop, None)
        images.pop(drop, None)
    sio.savemat(str(tmp_path / 'att_splits.mat'), splits)
    sio.savemat(str(tmp_path / 'res101.mat'), images)
    return dict(
        data_root=str(tmp_path),
        check_images=False,
        serialize_data=False,
        path_rule=dict(old_prefix='/BS/x/'))


def test_small_mat_loads(tmp_path):
    ds = ZSLDataset(split='test', **_small_mats(tmp_path))
    assert labels_of(ds).tolist() == [0, 1, 2, 2]
    assert ds.metainfo['classes'] == ('a', 'b', 'c')
    assert ds.seen_classes.tolist() == [0, 1]
    assert paths_of(ds)[0] == osp.join(str(tmp_path), 'img1.jpg')


def test_missing_file_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.mat'):
        ZSLDataset(data_root=str(tmp_path), split_file='nowhere.mat')
    kwargs = _small_mats(tmp_path, drop='test_unseen_loc')
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(**kwargs)
    msg = str(err.value)
    assert 'att_splits.mat' in msg and "['test_unseen_loc']" in msg
    assert 'trainval_loc' in msg  # lists the keys that exist
    kwargs = _small_mats(tmp_path, drop='labels')
    with pytest.raises(ZSLDataError, match=r"res101.mat has no key.*labels"):
        ZSLDataset(**kwargs)


def test_out_of_range_indices(tmp_path):
    kwargs = _small_mats(
        tmp_path, test_unseen_loc=np.array([[5], [7]], dtype=np.uint16))
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(**kwargs)
    msg = str(err.value)
    assert 'att_splits.mat' in msg and 'test_unseen_loc' in msg
    assert '[1, 6]' in msg and '7' in msg
    kwargs = _small_mats(
        tmp_path, trainval_loc=np.array([[0], [3]], dtype=np.uint16))
    with pytest.raises(ZSLDataError, match=r"'trainval_loc'.*\[1, 6\]"):
        ZSLDataset(**kwargs)
    kwargs = _small_mats(
        tmp_path, labels=np.array([[1], [1], [2], [2], [3], [4.]]))
    with pytest.raises(ZSLDataError, match=r"res101.mat: 'labels'.*\[1, 3\]"):
        ZSLDataset(**kwargs)


def test_inconsistent_splits(tmp_path):
    # an unseen-class image listed as test_seen
    kwargs = _small_mats(
        tmp_path, test_seen_loc=np.array([[2], [5]], dtype=np.uint16))
    with pytest.raises(ZSLDataError, match="1 test_seen images .* 'c'"):
        ZSLDataset(**kwargs)
    kwargs = _small_mats(
        tmp_path, labels=np.array([[1], [1], [3], [2], [3], [3.]]))
    with pytest.raises(ZSLDataError, match='seen and unseen classes overlap'):
        ZSLDataset(**kwargs)
    kwargs = _small_mats(
        tmp_path, test_seen_loc=np.array([[1], [4]], dtype=np.uint16))
    with pytest.raises(ZSLDataError, match='share 1 images'):
        ZSLDataset(**kwargs)
    names = np.empty((2, 1), dtype=object)
    names[:, 0] = ['a', 'b']
    kwargs = _small_mats(tmp_path, allclasses_names=names)
    with pytest.raises(ZSLDataError, match='2 entries but .* 3 classes'):
        ZSLDataset(**kwargs)


def test_missing_images_are_reported(demo_dir):
    ds = demo(demo_dir, 'test_seen')
    victims = paths_of(ds)[3:6]
    backup = [Path(p).read_bytes() for p in victims]
    try:
        for p in victims:
            os.remove(p)
        with pytest.raises(FileNotFoundError) as err:
            demo(demo_dir, 'test_seen')
        msg = str(err.value)
        assert '3 of 144 images' in msg
        assert all(p in msg for p in victims)
        # never dropped silently: without the check they are still listed
        assert len(demo(demo_dir, 'test_seen', check_images=False)) == 144
    finally:
        for p, data in zip(victims, backup):
            Path(p).write_bytes(data)
    with pytest.raises(FileNotFoundError, match="original paths"):
        real('AWA2', 'test_unseen', path_preset=None, check_images=True)


# ------------------------------------------------------------ table format
def test_table_round_trip(demo_dir, tmp_path):
    ann = load_xlsa17(
        str(demo_dir / 'att_splits.mat'),
        str(demo_dir / 'res101.mat'),
        attribute_key='original_att',
        path_preset='DEMO')
    files = save_table_annotation(ann, str(tmp_path))
    os.symlink(demo_dir / 'images', tmp_path / 'images')
    for key, split in (('att', 'trainval'), ('att', 'test_unseen'),
                       ('original_att', 'test_seen'), ('original_att',
                                                       'clean_val')):
        mat_ds = demo(demo_dir, split, attribute_key=key)
        tab_ds = ZSLDataset(
            data_root=str(tmp_path),
            data_format='table',
            img_prefix='images',
            split=split,
            attribute_key=key,
            serialize_data=False)
        assert labels_of(tab_ds).tolist() == labels_of(mat_ds).tolist()
        assert [p.split('images/')[1] for p in paths_of(tab_ds)] == \
            [p.split('images/')[1] for p in paths_of(mat_ds)]
        a, b = mat_ds.metainfo, tab_ds.metainfo
        assert a['classes'] == b['classes']
        np.testing.assert_array_equal(a['class_attributes'],
                                      b['class_attributes'])
        np.testing.assert_array_equal(a['seen_classes'], b['seen_classes'])
        np.testing.assert_array_equal(a['unseen_classes'], b['unseen_classes'])
    assert sorted(osp.basename(f) for f in files.values()) == [
        'attributes.csv', 'classes.csv', 'images.csv'
    ]


def _write(path, text):
    path.write_text(text)
    return str(path)


def _toy_table(tmp_path, images=None):
    _write(tmp_path / 'classes.csv',
           'class,split\ncat,seen\ndog,seen\n"fox, red",unseen\n')
    _write(tmp_path / 'attributes.csv',
           'class,furry,big\ndog,1,1\ncat,1,0\n"fox, red",0.5,0.5\n')
    if images is None:
        images = ''.join(f'cat/{i}.jpg,cat\ndog/{i}.jpg,dog\n'
                         for i in range(10))
        images += 'fox/0.jpg,"fox, red"\n'
    _write(tmp_path / 'images.csv', images)
    return dict(
        data_root=str(tmp_path),
        data_format='table',
        check_images=False,
        serialize_data=False)


def test_table_holdout_and_npy(tmp_path):
    kwargs = _toy_table(tmp_path)
    tv = ZSLDataset(split='trainval', **kwargs)
    ts = ZSLDataset(split='test_seen', **kwargs)
    tu = ZSLDataset(split='test_unseen', **kwargs)
    assert (len(tv), len(ts), len(tu)) == (16, 4, 1)
    assert sorted(labels_of(ts).tolist()) == [0, 0, 1, 1]
    assert tv.metainfo['classes'] == ('cat', 'dog', 'fox, red')
    assert tv.metainfo['attribute_names'] == ('furry', 'big')
    np.testing.assert_allclose(
        tv.metainfo['class_attributes'][1], [2**-0.5, 2**-0.5], rtol=1e-6)
    assert paths_of(ZSLDataset(split='test_seen', **kwargs)) == paths_of(ts)
    other = ZSLDataset(split='test_seen', holdout_seed=3, **kwargs)
    assert paths_of(other) != paths_of(ts)

    np.save(tmp_path / 'att.npy', np.array([[1., 0], [1, 1], [.5, .5]]))
    _write(tmp_path / 'attr_names.txt', 'furry\nbig\n')
    ds = ZSLDataset(
        attribute_file='att.npy',
        attribute_names_file='attr_names.txt',
        attribute_key='original_att',
        **kwargs)
    np.testing.assert_array_equal(ds.metainfo['class_attributes'][1], [1, 1])
    assert ds.metainfo['attribute_names'] == ('furry', 'big')


def test_table_errors(tmp_path):
    kwargs = _toy_table(tmp_path)
    np.save(tmp_path / 'bad.npy', np.ones((2, 2)))
    with pytest.raises(ZSLDataError, match=r'shape \(2, 2\).*3 classes'):
        ZSLDataset(attribute_file='bad.npy', **kwargs)
    _write(tmp_path / 'bad.csv', 'class,furry,big\ncat,1\ndog,1,1\n')
    with pytest.raises(ZSLDataError, match='1 attribute values but'):
        ZSLDataset(attribute_file='bad.csv', **kwargs)
    _write(tmp_path / 'bad.csv', 'class,furry,big\ncat,1,0\ndog,1,1\n')
    with pytest.raises(ZSLDataError, match=r"missing from the table \['fox"):
        ZSLDataset(attribute_file='bad.csv', **kwargs)
    _write(tmp_path / 'names.txt', 'furry\n')
    with pytest.raises(ZSLDataError, match='1 attribute names but'):
        ZSLDataset(attribute_names_file='names.txt', **kwargs)
    with pytest.raises(FileNotFoundError, match='nope.csv'):
        ZSLDataset(class_list_file='nope.csv', **kwargs)

    _write(tmp_path / 'im.csv', 'a.jpg,cat,trainval\nb.jpg,wolf,trainval\n')
    with pytest.raises(ZSLDataError, match="im.csv:2: class 'wolf'"):
        ZSLDataset(image_list_file='im.csv', **kwargs)
    _write(tmp_path / 'im.csv', 'a.jpg,cat,trainval\nb.jpg,dog\n')
    with pytest.raises(ZSLDataError, match='1 of 2 rows have a split'):
        ZSLDataset(image_list_file='im.csv', **kwargs)
    _write(
        tmp_path / 'im.csv',
        'a.jpg,cat,trainval\nb.jpg,dog,trainval\nc.jpg,"fox, red",'
        'trainval\n')
    with pytest.raises(ZSLDataError, match='1 trainval image.*unseen'):
        ZSLDataset(image_list_file='im.csv', **kwargs)
    _write(tmp_path / 'im.csv', 'a.jpg,cat,trainval\nb.jpg,dog,test_seen\n')
    with pytest.raises(ZSLDataError, match=r"no trainval image.*\['dog'\]"):
        ZSLDataset(image_list_file='im.csv', **kwargs)
    with pytest.raises(ValueError, match="apply to data_format='xlsa17'"):
        ZSLDataset(path_preset='AWA2', **kwargs)


def test_table_annotation_function(tmp_path):
    _toy_table(tmp_path)
    ann = load_table_annotation(
        str(tmp_path / 'classes.csv'),
        str(tmp_path / 'attributes.csv'),
        str(tmp_path / 'images.csv'),
        holdout_ratio=0.5)
    assert len(ann.splits['test_seen']) == 10
    assert ann.unseen_classes.tolist() == [2]
