"""tools/check_data.py: exit 0 on good data; on each broken variant a
non-zero exit and a message naming the file and the key to fix."""
import importlib.util
import os.path as osp
import shutil
import sys

import cv2
import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The prefix the image list stores (as the authors' /BS/... paths).
OLD_PREFIX = '/lab/old/photos/'


def _savemat(path, data):
    import scipy.io as sio
    sio.savemat(path, data, format='5')


def _cell(strings):
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


def make_own_dataset(root: str,
                     num_classes: int = 10,
                     num_unseen: int = 3,
                     num_attributes: int = 16,
                     images_per_class: int = 6,
                     image_size: int = 16,
                     seed: int = 0) -> dict:
    """A small xlsa17-layout dataset of one's own: 16 binary attributes,
    its own path prefix, images under ``photos/<class>/``.

    Returns:
        dict: ``num_test`` (test_seen + test_unseen images) and the split
        sizes.
    """
    rng = np.random.default_rng(seed)
    codes = set()
    while len(codes) < num_classes:
        bits = tuple(rng.integers(0, 2, num_attributes).tolist())
        if 3 <= sum(bits) <= num_attributes - 3:
            codes.add(bits)
    original = np.array(sorted(codes), dtype=np.float64)  # (C, A)
    att = original / np.linalg.norm(original, axis=1, keepdims=True)
    names = [f'species_{c:02d}' for c in range(num_classes)]
    unseen = set(range(num_classes - num_unseen, num_classes))
    files, labels, split = [], [], []
    for c, name in enumerate(names):
        folder = osp.join(root, 'photos', name)
        shutil.os.makedirs(folder, exist_ok=True)
        colour = (original[c, :3] * 200 + 30).tolist()
        for i in range(images_per_class):
            image = np.full((image_size, image_size, 3), colour, np.uint8)
            image[::2, :, :] = (original[c, 3:6] * 255).astype(np.uint8)
            cv2.imwrite(osp.join(folder, f'{i}.jpg'), image)
            files.append(f'{OLD_PREFIX}{name}/{i}.jpg')
            labels.append(c)
            if c in unseen:
                split.append('test_unseen')
            else:
                split.append('trainval' if i < images_per_class *
                             2 // 3 else 'test_seen')
    split = np.array(split)
    locs = {
        f'{s}_loc':
        (np.flatnonzero(split == s) + 1).astype(np.uint16).reshape(-1, 1)
        for s in ('trainval', 'test_seen', 'test_unseen')
    }
    _savemat(
        osp.join(root, 'att_splits.mat'),
        dict(att=att.T, original_att=original.T,
             allclasses_names=_cell(names), **locs))
    _savemat(
        osp.join(root, 'res101.mat'),
        dict(image_files=_cell(files),
             labels=(np.array(labels) + 1.0).reshape(-1, 1)))
    np.save(osp.join(root, 'attribute_w2v.npy'),
            rng.standard_normal((num_attributes, 300)))
    return dict(num_test=int((split != 'trainval').sum()),
                **{k: len(v) for k, v in locs.items()})


def own_dataset_cfg(root: str) -> dict:
    return dict(
        type='zeromamba_mm.ZSLDataset',
        data_root=root,
        img_prefix='photos',
        path_preset=None,
        path_rule=dict(old_prefix=OLD_PREFIX, new_prefix=''))


def write_config(path, root, train='trainval', val='test', **head):
    dataset = own_dataset_cfg(root)
    head = dict(
        dict(num_attributes=16,
             word_vectors=osp.join(root, 'attribute_w2v.npy')), **head)
    text = (f'dataset = {dataset!r}\n'
            'train_dataloader = dict(dataset=dict(dataset, '
            f'split={train!r}))\n'
            f'val_dataloader = dict(dataset=dict(dataset, split={val!r}))\n'
            "test_dataloader = dict(dataset=dict(dataset, split='test'))\n"
            f'model = dict(head={head!r})\n'
            'data_preprocessor = dict(num_classes=10)\n')
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'check_data', osp.join(REPO, 'tools', 'check_data.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def tool():
    return _load_tool()


@pytest.fixture(scope='module')
def good_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('own_good'))
    make_own_dataset(root)
    return root


def run_check(tool, capsys, monkeypatch, *argv):
    monkeypatch.setattr(sys, 'argv', ['check_data.py', *map(str, argv)])
    status = tool.main()
    return status, capsys.readouterr().out


@pytest.fixture
def broken(tmp_path, good_root):
    root = str(tmp_path / 'data')
    shutil.copytree(good_root, root)
    return root


def test_clean_protocol_prints_the_users_split_first(tool, capsys,
                                                     monkeypatch, good_root,
                                                     tmp_path):
    """The clean pseudo-split (seen classes held out as unseen) is a
    separate, labelled line after the user's own seen/unseen split."""
    config = write_config(
        tmp_path / 'cfg.py', good_root, train='clean_train', val='clean_val')
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 0, out
    lines = out.splitlines()
    users = [i for i, line in enumerate(lines) if 'classes: 10' in line]
    assert len(users) == 1
    assert '(7 seen, 3 unseen; your split: trainval/test_seen vs ' \
        'test_unseen)' in lines[users[0]]
    clean = [i for i, line in enumerate(lines) if 'clean validation' in line]
    assert len(clean) == 1 and clean[0] > users[0]
    assert 'clean validation (clean_train/clean_val, inside the 7 seen ' \
        'classes; clean_unseen_ratio=0.2, clean_val_ratio=0.2, ' \
        'clean_seed=0): 6 seen, 1 pseudo-unseen: ' in lines[clean[0]]
    # Counts per split: the user's splits first, then the clean ones.
    order = [
        next(i for i, line in enumerate(lines) if line.strip().startswith(
            f'{split}: ')) for split in ('trainval', 'test_seen',
                                         'test_unseen', 'clean_train',
                                         'clean_val')
    ]
    assert order == sorted(order) and order[0] > users[0]


def test_good_data_passes(tool, capsys, monkeypatch, good_root, tmp_path):
    config = write_config(tmp_path / 'cfg.py', good_root)
    status, out = run_check(tool, capsys, monkeypatch, config, '--full')
    assert status == 0, out
    assert 'classes: 10 (7 seen, 3 unseen; your split: trainval/test_seen ' \
        'vs test_unseen); unseen: species_07, species_08, species_09' in out
    assert 'clean validation' not in out
    assert 'attributes: 10 classes x 16 attributes' in out
    assert 'trainval: 28 images of 7 classes (per class 4-4)' in out
    assert 'test_unseen: 18 images of 3 classes' in out
    assert f'path rule: {OLD_PREFIX}species_00/0.jpg -> ' \
           f'{good_root}/photos/species_00/0.jpg' in out
    assert 'images: 60 files checked (full), 0 bad' in out
    assert '0 error(s)' in out


@pytest.mark.parametrize('damage, expected', [
    ('missing', 'photos/species_01/2.jpg: missing'),
    ('empty', 'photos/species_01/2.jpg: empty file (0 bytes)'),
    ('garbage', 'photos/species_01/2.jpg: not an image'),
])
def test_bad_images_are_named(tool, capsys, monkeypatch, broken, tmp_path,
                              damage, expected):
    image = osp.join(broken, 'photos', 'species_01', '2.jpg')
    if damage == 'missing':
        shutil.os.remove(image)
    else:
        with open(image, 'wb') as f:
            f.write(b'' if damage == 'empty' else b'not a jpeg at all')
    config = write_config(tmp_path / 'cfg.py', broken)
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 1
    assert expected in out


def _edit_mat(path, **changes):
    import scipy.io as sio
    data = {k: v for k, v in sio.loadmat(path).items()
            if not k.startswith('__')}
    for key, edit in changes.items():
        data[key] = edit(data[key])
    _savemat(path, data)


def _nan(att):
    att = att.astype(np.float64)
    att[4, 2] = np.nan
    return att


def _zero_row(att):
    att = att.astype(np.float64)
    att[:, 5] = 0
    return att


def _duplicate(att):
    att = att.copy()
    att[:, 1] = att[:, 0]
    return att


@pytest.mark.parametrize('edit, expected', [
    (dict(att=_nan), ["att_splits.mat", "'att'"]),
    (dict(att=_zero_row), ['att_splits.mat', 'all zero']),
    (dict(att=_duplicate),
     ['att_splits.mat', 'identical attribute vectors',
      'species_00/species_01']),
])
def test_bad_attributes_are_named(tool, capsys, monkeypatch, broken, tmp_path,
                                  edit, expected):
    _edit_mat(osp.join(broken, 'att_splits.mat'), **edit)
    config = write_config(tmp_path / 'cfg.py', broken)
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 1, out
    errors = [line for line in out.splitlines() if 'ERROR' in line]
    assert any(all(e in line for e in expected) for line in errors), out


def test_overlapping_splits(tool, capsys, monkeypatch, broken, tmp_path):
    _edit_mat(osp.join(broken, 'att_splits.mat'),
              test_seen_loc=lambda loc: np.concatenate([loc, [[1]]]).astype(
                  np.uint16))
    config = write_config(tmp_path / 'cfg.py', broken)
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 1
    # Refused by the dataset at load (naming the file and the keys); the
    # checker reports it for the loaders and goes on.
    errors = [line for line in out.splitlines() if 'ERROR' in line]
    assert any('att_splits.mat' in line and 'share 1 images' in line
               and 'trainval_loc' in line for line in errors), out


def test_model_and_word_vectors_must_fit(tool, capsys, monkeypatch, broken,
                                         tmp_path):
    np.save(osp.join(broken, 'w2v_20.npy'), np.ones((20, 300)))
    config = write_config(
        tmp_path / 'cfg.py', broken, num_attributes=20,
        word_vectors=osp.join(broken, 'w2v_20.npy'))
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 1
    assert 'model.head.num_attributes=20 but the data has 16' in out
    assert f"model.head.word_vectors='{broken}/w2v_20.npy'" in out


def test_test_loader_left_on_other_data(tool, capsys, monkeypatch, good_root,
                                        tmp_path):
    """A config that changes train/val only still tests on the demo data:
    the checker says so, and still checks the data it can read."""
    config = tmp_path / 'cfg.py'
    config.write_text(
        f"_base_ = ['{REPO}/configs/zeromamba_demo.py']\n"
        f'dataset = {own_dataset_cfg(good_root)!r}\n'
        "train_dataloader = dict(dataset=dict(dataset, split='trainval'))\n"
        "val_dataloader = dict(dataset=dict(dataset, split='test'))\n")
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 1
    assert "test_dataloader.dataset reads other data than " \
           "train_dataloader.dataset" in out
    assert "data_root='data/zsl_demo'" in out
    assert 'model.head.num_attributes=20 but the data has 16' in out


def test_data_root_mode(tool, capsys, monkeypatch, broken):
    _edit_mat(osp.join(broken, 'att_splits.mat'), att=_nan)
    status, out = run_check(tool, capsys, monkeypatch, broken, '--img-prefix',
                            'photos', '--path-preset', 'auto')
    assert status == 1
    assert "'att'" in out and 'att_splits.mat' in out


@pytest.mark.parametrize('edit, expected', [
    (dict(trainval_loc=lambda loc: np.concatenate([loc, loc[2:3]]).astype(
        np.uint16)),
     ["duplicate image indices in 'trainval_loc': index 3", '(entry 3, '
      'entry 29)', "unique(trainval_loc, 'stable')"]),
    (dict(allclasses_names=lambda names: np.concatenate(
        [names[:1], names[:1], names[2:]])),
     ["duplicate names in 'allclasses_names': 'species_00' (entry 1, "
      'entry 2)']),
    (dict(test_unseen_loc=lambda loc: np.concatenate([loc, loc[:1]]).astype(
        np.uint16)),
     ["duplicate image indices in 'test_unseen_loc'", '(entry 1, entry ']),
])
def test_duplicates_are_errors(tool, capsys, monkeypatch, broken, tmp_path,
                               edit, expected):
    """A repeated image of a split or a repeated class name is refused by
    the dataset; the checker reports it as an error and exits 1."""
    _edit_mat(osp.join(broken, 'att_splits.mat'), **edit)
    config = write_config(tmp_path / 'cfg.py', broken)
    status, out = run_check(tool, capsys, monkeypatch, config)
    assert status == 1, out
    errors = [line for line in out.splitlines() if 'ERROR' in line]
    assert any('att_splits.mat' in line and all(e in line for e in expected)
               for line in errors), out


def test_cfg_options_as_in_train(tool, capsys, monkeypatch, good_root,
                                 tmp_path):
    """--cfg-options are parsed and checked as tools/train.py does: a typo
    or spaces inside a list element stop with the key named (exit 2), a
    quoted value keeps its spaces."""
    config = write_config(tmp_path / 'cfg.py', good_root)
    for option, expected in (
        ('train_dataloader.dataset.data_roott=/d', "Did you mean "
         "'data_root'?"),
        ('train_dataloader.dataset.indices=[a b,c]', 'a list element holds '
         'spaces'),
    ):
        with pytest.raises(SystemExit) as exit_:
            run_check(tool, capsys, monkeypatch, config, '--cfg-options',
                      option)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert expected in err and 'Traceback' not in err, err
    spaced = tmp_path / 'my data'
    shutil.copytree(good_root, spaced)
    status, out = run_check(tool, capsys, monkeypatch, config,
                            '--cfg-options',
                            f'train_dataloader.dataset.data_root={spaced}')
    assert f"'data_root': '{spaced}'" in out, out


def test_duplicate_class_names_file(tool, capsys, monkeypatch, good_root,
                                    tmp_path):
    names = tmp_path / 'names.txt'
    names.write_text(''.join(f'species_{i:02d}\n' for i in range(9)) +
                     'species_03\n')
    config = write_config(tmp_path / 'cfg.py', good_root)
    status, out = run_check(tool, capsys, monkeypatch, config,
                            '--cfg-options', *[
                                f'{loader}.dataset.class_names_file={names}'
                                for loader in ('train_dataloader',
                                               'val_dataloader',
                                               'test_dataloader')
                            ])
    assert status == 1, out
    assert f"ERROR: train_dataloader+val_dataloader+test_dataloader " \
        f"split='trainval': ZSLDataError: {names}: duplicate names: " \
        "'species_03' (line 4, line 10)" in out, out
