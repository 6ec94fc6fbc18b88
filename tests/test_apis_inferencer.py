"""ZSLInferencer, load_class_semantics, read_checkpoint and tools/infer.py."""
import json
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import scipy.io as sio
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import HistoryBuffer

import zeromamba_mm  # noqa: F401
from zeromamba_mm.apis import (ZSLInferencer, load_class_semantics,
                               read_checkpoint)
from zeromamba_mm.models.utils import CheckpointMismatchError
from zeromamba_mm.registry import MODELS

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'tools'))
import infer as infer_tool  # noqa: E402

NUM_CLASSES, NUM_ATTRIBUTES, SIZE = 6, 5, 32
NAMES = ['zebra', 'horse', 'tiger', 'lion', 'okapi', 'panda']
SEEN = [0, 1, 2, 3]
ATTRIBUTE_NAMES = ['stripes', 'mane', 'claws', 'hooves', 'black']

CONFIG = f"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)
model = dict(
    type='zeromamba_mm.ZeroShotClassifier',
    backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8,
                  out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='zeromamba_mm.LinearAttributeHead', in_channels=64,
              num_attributes={NUM_ATTRIBUTES}))
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({SIZE}, {SIZE})),
    dict(type='PackInputs'),
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
"""

CALLS = []


def _record_call(tag):  # must never run when a checkpoint is read
    CALLS.append(tag)


class _Trap:

    def __reduce__(self):
        return _record_call, ('unpickled', )


def build_model(config):
    cfg = Config.fromfile(config)
    model_cfg = cfg.model.copy()
    model_cfg['data_preprocessor'] = cfg.data_preprocessor
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    # Larger head weights than the N(0, 0.01) init: well-separated scores.
    torch.nn.init.normal_(model.head.fc.weight, std=0.5)
    return model.eval()


def class_attributes():
    rng = np.random.default_rng(0)
    return (rng.random(
        (NUM_CLASSES, NUM_ATTRIBUTES)) + 0.05).astype(np.float32)


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp('infer')
    config = str(root / 'tiny.py')
    with open(config, 'w') as f:
        f.write(CONFIG)
    model = build_model(config)
    ckpt = str(root / 'tiny.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)

    rng = np.random.default_rng(1)
    images = []
    for i in range(3):
        img = rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8)
        path = str(root / f'img{i}.png')
        cv2.imwrite(path, img)
        images.append(path)

    att = class_attributes()
    npy = str(root / 'att.npy')
    np.save(npy, att)
    names_file = str(root / 'names.txt')
    with open(names_file, 'w') as f:
        f.write('\n'.join(NAMES) + '\n')
    csv_file = str(root / 'att.csv')
    with open(csv_file, 'w') as f:
        f.write('class,' + ','.join(ATTRIBUTE_NAMES) + '\n')
        for name, row in zip(NAMES, att):
            f.write(name + ',' + ','.join(repr(float(v)) for v in row) + '\n')

    # An xlsa17 folder: att_splits.mat (A, C) + res101.mat (labels).
    xlsa = root / 'xlsa17'
    xlsa.mkdir()
    labels = np.repeat(np.arange(1, NUM_CLASSES + 1), 2)  # 1-based
    trainval = np.flatnonzero(np.isin(labels - 1, SEEN)) + 1
    sio.savemat(
        str(xlsa / 'att_splits.mat'),
        dict(
            att=att.T.astype(np.float64),
            allclasses_names=np.array([[n] for n in NAMES], dtype=object),
            trainval_loc=trainval.astype(np.uint16)[:, None]))
    sio.savemat(
        str(xlsa / 'res101.mat'),
        dict(labels=labels.astype(np.float64)[:, None]))
    return dict(
        root=root,
        config=config,
        ckpt=ckpt,
        model=model,
        images=images,
        att=att,
        npy=npy,
        names_file=names_file,
        csv=csv_file,
        mat=str(xlsa / 'att_splits.mat'))


@pytest.fixture
def inferencer(work):
    return ZSLInferencer(
        work['config'],
        work['ckpt'],
        class_attributes=work['npy'],
        class_names=work['names_file'],
        seen_classes=SEEN,
        device='cpu')


def reference_scores(model, path, attributes):
    """The model's own predict on an independently prepared image."""
    img = cv2.imread(path)  # BGR, as mmcv
    img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    inputs = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    model.set_class_semantics(F.normalize(torch.as_tensor(attributes), dim=1))
    with torch.no_grad():
        data = model.data_preprocessor(dict(inputs=[inputs]), False)
        sample = model(data['inputs'], mode='predict')[0]
        pred_attr = model.head(model.extract_feat(data['inputs']))[0]
    return sample.pred_score.numpy(), pred_attr


# ---------------------------------------------------------------- scoring --
def test_scores_equal_model_predict(work, inferencer):
    results = inferencer(work['images'], topk=3, batch_size=2)
    assert len(results) == 3
    for path, result in zip(work['images'], results):
        expected, _ = reference_scores(work['model'], path, work['att'])
        np.testing.assert_allclose(result['scores'], expected, atol=1e-5)
        assert result['scores'].shape == (NUM_CLASSES, )
        assert result['pred_label'] == int(np.argmax(expected))
        assert result['pred_class'] == NAMES[result['pred_label']]


def test_topk_is_sorted_and_named(work, inferencer):
    result = inferencer(work['images'][0], topk=4)[0]
    order = np.argsort(-result['scores'])[:4]
    assert result['pred_labels'] == order.tolist()
    assert result['pred_classes'] == [NAMES[i] for i in order]
    np.testing.assert_allclose(
        result['pred_scores'], result['scores'][order], rtol=1e-6)
    assert result['pred_scores'] == sorted(result['pred_scores'], reverse=True)
    assert result['pred_label'] == result['pred_labels'][0]
    # More than C asked for: all C, still sorted.
    result = inferencer(work['images'][0], topk=50)[0]
    assert sorted(result['pred_labels']) == list(range(NUM_CLASSES))


def test_array_inputs_and_channel_order(work, inferencer):
    path = work['images'][1]
    bgr = cv2.imread(path)
    from_path = inferencer(path)[0]['scores']
    from_bgr = inferencer(bgr)[0]['scores']
    from_rgb = inferencer(bgr[..., ::-1].copy(), channel_order='rgb')[0]
    np.testing.assert_allclose(from_bgr, from_path, atol=1e-6)
    np.testing.assert_allclose(from_rgb['scores'], from_path, atol=1e-6)
    # Reading an RGB array as BGR really changes the input.
    wrong = inferencer(bgr[..., ::-1].copy())[0]['scores']
    assert not np.allclose(wrong, from_path, atol=1e-4)


def test_softmax_gamma_and_label_space(work, inferencer):
    path = work['images'][0]
    raw = inferencer(path)[0]['scores']
    soft = inferencer(path, score_space='softmax')[0]['scores']
    np.testing.assert_allclose(soft.sum(), 1.0, atol=1e-6)
    np.testing.assert_allclose(
        soft, torch.as_tensor(raw).softmax(0).numpy(), atol=1e-6)

    calibrated = inferencer(path, score_space='softmax', gamma=0.1)[0]
    expected = soft.copy()
    expected[SEEN] -= 0.1
    np.testing.assert_allclose(calibrated['scores'], expected, atol=1e-6)
    # A gamma above every raw score gap pushes the top-1 to an unseen class.
    huge = inferencer(path, gamma=1e3)[0]
    assert huge['pred_label'] in (4, 5)

    zsl = inferencer(path, topk=5, label_space='unseen')[0]
    assert sorted(zsl['pred_labels']) == [4, 5]  # only 2 unseen classes
    assert zsl['pred_label'] == 4 + int(np.argmax(raw[4:]))
    seen_only = inferencer(path, label_space='seen')[0]
    assert set(seen_only['pred_labels']) == set(SEEN)


def test_add_class_at_inference(work, inferencer):
    path = work['images'][2]
    before = inferencer(path)[0]
    _, pred_attr = reference_scores(work['model'], path, work['att'])
    # A class whose attributes point along the image's predicted Â scores
    # ||Â||, the maximum over unit vectors (Cauchy-Schwarz): it must win.
    inferencer.add_classes('unicorn', pred_attr.numpy())
    after = inferencer(path)[0]
    assert after['scores'].shape == (NUM_CLASSES + 1, )
    np.testing.assert_allclose(
        after['scores'][:NUM_CLASSES], before['scores'], atol=1e-6)
    assert after['pred_class'] == 'unicorn'
    assert after['pred_label'] == NUM_CLASSES
    np.testing.assert_allclose(
        after['pred_scores'][0], float(pred_attr.norm()), rtol=1e-5)
    # The added class is unseen: calibration leaves it alone.
    assert after['pred_label'] not in inferencer.seen_classes
    with pytest.raises(ValueError, match='already exist'):
        inferencer.add_classes('unicorn', pred_attr.numpy())
    with pytest.raises(ValueError, match='4 attributes.*5|5.*4'):
        inferencer.add_classes('bad', np.ones(4))


def test_full_matrix_with_new_classes(work):
    # Passing a larger matrix is the other way to add classes.
    extra = np.concatenate([work['att'], np.eye(NUM_ATTRIBUTES)[:2]])
    names = NAMES + ['new_a', 'new_b']
    inferencer = ZSLInferencer(
        work['config'],
        work['ckpt'],
        class_attributes=extra,
        class_names=names,
        device='cpu')
    result = inferencer(work['images'][0], topk=8)[0]
    assert result['scores'].shape == (8, )
    assert set(result['pred_classes']) == set(names)
    assert inferencer.seen_classes is None


# -------------------------------------------------------- class sources --
def test_npy_csv_and_mat_sources_agree(work):
    kwargs = dict(device='cpu')
    from_npy = ZSLInferencer(
        work['config'],
        work['ckpt'],
        class_attributes=work['npy'],
        class_names=NAMES,
        seen_classes=['zebra', 'horse', 'tiger', 'lion'],
        **kwargs)
    from_csv = ZSLInferencer(
        work['config'],
        work['ckpt'],
        class_attributes=work['csv'],
        seen_classes=SEEN,
        **kwargs)
    from_mat = ZSLInferencer(
        work['config'], work['ckpt'], class_attributes=work['mat'], **kwargs)
    assert from_csv.classes == from_mat.classes == tuple(NAMES)
    assert from_csv.attribute_names == tuple(ATTRIBUTE_NAMES)
    # Seen classes from res101.mat's trainval labels, beside att_splits.mat.
    np.testing.assert_array_equal(from_mat.seen_classes, SEEN)
    np.testing.assert_array_equal(from_npy.seen_classes, SEEN)
    path = work['images'][0]
    ref = from_npy(path, gamma=0.5, score_space='softmax')[0]['scores']
    for other in (from_csv, from_mat):
        got = other(path, gamma=0.5, score_space='softmax')[0]['scores']
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_load_class_semantics_normalises_and_checks(work, tmp_path):
    semantics = load_class_semantics(work['npy'])
    np.testing.assert_allclose(
        np.linalg.norm(semantics.attributes, axis=1), 1, atol=1e-6)
    assert semantics.class_names[0] == 'class_0'
    raw = load_class_semantics(work['att'], normalize=False)
    np.testing.assert_allclose(raw.attributes, work['att'])
    with pytest.raises(ValueError, match='3 class names.*6 classes'):
        load_class_semantics(work['npy'], class_names=['a', 'b', 'c'])
    with pytest.raises(ValueError, match='Duplicate'):
        load_class_semantics(work['npy'], class_names=['a'] * 6)
    with pytest.raises(ValueError, match='all zero'):
        load_class_semantics(np.zeros((2, 3)))
    with pytest.raises(ValueError, match='not one of the classes'):
        load_class_semantics(work['csv'], seen_classes=['dragon'])
    bad_csv = tmp_path / 'bad.csv'
    bad_csv.write_text('name,a,b\nx,1,2\n')
    with pytest.raises(ValueError, match='header'):
        load_class_semantics(str(bad_csv))
    bad_csv.write_text('class,a,b\nx,1\n')
    with pytest.raises(ValueError, match=r'bad.csv:2'):
        load_class_semantics(str(bad_csv))
    with pytest.raises(FileNotFoundError, match='nowhere.npy'):
        load_class_semantics(str(tmp_path / 'nowhere.npy'))
    with pytest.raises(ValueError, match=r"\.json"):
        bad = tmp_path / 'att.json'
        bad.write_text('{}')
        load_class_semantics(str(bad))


# ----------------------------------------------------------- checkpoints --
def test_runner_checkpoint_is_read_without_running_code(work, tmp_path):
    model = work['model']
    buffer = HistoryBuffer()
    buffer.update(1.0)
    ckpt = {
        'meta': {
            'epoch': 3,
            'seed': np.int64(0),
            'dataset_meta': {
                'classes':
                tuple(NAMES),
                'class_attributes':
                F.normalize(torch.as_tensor(work['att']), dim=1).numpy(),
                'seen_classes':
                np.asarray(SEEN),
                'unseen_classes':
                np.asarray([4, 5]),
                'attribute_names':
                tuple(ATTRIBUTE_NAMES),
            },
        },
        'state_dict': model.state_dict(),
        # Message hub and optimizer as MMEngine writes them: objects that
        # weights_only=True refuses (HistoryBuffer, bound methods).
        'message_hub': {
            'log_scalars': {
                'train/loss': buffer
            }
        },
        'trap': _Trap(),
    }
    path = str(tmp_path / 'epoch_3.pth')
    torch.save(ckpt, path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)

    CALLS.clear()
    state_dict, meta = read_checkpoint(path)
    assert CALLS == []  # the trap's reducer was never called
    assert set(state_dict) == set(model.state_dict())
    assert meta['dataset_meta']['classes'] == tuple(NAMES)

    # Without class_attributes, the checkpoint's training classes are used.
    inferencer = ZSLInferencer(work['config'], path, device='cpu')
    assert CALLS == []
    assert inferencer.classes == tuple(NAMES)
    np.testing.assert_array_equal(inferencer.seen_classes, SEEN)
    assert inferencer.attribute_names == tuple(ATTRIBUTE_NAMES)
    expected, _ = reference_scores(model, work['images'][0], work['att'])
    np.testing.assert_allclose(
        inferencer(work['images'][0])[0]['scores'], expected, atol=1e-5)
    # The trap is armed: a full unpickle would have run it.
    torch.load(path, weights_only=False)
    assert CALLS == ['unpickled']


def test_config_object_input(work):
    cfg = Config.fromfile(work['config'])
    inferencer = ZSLInferencer(
        cfg, work['ckpt'], class_attributes=work['att'], device='cpu')
    expected, _ = reference_scores(work['model'], work['images'][0],
                                   work['att'])
    np.testing.assert_allclose(
        inferencer(work['images'][0])[0]['scores'], expected, atol=1e-5)


def test_built_model_input(work):
    model = build_model(work['config'])
    inferencer = ZSLInferencer(
        model,
        class_attributes=work['att'],
        device='cpu',
        pipeline=[
            dict(type='Resize', scale=(SIZE, SIZE)),
            dict(type='PackInputs')
        ])
    expected, _ = reference_scores(model, work['images'][0], work['att'])
    np.testing.assert_allclose(
        inferencer(work['images'][0])[0]['scores'], expected, atol=1e-5)


# ---------------------------------------------------------------- errors --
def test_errors_name_the_problem(work, inferencer, tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        ZSLInferencer(
            work['config'],
            str(tmp_path / 'missing.pth'),
            class_attributes=work['att'])
    with pytest.raises(FileNotFoundError, match='nope.py'):
        ZSLInferencer(
            str(tmp_path / 'nope.py'),
            work['ckpt'],
            class_attributes=work['att'])
    with pytest.raises(ValueError, match='checkpoint'):
        ZSLInferencer(work['config'], class_attributes=work['att'])
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='garbage.pth.*corrupt'):
        ZSLInferencer(
            work['config'], str(garbage), class_attributes=work['att'])
    with pytest.raises(
            ValueError, match='no class_attributes|give '
            'class_attributes'):
        ZSLInferencer(work['config'], work['ckpt'])

    # Attribute dimension: both numbers are stated.
    with pytest.raises(ValueError, match='4 attributes.*num_attributes=5'):
        ZSLInferencer(
            work['config'], work['ckpt'], class_attributes=np.ones((6, 4)))
    with pytest.raises(ValueError, match='2 class names.*6 classes'):
        ZSLInferencer(
            work['config'],
            work['ckpt'],
            class_attributes=work['att'],
            class_names=['a', 'b'])

    # Weights of another architecture.
    other = dict(build_model(work['config']).state_dict())
    other['head.fc.weight'] = torch.zeros(7, 64)
    other_path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': other}, other_path)
    with pytest.raises(CheckpointMismatchError, match='head.fc.weight'):
        ZSLInferencer(work['config'], other_path, class_attributes=work['att'])

    with pytest.raises(FileNotFoundError, match='absent.jpg'):
        inferencer([work['images'][0], str(tmp_path / 'absent.jpg')])
    corrupt = tmp_path / 'corrupt.jpg'
    corrupt.write_bytes(b'\xff\xd8 this is no jpeg')
    with pytest.raises(ValueError, match='corrupt.jpg'):
        inferencer(str(corrupt))
    with pytest.raises(ValueError, match='uint8'):
        inferencer(np.zeros((8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match='topk'):
        inferencer(work['images'][0], topk=0)
    with pytest.raises(ValueError, match='score_space'):
        inferencer(work['images'][0], score_space='logit')

    no_seen = ZSLInferencer(
        work['config'],
        work['ckpt'],
        class_attributes=work['att'],
        device='cpu')
    with pytest.raises(ValueError, match='seen classes'):
        no_seen(work['images'][0], gamma=0.3)


# ------------------------------------------------------------------- CLI --
def test_cli_prints_table_and_refuses_overwrite(work, capsys, tmp_path):
    out = str(tmp_path / 'sub' / 'results.json')
    argv = [
        work['config'], work['ckpt'], *work['images'][:2],
        '--class-attributes', work['mat'], '--topk', '3', '--device', 'cpu',
        '--score-space', 'softmax', '--gamma', '0.2', '--out', out
    ]
    assert infer_tool.main(argv) == 0
    printed = capsys.readouterr().out
    with open(out) as f:
        payload = json.load(f)
    assert payload['classes'] == NAMES
    assert len(payload['results']) == 2
    first = payload['results'][0]
    assert first['image'] == work['images'][0]
    assert len(first['pred_classes']) == 3 and len(first['scores']) == 6
    for name in first['pred_classes']:
        assert name in printed
    assert 'rank' in printed and 'gamma=0.2' in printed

    before = open(out).read()
    assert infer_tool.main(argv) == 1
    assert 'exists' in capsys.readouterr().err
    assert open(out).read() == before

    argv = [
        work['config'], work['ckpt'],
        str(tmp_path / 'none.jpg'), '--class-attributes', work['npy']
    ]
    assert infer_tool.main(argv) == 1
    assert 'none.jpg' in capsys.readouterr().err
