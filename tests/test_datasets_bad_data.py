"""Bad zero-shot data is refused at load, with the file, line, class and
attribute named; a class without test images stays in the label space."""
import warnings

import numpy as np
import pytest
import scipy.io as sio

from zeromamba_mm.datasets import ZSLDataError, ZSLDataset, remap_image_paths


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
    # Repeats inside one split: warned (a published file may have them).
    kwargs = _mats(tmp_path, test_seen_loc=_loc(2, 4, 4))
    with pytest.warns(UserWarning, match='test_seen_loc lists 1 image'):
        ds = ZSLDataset(split='test_seen', **kwargs)
    assert len(ds) == 3
    kwargs = _mats(tmp_path, allclasses_names=_cell(['a', 'b', 'a', 'd']))
    with pytest.raises(
            ZSLDataError,
            match=r"duplicate class names: 'a' \(entries 0 and 2"):
        ZSLDataset(**kwargs)


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
            ZSLDataError, match="images.csv:6: .* listed twice in test_seen"):
        ZSLDataset(**_tables(tmp_path, twice))
    with pytest.raises(ZSLDataError, match="duplicate class names: 'cat'"):
        ZSLDataset(**_tables(
            tmp_path, GOOD, classes='cat,seen\ndog,seen\ncat,unseen\n'))
    with pytest.raises(ZSLDataError, match="duplicate attribute names"):
        ZSLDataset(**_tables(
            tmp_path,
            GOOD,
            attributes='class,big,big\ncat,1,0\ndog,1,1\nfox,1,1\n'))


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
