"""ZSLInferencer, load_class_semantics and tools/infer.py."""
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
from zeromamba_mm.apis import ZSLInferencer
from zeromamba_mm.datasets import ZSLDataError, load_class_semantics
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
test_dataloader = dict(
    dataset=dict(type='zeromamba_mm.ZSLDataset', pipeline=test_pipeline))
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
        pretrained=work['ckpt'],
        class_attributes=work['npy'],
        class_names=work['names_file'],
        seen_classes=SEEN,
        device='cpu',
        # Raw scores at γ = 0: the model's own, compared with its predict.
        score_space='raw')


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
        np.testing.assert_allclose(result['pred_scores'], expected, atol=1e-5)
        assert result['pred_label'] == int(np.argmax(expected))
        assert result['pred_score'] == pytest.approx(float(expected.max()))
        assert result['pred_class'] == NAMES[result['pred_label']]


def test_topk_is_sorted_and_named(work, inferencer):
    result = inferencer(work['images'][0], topk=4)[0]
    order = np.argsort(-result['pred_scores'])[:4]
    assert result['topk_labels'] == order.tolist()
    assert result['topk_classes'] == [NAMES[i] for i in order]
    np.testing.assert_allclose(
        result['topk_scores'], result['pred_scores'][order], rtol=1e-6)
    assert result['pred_label'] == result['topk_labels'][0]
    # More than C asked for: all C, still sorted.
    result = inferencer(work['images'][0], topk=50)[0]
    assert sorted(result['topk_labels']) == list(range(NUM_CLASSES))


def test_array_inputs_and_channel_order(work, inferencer):
    path = work['images'][1]
    bgr = cv2.imread(path)
    from_path = inferencer(path)[0]['pred_scores']
    from_bgr = inferencer(bgr)[0]['pred_scores']
    from_rgb = inferencer(bgr[..., ::-1].copy(), channel_order='rgb')[0]
    np.testing.assert_allclose(from_bgr, from_path, atol=1e-6)
    np.testing.assert_allclose(from_rgb['pred_scores'], from_path, atol=1e-6)
    # Reading an RGB array as BGR really changes the input.
    wrong = inferencer(bgr[..., ::-1].copy())[0]['pred_scores']
    assert not np.allclose(wrong, from_path, atol=1e-4)


def test_softmax_gamma_and_label_space(work, inferencer):
    path = work['images'][0]
    raw = inferencer(path)[0]['pred_scores'].astype(np.float64)
    soft = inferencer(path, score_space='softmax')[0]['pred_scores']
    expected = np.exp(raw - raw.max())
    np.testing.assert_allclose(soft, expected / expected.sum(), atol=1e-6)

    calibrated = inferencer(path, score_space='softmax', gamma=0.1)[0]
    expected = soft.copy()
    expected[SEEN] -= 0.1
    np.testing.assert_allclose(calibrated['pred_scores'], expected, atol=1e-6)
    # A gamma above every raw score gap pushes the top-1 to an unseen class.
    assert inferencer(path, gamma=1e3)[0]['pred_label'] in (4, 5)

    # ZSL: only the 2 unseen classes are ranked; softmax over them alone.
    zsl = inferencer(
        path, topk=5, label_space='unseen', score_space='softmax')[0]
    assert sorted(zsl['topk_labels']) == [4, 5]
    assert zsl['pred_label'] == 4 + int(np.argmax(raw[4:]))
    unseen = np.exp(raw[4:] - raw[4:].max())
    np.testing.assert_allclose(
        zsl['pred_scores'][4:], unseen / unseen.sum(), atol=1e-6)
    assert np.all(np.isneginf(zsl['pred_scores'][SEEN]))
    seen_only = inferencer(path, label_space='seen')[0]
    assert set(seen_only['topk_labels']) == set(SEEN)


def test_add_class_at_inference(work, inferencer):
    path = work['images'][2]
    before = inferencer(path)[0]
    _, pred_attr = reference_scores(work['model'], path, work['att'])
    pred_attr = pred_attr.double().numpy()
    rng = np.random.default_rng(5)
    new = rng.random((2, NUM_ATTRIBUTES)) + 0.1
    inferencer.add_classes(['unicorn', 'griffin'], new)
    after = inferencer(path, topk=NUM_CLASSES + 2)[0]
    # Score of an added class = Â · a_new / ||a_new|| (rows are normalised).
    expected = new @ pred_attr / np.linalg.norm(new, axis=1)
    np.testing.assert_allclose(
        after['pred_scores'][NUM_CLASSES:], expected, rtol=1e-5)
    np.testing.assert_allclose(
        after['pred_scores'][:NUM_CLASSES], before['pred_scores'], atol=1e-6)
    # The added classes are unseen: calibration leaves them alone.
    shifted = inferencer(path, gamma=0.25)[0]['pred_scores']
    np.testing.assert_allclose(shifted[NUM_CLASSES:], expected, rtol=1e-5)
    np.testing.assert_allclose(
        shifted[SEEN], after['pred_scores'][SEEN] - 0.25, atol=1e-6)
    # One along Â scores ||Â||, the maximum over unit vectors: it wins.
    inferencer.add_classes('pegasus', pred_attr)
    best = inferencer(path)[0]
    assert best['pred_class'] == 'pegasus'
    assert best['pred_score'] == pytest.approx(
        np.linalg.norm(pred_attr), rel=1e-5)
    with pytest.raises(ValueError, match='already exist'):
        inferencer.add_classes('unicorn', pred_attr)
    with pytest.raises(ValueError, match='4 attributes.*5|5.*4'):
        inferencer.add_classes('bad', np.ones(4))


def test_add_classes_refuses_bad_names_and_shapes(work, inferencer):
    n = NUM_ATTRIBUTES
    good = np.ones((2, n))
    for shape in [(2, n + 3), (3, n), (n - 1, ), (1, 2, n)]:
        with pytest.raises(ValueError) as err:
            inferencer.add_classes(['x', 'y'], np.ones(shape))
        msg = str(err.value)
        assert f'{n} attributes per class' in msg
        assert f'shape (2, {n})' in msg and f'got shape {shape}' in msg
    for names in (['ok', ''], ['ok', '   '], ['ok', None]):
        with pytest.raises(ValueError, match='non-empty strings.*got'):
            inferencer.add_classes(names, good)
    with pytest.raises(ValueError, match="duplicate class names: 'x'"):
        inferencer.add_classes(['x', 'x'], good)
    with pytest.raises(ValueError, match=rf"\['{NAMES[1]}'\] already exist"):
        inferencer.add_classes(['x', NAMES[1]], good)
    assert list(inferencer.classes) == NAMES  # nothing was added
    inferencer.add_classes(['x', 'y'], good)
    assert list(inferencer.classes) == NAMES + ['x', 'y']


@pytest.mark.parametrize('batch_size', [0, -2, 1.5, True, '2'])
def test_batch_size_must_be_positive(work, inferencer, batch_size):
    with pytest.raises(ValueError, match='batch_size.*>= 1'):
        inferencer(work['images'][:2], batch_size=batch_size)


@pytest.mark.parametrize('option, value', [('--batch-size', '0'),
                                           ('--batch-size', '-1'),
                                           ('--batch-size', 'two'),
                                           ('--topk', '0')])
def test_cli_batch_size_zero(work, capsys, option, value):
    """Refused by the argument parser (usage error, exit 2), before the
    model is loaded."""
    argv = [
        work['config'], work['ckpt'], work['images'][0], '--class-attributes',
        work['npy'], option, value
    ]
    with pytest.raises(SystemExit) as exit_:
        infer_tool.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f'argument {option}: must be a whole number >= 1, got' in err
    assert value in err
    assert 'Traceback' not in err and 'ZeroDivisionError' not in err


def test_kwargs_are_dispatched_and_unknown_ones_refused(work, inferencer):
    with pytest.raises(ValueError, match='unknown argument'):
        inferencer(work['images'][0], top_k=3)
    samples = inferencer(work['images'][0], return_datasamples=True)
    assert 'pred_attributes' in samples[0]
    for bad in (float('nan'), float('inf')):
        with pytest.raises(ValueError, match='finite'):
            inferencer(work['images'][0], gamma=bad)


# -------------------------------------------------------- class sources --
def test_npy_csv_and_mat_sources_agree(work):
    kwargs = dict(pretrained=work['ckpt'], device='cpu')
    from_npy = ZSLInferencer(
        work['config'],
        class_attributes=work['npy'],
        class_names=NAMES,
        seen_classes=['zebra', 'horse', 'tiger', 'lion'],
        **kwargs)
    from_csv = ZSLInferencer(
        work['config'],
        class_attributes=work['csv'],
        seen_classes=SEEN,
        **kwargs)
    # mmpretrain's argument name, and the old one as an alias.
    from_mat = ZSLInferencer(
        work['config'],
        checkpoint=work['ckpt'],
        class_attributes=work['mat'],
        device='cpu')
    assert from_csv.classes == from_mat.classes == tuple(NAMES)
    assert from_csv.attribute_names == tuple(ATTRIBUTE_NAMES)
    assert from_npy.attribute_names[0] == 'attr_0'
    # Seen classes from res101.mat's trainval labels, beside att_splits.mat.
    np.testing.assert_array_equal(from_mat.seen_classes, SEEN)
    np.testing.assert_array_equal(from_npy.seen_classes, SEEN)
    path = work['images'][0]
    ref = from_npy(path, gamma=0.5, score_space='softmax')[0]['pred_scores']
    for other in (from_csv, from_mat):
        got = other(path, gamma=0.5, score_space='softmax')[0]['pred_scores']
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_load_class_semantics_normalises_and_checks(work, tmp_path):
    semantics = load_class_semantics(work['npy'])
    np.testing.assert_allclose(
        semantics.attributes,
        work['att'] / np.linalg.norm(work['att'], axis=1, keepdims=True),
        rtol=1e-6)
    assert semantics.class_names[0] == 'class_0'
    raw = load_class_semantics(work['att'], normalize=False)
    np.testing.assert_allclose(raw.attributes, work['att'])
    with pytest.raises(ZSLDataError, match='3 class names.*6 classes'):
        load_class_semantics(work['npy'], class_names=['a', 'b', 'c'])
    with pytest.raises(ZSLDataError, match='duplicate class names'):
        load_class_semantics(work['npy'], class_names=['a'] * 6)
    with pytest.raises(ZSLDataError, match='all zero'):
        load_class_semantics(np.zeros((2, 3)))
    with pytest.raises(ZSLDataError, match='not one of the classes'):
        load_class_semantics(work['csv'], seen_classes=['dragon'])
    bad_csv = tmp_path / 'bad.csv'
    bad_csv.write_text('name,a,b\nx,1,2\n')
    with pytest.raises(ZSLDataError, match='header'):
        load_class_semantics(str(bad_csv))
    bad_csv.write_text('class,a,b\nx,1\n')
    with pytest.raises(ZSLDataError, match=r'bad.csv:2'):
        load_class_semantics(str(bad_csv))
    bad_csv.write_text('class,a,b\nx,1,nan\n')
    with pytest.raises(ZSLDataError, match=r"bad.csv.*'x'.*'b'"):
        load_class_semantics(str(bad_csv))
    with pytest.raises(FileNotFoundError, match='nowhere.npy'):
        load_class_semantics(str(tmp_path / 'nowhere.npy'))
    bad = tmp_path / 'att.json'
    bad.write_text('{}')
    with pytest.raises(ZSLDataError, match=r"\.json.*\.npy"):
        load_class_semantics(str(bad))


# ----------------------------------------------------------- checkpoints --
def runner_checkpoint(work, extra=None):
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
        'state_dict': work['model'].state_dict(),
        # The message hub as MMEngine writes it (weights_only=True refuses
        # its HistoryBuffer).
        'message_hub': {
            'log_scalars': {
                'train/loss': buffer
            }
        },
    }
    ckpt.update(extra or {})
    return ckpt


def test_runner_checkpoint_classes_from_meta(work, tmp_path):
    path = str(tmp_path / 'epoch_3.pth')
    torch.save(runner_checkpoint(work), path)
    # Without class_attributes, the checkpoint's training classes are used.
    inferencer = ZSLInferencer(work['config'], path, device='cpu')
    assert inferencer.classes == tuple(NAMES)
    np.testing.assert_array_equal(inferencer.seen_classes, SEEN)
    assert inferencer.attribute_names == tuple(ATTRIBUTE_NAMES)
    expected, _ = reference_scores(work['model'], work['images'][0],
                                   work['att'])
    np.testing.assert_allclose(
        inferencer(work['images'][0], score_space='raw')[0]['pred_scores'],
        expected,
        atol=1e-5)


def test_malicious_checkpoint_is_refused(work, tmp_path):
    from zeromamba_mm.utils.safe_load import UnsafeFileError
    path = str(tmp_path / 'evil.pth')
    torch.save(runner_checkpoint(work, {'trap': _Trap()}), path)
    CALLS.clear()
    with pytest.raises(UnsafeFileError, match='evil.pth'):
        ZSLInferencer(work['config'], path, class_attributes=work['att'])
    assert CALLS == []  # the trap's reducer was never called
    # The trap is armed: a full unpickle would have run it.
    torch.load(path, weights_only=False)
    assert CALLS == ['unpickled']


def test_config_object_and_built_model(work):
    expected, _ = reference_scores(work['model'], work['images'][0],
                                   work['att'])
    cfg = Config.fromfile(work['config'])
    inferencer = ZSLInferencer(
        cfg,
        pretrained=work['ckpt'],
        class_attributes=work['att'],
        device='cpu')
    np.testing.assert_allclose(
        inferencer(work['images'][0], score_space='raw')[0]['pred_scores'],
        expected,
        atol=1e-5)
    model = build_model(work['config'])
    model._config = cfg
    inferencer = ZSLInferencer(
        model, class_attributes=work['att'], device='cpu')
    np.testing.assert_allclose(
        inferencer(work['images'][0], score_space='raw')[0]['pred_scores'],
        expected,
        atol=1e-5)


def test_model_names_and_list_models(work, tmp_path):
    from mmpretrain.apis import list_models
    from mmpretrain.apis.model import ModelHub
    ours = ZSLInferencer.list_models()
    assert set(ours) <= set(list_models())
    # A model registered from elsewhere is not listed as ours, but can be
    # built by name, with local weights.
    index = tmp_path / 'model-index.yml'
    index.write_text('Models:\n  - Name: tiny-zsl-test-model\n'
                     f'    Config: {work["config"]}\n'
                     '    In Collection: none\n')
    ModelHub.register_model_index(str(index))
    try:
        assert 'tiny-zsl-test-model' in list_models('tiny-zsl-*')
        assert ZSLInferencer.list_models('tiny-zsl-*') == []
        inferencer = ZSLInferencer(
            'tiny-zsl-test-model',
            pretrained=work['ckpt'],
            class_attributes=work['att'],
            device='cpu')
        expected, _ = reference_scores(work['model'], work['images'][0],
                                       work['att'])
        np.testing.assert_allclose(
            inferencer(work['images'][0], score_space='raw')[0]['pred_scores'],
            expected,
            atol=1e-5)
        with pytest.raises(ValueError, match='pretrained=PATH'):
            ZSLInferencer('tiny-zsl-test-model', class_attributes=work['att'])
    finally:
        ModelHub._models_dict.pop('tiny-zsl-test-model', None)


def test_visualize_writes_pictures(work, inferencer, tmp_path):
    show_dir = tmp_path / 'vis'
    results = inferencer(work['images'][:2], show_dir=str(show_dir), topk=2)
    assert len(results) == 2
    pngs = sorted(p.name for p in show_dir.glob('*.png'))
    assert pngs == ['img0.png', 'img1.png']
    img = cv2.imread(str(show_dir / 'img0.png'))
    assert img is not None and img.std() > 0
    # Again: new names, nothing overwritten.
    inferencer(work['images'][0], show_dir=str(show_dir))
    assert (show_dir / 'img0_1.png').exists()


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
    with pytest.raises(ValueError, match='pretrained=PATH'):
        ZSLInferencer(work['config'], class_attributes=work['att'])
    with pytest.raises(ValueError, match='once'):
        ZSLInferencer(work['config'], pretrained='a.pth', checkpoint='b.pth')
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'not a checkpoint')
    with pytest.raises(Exception, match='garbage.pth'):
        ZSLInferencer(
            work['config'], str(garbage), class_attributes=work['att'])
    with pytest.raises(
            ValueError, match='has neither meta.zsl_class_semantics nor'):
        ZSLInferencer(work['config'], work['ckpt'])

    # Attribute dimension: both numbers are stated.
    with pytest.raises(ValueError, match='4 attributes.*num_attributes=5'):
        ZSLInferencer(
            work['config'], work['ckpt'], class_attributes=np.ones((6, 4)))

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
    with pytest.raises(ValueError, match="score_space.*'softmax', 'raw'"):
        inferencer(work['images'][0], score_space='logit')
    with pytest.raises(ValueError, match="label_space.*'unseen'"):
        inferencer(work['images'][0], label_space='novel')

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
        '--score-space', 'softmax', '--gamma', '0.2', '--label-space',
        'unseen', '--out', out
    ]
    assert infer_tool.main(argv) == 0
    printed = capsys.readouterr().out
    with open(out) as f:
        text = f.read()
    assert 'Infinity' not in text and 'NaN' not in text
    payload = json.loads(text)
    assert payload['classes'] == NAMES
    assert len(payload['results']) == 2
    first = payload['results'][0]
    assert first['image'] == work['images'][0]
    assert first['topk_labels'] == [4, 5] or first['topk_labels'] == [5, 4]
    # Seen classes are outside the label space: null, not -Infinity.
    assert [first['pred_scores'][i] for i in SEEN] == [None] * 4
    assert sum(first['pred_scores'][4:]) == pytest.approx(1.0, abs=1e-5)
    for name in first['topk_classes']:
        assert name in printed
    assert 'rank' in printed and 'gamma=0.2' in printed
    assert not list((tmp_path / 'sub').glob('.infer_*'))  # no temp left

    before = open(out).read()
    assert infer_tool.main(argv) == 1
    assert 'exists' in capsys.readouterr().err
    assert open(out).read() == before


def test_cli_refuses_bad_gamma_and_expands_directories(work, capsys, tmp_path):
    base = [work['config'], work['ckpt']]
    for bad in ('nan', 'inf', '-inf', 'abc'):
        with pytest.raises(SystemExit):
            infer_tool.parse_args(base + [work['images'][0], '--gamma', bad])
        assert 'gamma' in capsys.readouterr().err
    folder = osp.dirname(work['images'][0])
    assert infer_tool.expand_images([folder]) == sorted(work['images'])
    empty = tmp_path / 'empty'
    empty.mkdir()
    assert infer_tool.main(
        base + [str(empty), '--class-attributes', work['npy']]) == 1
    assert 'is a directory without images' in capsys.readouterr().err
    assert infer_tool.main(
        base +
        [str(tmp_path / 'none.jpg'), '--class-attributes', work['npy']]) == 1
    assert 'none.jpg' in capsys.readouterr().err


def test_directory_input_is_its_images(work, inferencer, tmp_path):
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('b.png', 'a.png'):
        cv2.imwrite(str(folder / name), cv2.imread(work['images'][0]))
    (folder / 'notes.txt').write_text('not an image')
    results = inferencer(str(folder))
    assert len(results) == 2
    np.testing.assert_allclose(
        results[0]['pred_scores'],
        inferencer(work['images'][0], score_space='raw')[0]['pred_scores'],
        atol=1e-6)


# ----------------------------------------------------- operating point --
def _calibrated_top1(model, path, gamma, score_space):
    """The metric's prediction (to_score_space + calibrated_predict) of the
    raw model scores: what tools/test.py scores."""
    from zeromamba_mm.evaluation import calibrated_predict, to_score_space
    raw, _ = reference_scores(model, path, class_attributes())
    space = to_score_space(raw[None], score_space)
    return int(calibrated_predict(space, SEEN, gamma)[0])


def _checkpoint_with(work, tmp_path, meta):
    path = str(tmp_path / 'with_meta.pth')
    torch.save(
        dict(
            state_dict=work['model'].state_dict(),
            meta=dict(
                meta,
                dataset_meta=dict(
                    classes=list(NAMES),
                    class_attributes=class_attributes().tolist(),
                    seen_classes=list(SEEN)))), path)
    return path


def test_inferencer_uses_the_checkpoint_operating_point(work, tmp_path):
    from zeromamba_mm.structures import OperatingPoint
    point = OperatingPoint(0.3, 'softmax', 'paper', 'config test_evaluator')
    ckpt = _checkpoint_with(work, tmp_path,
                            dict(zsl_operating_point=point.to_meta()))
    inferencer = ZSLInferencer(work['config'], ckpt, device='cpu')
    got = inferencer.operating_point
    assert (got.gamma, got.score_space, got.protocol) == (0.3, 'softmax',
                                                          'paper')
    assert got.selected_on == f'config test_evaluator, kept in {ckpt}'
    assert 'γ=0.3' in inferencer.operating_point.describe()
    for path in work['images']:
        got = inferencer(path)[0]
        assert got['pred_label'] == _calibrated_top1(work['model'], path, 0.3,
                                                     'softmax')
    # Keyword arguments override, and say so.
    raw = ZSLInferencer(
        work['config'], ckpt, device='cpu', gamma=0.0, score_space='raw')
    assert (raw.operating_point.gamma,
            raw.operating_point.score_space) == (0.0, 'raw')
    assert 'keyword arguments' in raw.operating_point.selected_on
    expected, _ = reference_scores(work['model'], work['images'][0],
                                   class_attributes())
    np.testing.assert_allclose(
        raw(work['images'][0])[0]['pred_scores'], expected, atol=1e-5)


def test_inferencer_legacy_and_config_fallback(work, tmp_path):
    legacy = _checkpoint_with(
        work, tmp_path,
        dict(
            zsl_selected_gamma=dict(
                gamma=1e3, score_space='raw', val_H=40.0, epoch=3)))
    inferencer = ZSLInferencer(work['config'], legacy, device='cpu')
    point = inferencer.operating_point
    assert (point.gamma, point.score_space, point.protocol) == (1e3, 'raw',
                                                                'clean')
    assert 'epoch 3' in point.selected_on
    # γ far above every score gap: an unseen class wins.
    assert inferencer(work['images'][0])[0]['pred_label'] in (4, 5)

    # Bare weights: the config's test metric's point, said so.
    config = str(tmp_path / 'with_metric.py')
    with open(config, 'w') as f:
        f.write(CONFIG + "\ntest_evaluator = dict(type='zeromamba_mm."
                "GZSLMetric', gamma=0.2, score_space='raw')\n")
    inferencer = ZSLInferencer(
        config,
        work['ckpt'],
        class_attributes=work['npy'],
        seen_classes=SEEN,
        device='cpu')
    point = inferencer.operating_point
    assert (point.gamma, point.score_space) == (0.2, 'raw')
    assert "config's test_evaluator" in point.selected_on
    assert 'keeps no operating point' in point.selected_on
    # No metric in the config at all: γ = 0 in the one default space.
    from zeromamba_mm.evaluation import DEFAULT_SCORE_SPACE
    bare = ZSLInferencer(
        work['config'],
        work['ckpt'],
        class_attributes=work['npy'],
        seen_classes=SEEN,
        device='cpu')
    assert (bare.operating_point.gamma,
            bare.operating_point.score_space) == (0.0, DEFAULT_SCORE_SPACE)
    assert 'default' in bare.operating_point.selected_on


def test_checkpoint_gamma_without_known_seen_classes(work, tmp_path):
    """Classes from a user file (seen ones unknown): the checkpoint's γ has
    nothing to act on and is left out; a γ the caller asks for is refused."""
    from zeromamba_mm.structures import OperatingPoint
    ckpt = _checkpoint_with(
        work, tmp_path,
        dict(zsl_operating_point=OperatingPoint(1e3, 'raw').to_meta()))
    inferencer = ZSLInferencer(
        work['config'], ckpt, class_attributes=work['npy'], device='cpu')
    assert inferencer.seen_classes is None
    expected, _ = reference_scores(work['model'], work['images'][0],
                                   class_attributes())
    got = inferencer(work['images'][0])[0]
    np.testing.assert_allclose(got['pred_scores'], expected, atol=1e-5)
    with pytest.raises(ValueError, match='seen classes'):
        inferencer(work['images'][0], gamma=0.5)
    inferencer.set_operating_point(gamma=0.5, by='a test')
    with pytest.raises(ValueError, match='seen classes'):
        inferencer(work['images'][0])
