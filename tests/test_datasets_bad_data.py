"""Bad zero-shot data is refused at load, with the file, line, class and
attribute named; a class without test images stays in the label space."""
import os.path as osp
import shutil
import warnings

import numpy as np
import pytest
import scipy.io as sio

from zeromamba_mm.datasets import (ZSLDataError, ZSLDataset,
                                   load_class_semantics, remap_image_paths)


def _cell(strings):
    cell = np.empty((len(strings), 1), dtype=object)
    cell[:, 0] = strings
    return cell


def _loc(*one_based):
    return np.array(one_based, dtype=np.uint16).reshape(-1, 1)


def _mats(tmp_path, files=None, **override):
    """4 classes (a, b seen; c, d unseen), 3 attributes, 6 images; class d
    has no image at all."""
    att = np.array([[1., 0, 0, 1], [0, 1, 0, 1], [1, 1, 1, 0]])  # (A, C)
    splits = dict(
        att=att,
        original_att=att,
        allclasses_names=_cell(['a', 'b', 'c', 'd']),
        trainval_loc=_loc(1, 3),
        test_seen_loc=_loc(2, 4),
        test_unseen_loc=_loc(5, 6))
    files = files or [f'/BS/x/img{i}.jpg' for i in range(6)]
    images = dict(
        image_files=_cell(files),
        labels=np.array([[1], [1], [2], [2], [3], [3.]]))
    for key, value in override.items():
        in_splits = key in splits or key == 'attribute_names'
        (splits if in_splits else images)[key] = value
    sio.savemat(str(tmp_path / 'att_splits.mat'), splits)
    sio.savemat(str(tmp_path / 'res101.mat'), images)
    return dict(
        data_root=str(tmp_path),
        check_images=False,
        serialize_data=False,
        path_rule=dict(old_prefix='/BS/x/'))


# ------------------------------------------------------------------ xlsa17
@pytest.mark.parametrize('key', ['att', 'original_att'])
def test_nan_attributes_in_mat_are_refused(tmp_path, key):
    att = np.array([[1., 0, 0, 1], [0, 1, 0, 1], [1, 1, 1, 0]])
    att[2, 1] = np.nan  # attribute #2 of class 'b'
    kwargs = _mats(tmp_path, **{key: att})
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(attribute_key=key, **kwargs)
    msg = str(err.value)
    assert 'att_splits.mat' in msg and repr(key) in msg
    assert "class 'b'" in msg and "attribute '#2'" in msg
    assert '1 NaN/inf value(s)' in msg
    att[2, 1] = np.inf
    names = _cell(['furry', 'big', 'striped'])
    kwargs = _mats(tmp_path, attribute_names=names, **{key: att})
    with pytest.raises(ZSLDataError, match="class 'b'.*attribute 'striped'"):
        ZSLDataset(attribute_key=key, **kwargs)


def test_unseen_class_without_images_stays(tmp_path):
    kwargs = _mats(tmp_path)
    with pytest.warns(UserWarning, match=r"1 class\(es\) .* \['d'\]"):
        test = ZSLDataset(split='test', **kwargs)
    meta = test.metainfo
    assert meta['seen_classes'].tolist() == [0, 1]
    assert meta['unseen_classes'].tolist() == [2, 3]  # from the class list
    assert meta['classes_without_samples'].tolist() == [3]
    with pytest.warns(UserWarning):
        unseen = ZSLDataset(split='test_unseen', **kwargs)
    assert unseen.metainfo['classes_without_samples'].tolist() == [3]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        seen = ZSLDataset(split='test_seen', **kwargs)
        train = ZSLDataset(split='trainval', **kwargs)
    assert seen.metainfo['classes_without_samples'].size == 0
    assert train.metainfo['unseen_classes'].tolist() == [2, 3]


def test_mat_leaks_duplicates_and_names(tmp_path):
    # Two indices of one file in trainval and test_seen: a leak.
    files = [f'/BS/x/img{i}.jpg' for i in range(6)]
    files[1] = files[0]
    with pytest.raises(
            ZSLDataError,
            match="trainval_loc and test_seen_loc"
            r".*first: \['/BS/x/img0.jpg'\]"):
        ZSLDataset(**_mats(tmp_path, files=files))
    # Repeats inside one split are refused, naming the 1-based index, its
    # file and its (1-based) entries in the key.
    kwargs = _mats(tmp_path, test_seen_loc=_loc(2, 4, 4))
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(split='trainval', **kwargs)
    msg = str(err.value)
    assert "att_splits.mat: duplicate image indices in 'test_seen_loc': " \
        "index 4 ('/BS/x/img3.jpg') (entry 2, entry 3)" in msg
    assert "test_seen_loc = unique(test_seen_loc, 'stable')" in msg
    # The same file at two indices of one split is the same image.
    files = [f'/BS/x/img{i}.jpg' for i in range(6)]
    files[3] = files[1]
    with pytest.raises(
            ZSLDataError,
            match=r"duplicate image files \(at different indices\) in "
            r"'test_seen_loc': '/BS/x/img1.jpg' \(entry 1: index 2, entry 2: "
            r'index 4\)'):
        ZSLDataset(**_mats(tmp_path, files=files))
    kwargs = _mats(tmp_path, allclasses_names=_cell(['a', 'b', 'a', 'd']))
    with pytest.raises(
            ZSLDataError,
            match=r"duplicate names in 'allclasses_names': 'a' "
            r'\(entry 1, entry 3\)'):
        ZSLDataset(**kwargs)
    kwargs = _mats(tmp_path, attribute_names=_cell(['x', 'y', 'x']))
    with pytest.raises(
            ZSLDataError,
            match=r"duplicate names in 'attribute_names': 'x' "
            r'\(entry 1, entry 3\)'):
        ZSLDataset(**kwargs)


def test_real_split_file_with_a_repeated_image(tmp_path):
    """The published SUN files with one trainval image listed twice: the
    dataset and the inference class reader both refuse it."""
    real = osp.join(osp.dirname(__file__), 'data', 'xlsa17', 'SUN')
    shutil.copy(osp.join(real, 'res101.mat'), tmp_path / 'res101.mat')
    splits = sio.loadmat(osp.join(real, 'att_splits.mat'))
    splits = {k: v for k, v in splits.items() if not k.startswith('__')}
    trainval = splits['trainval_loc']
    repeated = int(trainval[4, 0])
    splits['trainval_loc'] = np.concatenate([trainval, trainval[4:5]])
    sio.savemat(str(tmp_path / 'att_splits.mat'), splits)
    entries = f'(entry 5, entry {len(trainval) + 1})'
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(
            data_root=str(tmp_path),
            split='test',
            path_preset='SUN',
            check_images=False)
    msg = str(err.value)
    assert str(tmp_path / 'att_splits.mat') in msg
    assert f"in 'trainval_loc': index {repeated} (" in msg and entries in msg
    with pytest.raises(ZSLDataError, match=f"'trainval_loc'.*{entries}"):
        load_class_semantics(str(tmp_path / 'att_splits.mat'))


def test_name_files_with_duplicates(tmp_path):
    kwargs = _mats(tmp_path)
    (tmp_path / 'names.txt').write_text('# classes\nant\nbee\n\nant\nfly\n')
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(class_names_file='names.txt', **kwargs)
    assert str(err.value).startswith(
        f"{tmp_path / 'names.txt'}: duplicate names: 'ant' (line 2, line 5)")
    (tmp_path / 'attrs.txt').write_text('big\nred\nbig\n')
    with pytest.raises(ZSLDataError, match=r"'big' \(line 1, line 3\)"):
        ZSLDataset(attribute_names_file='attrs.txt', **kwargs)
    with pytest.raises(
            ZSLDataError, match=r"metainfo: duplicate class names in "
            r"'classes': 'a' \(entry 0, entry 1\)"):
        ZSLDataset(metainfo=dict(classes=['a', 'a', 'b', 'c']), **kwargs)
    # Inference reads class lists with the same check.
    att = np.eye(4)
    with pytest.raises(
            ZSLDataError,
            match=r"names.txt: duplicate names: 'ant' \(line 2, line 5\)"):
        load_class_semantics(att, class_names=str(tmp_path / 'names.txt'))
    with pytest.raises(
            ZSLDataError,
            match=r"class_names: duplicate class names: 'x' \(entry 0, "
            r'entry 3\)'):
        load_class_semantics(att, class_names=['x', 'y', 'z', 'x'])
    table = tmp_path / 'classes.csv'
    table.write_text('class,a,b\nx,1,0\ny,0,1\nx,1,1\n')
    with pytest.raises(
            ZSLDataError,
            match=r"classes.csv: duplicate class names: 'x' \(line 2, "
            r'line 4\)'):
        load_class_semantics(str(table))


def test_path_preset_conflict_names_the_base_config():
    with pytest.raises(ValueError) as err:
        remap_image_paths(['/BS/demo/a.jpg'],
                          path_preset='DEMO',
                          path_rule=dict(keep_last=1))
    msg = str(err.value)
    assert "path_preset='DEMO'" in msg and 'base config' in msg
    assert 'path_preset=None' in msg


# ------------------------------------------------------------------- tables
def _tables(tmp_path, images, classes=None, attributes=None):
    (tmp_path / 'classes.csv').write_bytes(
        (classes or 'class,split\ncat,seen\ndog,seen\nfox,unseen\n').encode())
    (tmp_path / 'attributes.csv').write_bytes(
        (attributes or 'class,furry,big\n'
         'cat,1,0\ndog,1,1\nfox,0.5,0.5\n').encode())
    (tmp_path / 'images.csv').write_bytes(images.encode())
    return dict(
        data_root=str(tmp_path),
        data_format='table',
        check_images=False,
        serialize_data=False)


GOOD = ('cat/1.jpg,cat,trainval\ncat/2.jpg,cat,test_seen\n'
        'dog/1.jpg,dog,trainval\ndog/2.jpg,dog,test_seen\n'
        'fox/1.jpg,fox,test_unseen\n')


@pytest.mark.parametrize('value', ['nan', 'inf', '-inf', 'NaN'])
def test_nan_in_attribute_csv(tmp_path, value):
    kwargs = _tables(
        tmp_path,
        GOOD,
        attributes=f'class,furry,big\ncat,1,0\ndog,1,{value}\nfox,1,1\n')
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(**kwargs)
    msg = str(err.value)
    assert 'attributes.csv:3' in msg and "class 'dog'" in msg
    assert "['big']" in msg


def test_nan_in_attribute_npy(tmp_path):
    kwargs = _tables(tmp_path, GOOD)
    matrix = np.ones((3, 2))
    matrix[2, 0] = np.nan
    np.save(tmp_path / 'att.npy', matrix)
    with pytest.raises(
            ZSLDataError,
            match=r"att.npy: .*class 'fox' \(row 2\), attribute"):
        ZSLDataset(attribute_file='att.npy', **kwargs)


def test_table_leak_and_duplicates(tmp_path):
    leak = GOOD + 'cat/1.jpg,cat,test_seen\n'
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(**_tables(tmp_path, leak))
    msg = str(err.value)
    assert "images.csv:6: image 'cat/1.jpg' is in both trainval and " \
        'test_seen (a train/test leak); first listed at line 1' in msg
    # The same file spelled differently is still the same image.
    with pytest.raises(ZSLDataError, match='train/test leak'):
        ZSLDataset(**_tables(tmp_path, GOOD + './cat/1.jpg,cat,test_seen\n'))
    twice = GOOD + 'dog/2.jpg,dog,test_seen\n'
    with pytest.raises(
            ZSLDataError,
            match=r"images.csv: duplicate images in 'split test_seen': "
            r"'dog/2.jpg' \(line 4, line 6\)"):
        ZSLDataset(**_tables(tmp_path, twice))
    with pytest.raises(
            ZSLDataError,
            match=r"classes.csv: duplicate class names: 'cat' \(line 1, "
            r'line 3\)'):
        ZSLDataset(**_tables(
            tmp_path, GOOD, classes='cat,seen\ndog,seen\ncat,unseen\n'))
    with pytest.raises(
            ZSLDataError,
            match=r"duplicate attribute names in 'header': 'big' \(column 2, "
            r'column 3\)'):
        ZSLDataset(**_tables(
            tmp_path,
            GOOD,
            attributes='class,big,big\ncat,1,0\ndog,1,1\nfox,1,1\n'))
    with pytest.raises(
            ZSLDataError,
            match=r"attributes.csv: duplicate class names: 'dog' \(line 3, "
            r'line 5\)'):
        ZSLDataset(**_tables(
            tmp_path,
            GOOD,
            attributes='class,a,b\ncat,1,0\ndog,1,1\nfox,1,1\ndog,0,1\n'))


def test_unseen_table_class_without_images(tmp_path):
    kwargs = _tables(
        tmp_path,
        GOOD,
        classes='class,split\ncat,seen\ndog,seen\nfox,unseen\nowl,unseen\n',
        attributes='class,furry,big\ncat,1,0\ndog,1,1\nfox,1,1\nowl,0,1\n')
    with pytest.warns(UserWarning, match=r"\['owl'\]"):
        ds = ZSLDataset(split='test', **kwargs)
    assert ds.metainfo['unseen_classes'].tolist() == [2, 3]
    assert ds.metainfo['classes_without_samples'].tolist() == [3]
    assert len(ds.metainfo['classes']) == 4


def test_csv_encodings(tmp_path):
    bom = '\ufeffclass,split\ncat,seen\ndog,seen\nfox,unseen\n'
    ds = ZSLDataset(split='test', **_tables(tmp_path, GOOD, classes=bom))
    assert ds.metainfo['classes'] == ('cat', 'dog', 'fox')
    kwargs = _tables(tmp_path, GOOD)
    (tmp_path / 'images.csv').write_bytes(GOOD.encode() +
                                          b'caf\xe9/1.jpg,cat,trainval\n')
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(**kwargs)
    msg = str(err.value)
    assert 'images.csv:6' in msg and "b'\\xe9' is not UTF-8" in msg


@pytest.mark.parametrize('path', [
    '/etc/cat.jpg', '../cat.jpg', 'cat/../../x.jpg', 'C:\\cat.jpg',
    's3://bucket/cat.jpg'
])
def test_paths_outside_the_prefix(tmp_path, path):
    images = GOOD + f'{path},cat,trainval\n'
    with pytest.raises(ZSLDataError) as err:
        ZSLDataset(**_tables(tmp_path, images))
    assert 'images.csv:6' in str(err.value) and repr(path) in str(err.value)
    assert 'allow_paths_outside_prefix=True' in str(err.value)
    ds = ZSLDataset(
        allow_paths_outside_prefix=True, **_tables(tmp_path, images))
    assert len(ds) == 3


def test_inner_dots_stay_inside(tmp_path):
    images = GOOD + 'cat/x/../3.jpg,cat,trainval\n'
    ds = ZSLDataset(img_prefix='imgs', **_tables(tmp_path, images))
    assert ds.data_list[-1]['img_path'] == str(tmp_path /
                                               'imgs/cat/x/../3.jpg')
