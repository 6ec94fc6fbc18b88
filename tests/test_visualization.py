"""Attention-map and seen-unseen-curve plots, and their command-line tools."""
import glob
import json
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

import zeromamba_mm  # noqa: F401
from zeromamba_mm.apis import ZSLInferencer
from zeromamba_mm.evaluation import GZSLMetric, seen_unseen_curve
from zeromamba_mm.registry import MODELS
from zeromamba_mm.visualization import (
    CurvePoints, compute_attribute_attention, metric_curve_points,
    plot_attribute_attention, plot_seen_unseen_curve, points_from_arrays,
    save_seen_unseen_curve, visualize_attribute_attention)

sys.path.insert(0, osp.join(osp.dirname(__file__), '..', 'tools'))
import plot_seen_unseen_curve as curve_tool  # noqa: E402
import visualize_attention as attention_tool  # noqa: E402

NUM_ATTRIBUTES, SIZE = 8, 96
ATTRIBUTE_NAMES = [
    'has_bill_shape::curved_(up_or_down)', 'has_wing_color::blue', 'red',
    'striped', 'spotted', 'large', 'small', 'furry'
]

# A tiny ZeroMamba-style model: ResNet stage 3 (32 channels, 6x6 map at
# 96x96) -> ZeroMambaNeck (10 "ImageNet" logits) -> ZeroMambaHead (SLP).
CONFIG = f"""
default_scope = 'mmpretrain'
custom_imports = dict(imports=['zeromamba_mm'], allow_failed_imports=False)
model = dict(
    type='zeromamba_mm.ZeroShotClassifier',
    backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8,
                  out_indices=(2, )),
    neck=dict(type='zeromamba_mm.ZeroMambaNeck', in_channels=32,
              imagenet_classes=10, norm=None),
    head=dict(type='zeromamba_mm.ZeroMambaHead',
              num_attributes={NUM_ATTRIBUTES}, in_channels=32,
              imagenet_classes=10, w2v_dim=16, mlp_hidden=16))
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

LINEAR_HEAD = ("head=dict(type='zeromamba_mm.LinearAttributeHead', "
               f'in_channels=32, num_attributes={NUM_ATTRIBUTES}))')


def decode_png(path):
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert img is not None, f'{path} is not a readable PNG'
    return img


def assert_nontrivial_png(path, min_size=(300, 300)):
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    img = decode_png(path)
    assert img.shape[0] >= min_size[0] and img.shape[1] >= min_size[1]
    # Not a blank canvas: many distinct colours, real variation.
    assert img[..., :3].std() > 10
    assert len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 50
    return img


def write_config(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def save_checkpoint(config, path):
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp('vis')
    config = write_config(root / 'tiny_zeromamba.py', CONFIG)
    ckpt = save_checkpoint(config, root / 'tiny_zeromamba.pth')
    img = np.zeros((120, 160, 3), np.uint8)
    img[:] = (40, 90, 30)
    cv2.circle(img, (50, 60), 25, (0, 255, 255), -1)  # yellow, no red
    cv2.rectangle(img, (100, 20), (150, 70), (255, 200, 0), -1)
    image = str(root / 'shapes.png')
    cv2.imwrite(image, img)
    attributes = np.random.default_rng(0).random((5, NUM_ATTRIBUTES))
    att_file = str(root / 'att.npy')
    np.save(att_file, attributes)
    names_file = str(root / 'attributes.txt')
    with open(names_file, 'w') as f:
        f.write('\n'.join(ATTRIBUTE_NAMES) + '\n')
    inferencer = ZSLInferencer(
        config,
        ckpt,
        class_attributes=attributes,
        attribute_names=ATTRIBUTE_NAMES,
        device='cpu')
    return dict(
        root=root,
        config=config,
        ckpt=ckpt,
        image=image,
        att_file=att_file,
        names_file=names_file,
        inferencer=inferencer,
        attributes=attributes)


# ------------------------------------------------------------ attention --
def test_attention_maps_come_from_slp(work):
    inferencer = work['inferencer']
    result = compute_attribute_attention(inferencer, work['image'])
    model = inferencer.model
    resized = cv2.resize(
        cv2.imread(work['image']), (SIZE, SIZE),
        interpolation=cv2.INTER_LINEAR)
    # The image shown is the model input, in RGB.
    np.testing.assert_array_equal(result.image, resized[..., ::-1])
    with torch.no_grad():
        inputs = model.data_preprocessor(
            dict(inputs=[torch.from_numpy(resized).permute(2, 0, 1)]),
            False)['inputs']
        feats = model.extract_feat(inputs)
        expected_attr = model.head(feats)[0]
    # SLP's attention re-derived from its parameters (DAZLE-style dense
    # attention): M[a, r] = softmax_r( v_a W1 f_r ), with unit word vectors
    # v_a and unit region features f_r.
    slp = model.head.slp
    x = feats[0][0].double()  # x_pre (C, h, w)
    regions = x.flatten(1)
    regions = regions / regions.norm(dim=0, keepdim=True)
    words = slp.V.double() / slp.V.double().norm(dim=1, keepdim=True)
    logits = torch.einsum('ad,dc,cr->ar', words, slp.W1.double(), regions)
    expected_maps = torch.softmax(
        logits, dim=1).reshape(NUM_ATTRIBUTES, *x.shape[1:])
    assert result.maps.shape == (NUM_ATTRIBUTES, SIZE // 16, SIZE // 16)
    np.testing.assert_allclose(
        result.maps, expected_maps.detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(
        result.pred_attributes, expected_attr.numpy(), atol=1e-5)
    raw = inferencer(work['image'], score_space='raw', gamma=0.0)[0]
    np.testing.assert_allclose(
        result.class_scores, raw['pred_scores'], atol=1e-5)
    # The class shown is the one inference predicts at its operating point.
    assert result.pred_label == inferencer(work['image'])[0]['pred_label']


def test_attention_png_is_written_once(work, tmp_path):
    out = str(tmp_path / 'attention.png')
    raw = cv2.imread(work['image'])[..., ::-1].astype(int)
    assert not ((raw[..., 0] - raw[..., 1] > 100) &
                (raw[..., 0] - raw[..., 2] > 100)).any()
    result = visualize_attribute_attention(
        work['inferencer'], work['image'], out, topk=6)
    img = assert_nontrivial_png(out)
    np.testing.assert_array_equal(result.shown,
                                  np.argsort(-result.pred_attributes)[:6])
    # The heat maps are drawn: the image has no red, jet's top end is red.
    rgb = img[..., 2::-1].astype(int)
    reddish = (rgb[..., 0] - rgb[..., 1] > 100) & (
        rgb[..., 0] - rgb[..., 2] > 100)
    assert reddish.sum() > 100
    before = open(out, 'rb').read()
    with pytest.raises(FileExistsError, match='attention.png'):
        visualize_attribute_attention(
            work['inferencer'], work['image'], out, topk=2)
    assert open(out, 'rb').read() == before

    small = str(tmp_path / 'attention_2.png')
    result = visualize_attribute_attention(
        work['inferencer'], work['image'], small, topk=2, select='class')
    attrs = work['inferencer'].class_attributes[result.pred_label]
    np.testing.assert_array_equal(result.shown, np.argsort(-attrs)[:2])
    # Fewer panels, smaller figure.
    assert decode_png(small).shape[1] < img.shape[1]


def test_plot_attention_checks_inputs(tmp_path):
    image = np.full((32, 32, 3), 128, np.uint8)
    maps = np.random.default_rng(0).random((4, 4, 4))
    with pytest.raises(ValueError, match='3 attribute names for 4'):
        plot_attribute_attention(
            image,
            maps,
            np.ones(4),
            str(tmp_path / 'a.png'),
            attribute_names=['a', 'b', 'c'])
    with pytest.raises(ValueError, match='one score per attribute'):
        plot_attribute_attention(image, maps, np.ones(3),
                                 str(tmp_path / 'a.png'))
    assert not osp.exists(tmp_path / 'a.png')


def test_attention_needs_an_attention_head(work, tmp_path):
    start = CONFIG.index('    head=dict(')
    end = CONFIG.index('mlp_hidden=16))') + len('mlp_hidden=16))')
    text = CONFIG[:start] + '    ' + LINEAR_HEAD + CONFIG[end:]
    config = write_config(tmp_path / 'linear.py', text)
    ckpt = save_checkpoint(config, tmp_path / 'linear.pth')
    inferencer = ZSLInferencer(
        config, ckpt, class_attributes=work['attributes'], device='cpu')
    with pytest.raises(TypeError, match='attention_maps'):
        compute_attribute_attention(inferencer, work['image'])


def test_word_vector_file_is_not_needed_for_inference(work, tmp_path):
    # Word vectors only initialise SLP's V, which the checkpoint replaces.
    w2v = str(tmp_path / 'w2v.npy')
    np.save(w2v, np.random.default_rng(0).random((NUM_ATTRIBUTES, 16)))
    text = CONFIG.replace('mlp_hidden=16)',
                          f'mlp_hidden=16, word_vectors={w2v!r})')
    assert w2v in text
    config = write_config(tmp_path / 'w2v.py', text)
    ckpt = save_checkpoint(config, tmp_path / 'w2v.pth')
    os.remove(w2v)
    inferencer = ZSLInferencer(
        config, ckpt, class_attributes=work['attributes'], device='cpu')
    state = torch.load(ckpt, weights_only=True)['state_dict']
    torch.testing.assert_close(inferencer.model.head.slp.V,
                               state['head.slp.V'])


def test_visualize_attention_cli(work, tmp_path, capsys):
    out = str(tmp_path / 'cli.png')
    argv = [
        work['config'], work['ckpt'], work['image'], '--class-attributes',
        work['att_file'], '--attribute-names', work['names_file'], '--out',
        out, '--topk', '4', '--device', 'cpu'
    ]
    assert attention_tool.main(argv) == 0
    assert_nontrivial_png(out)
    assert 'predicted' in capsys.readouterr().out
    before = open(out, 'rb').read()
    assert attention_tool.main(argv) == 1
    assert 'exists' in capsys.readouterr().err
    assert open(out, 'rb').read() == before
    argv[2] = str(tmp_path / 'missing.png')
    argv[argv.index(out)] = str(tmp_path / 'other.png')
    assert attention_tool.main(argv) == 1
    assert 'missing.png' in capsys.readouterr().err


# ----------------------------------------------------------- visualizer --
def test_visualizer_draws_attention_with_attribute_names(
        work, tmp_path, monkeypatch):
    import zeromamba_mm.visualization.zsl_visualizer as vis_module
    from zeromamba_mm.registry import VISUALIZERS
    from zeromamba_mm.visualization import ZSLVisualizer
    seen_names = []
    draw = vis_module.draw_attribute_attention

    def spy(*args, attribute_names=None, **kwargs):
        seen_names.append(list(attribute_names))
        return draw(*args, attribute_names=attribute_names, **kwargs)

    monkeypatch.setattr(vis_module, 'draw_attribute_attention', spy)
    visualizer = VISUALIZERS.build(
        dict(
            type='zeromamba_mm.ZSLVisualizer',
            name='zsl_vis_test',
            vis_backends=[dict(type='LocalVisBackend')],
            save_dir=str(tmp_path / 'backend')))
    assert isinstance(visualizer, ZSLVisualizer)
    names = ['shape: circle'] + [f'colour {i}' for i in range(7)]
    visualizer.dataset_meta = dict(
        classes=[f'c{i}' for i in range(5)],
        seen_classes=[0, 1, 2],
        attribute_names=names)
    rng = np.random.default_rng(0)
    maps = torch.softmax(torch.as_tensor(rng.normal(size=(8, 36))), dim=1)
    sample = DataSample().set_pred_label(3).set_pred_score(
        torch.as_tensor(rng.random(5)))
    # As a head hands them over: tensors that may need detaching (on
    # CUDA also a move to the CPU).
    sample.set_field(
        maps.reshape(8, 6, 6).clone().requires_grad_(), 'attention_maps')
    sample.set_field(
        torch.as_tensor(rng.random(8)).requires_grad_(), 'pred_attributes')
    image = np.full((96, 96, 3), 120, np.uint8)
    # To the vis backend (as VisualizationHook / test.py --show-dir do).
    drawn = visualizer.visualize_cls(image, sample, name='img', step=2)
    (written, ) = glob.glob(
        str(tmp_path / 'backend' / 'vis_data' / 'vis_image' / 'img_2.png'))
    on_disk = decode_png(written)[..., ::-1]
    np.testing.assert_array_equal(on_disk, drawn)
    # The attention panels sit beside the prediction: wider than tall.
    assert drawn.shape[1] > drawn.shape[0] > 96
    assert seen_names == [names]
    # Without names in the metainfo: attr_<i>; without maps: no panels.
    visualizer.dataset_meta = dict(classes=[f'c{i}' for i in range(5)])
    visualizer.visualize_cls(image, sample, out_file=str(tmp_path / 'a.png'))
    assert seen_names[-1] == [f'attr_{i}' for i in range(8)]
    plain = DataSample().set_pred_label(1).set_pred_score(torch.ones(5))
    picture = visualizer.visualize_cls(
        image, plain, out_file=str(tmp_path / 'b.png'))
    # No attention panels: only the image (scaled up to 256) and the text
    # panel below it (400 pixels wide).
    assert picture.shape[1] == 400 and len(seen_names) == 2
    assert picture.shape[0] > 256
    assert decode_png(str(tmp_path / 'b.png')).shape == picture.shape


# --------------------------------------------------------------- curves --
def metric_curve(curve_dir, gamma=0.3):
    """Run GZSLMetric on synthetic scores and return its curve JSON path."""
    rng = np.random.default_rng(0)
    num_classes, seen, unseen = 10, np.arange(7), np.arange(7, 10)
    labels = rng.integers(0, num_classes, 300)
    scores = rng.normal(0, 1, (300, num_classes))
    scores[np.arange(300), labels] += 2.0
    scores[:, seen] += 1.0  # the usual bias towards seen classes
    metric = GZSLMetric(gamma=gamma)
    metric.return_curve = True
    metric.dataset_meta = dict(
        seen_classes=seen,
        unseen_classes=unseen,
        classes=[str(i) for i in range(num_classes)])
    metric.process(None, [
        DataSample(sample_idx=i).set_pred_score(
            torch.tensor(s, dtype=torch.float32)).set_gt_label(int(y))
        for i, (s, y) in enumerate(zip(scores, labels))
    ])
    metrics = metric.evaluate(300)
    # As SeenUnseenCurveHook(out_dir=...) (tools/test.py --curve) saves it.
    points = metric_curve_points(**metrics.pop('gzsl/curve'))
    _, path = save_seen_unseen_curve(str(curve_dir), 'test_curve', points)
    return path, metrics, (scores, labels, seen, unseen)


@pytest.fixture(scope='module')
def curve(tmp_path_factory):
    return metric_curve(tmp_path_factory.mktemp('curve'))


def test_curve_points_match_metric(curve):
    path, metrics, _ = curve
    points = CurvePoints.from_json(path)
    assert points.ausuc == pytest.approx(metrics['gzsl/AUSUC'], abs=1e-9)
    u, s = points.at_gamma(0.3)
    assert u == pytest.approx(metrics['gzsl/U'], abs=1e-9)
    assert s == pytest.approx(metrics['gzsl/S'], abs=1e-9)
    assert points.at_gamma(-1e9) == (points.unseen[0], points.seen[0])
    assert points.at_gamma(1e9)[1] == points.seen[-1]
    assert points.unseen[0] == 0 and points.seen[-1] == 0


def test_curve_png(curve, tmp_path):
    path, metrics, (scores, labels, seen, unseen) = curve
    out = str(tmp_path / 'suc.png')
    plot_seen_unseen_curve(path, out, gamma=0.05)
    assert_nontrivial_png(out, min_size=(400, 400))
    before = open(out, 'rb').read()
    with pytest.raises(FileExistsError):
        plot_seen_unseen_curve(path, out)
    assert open(out, 'rb').read() == before

    # From a curve computed in memory, and from arrays.
    fresh = seen_unseen_curve(scores, labels, seen, unseen)
    out2 = str(tmp_path / 'suc_memory.png')
    plot_seen_unseen_curve(fresh, out2, gamma=0.3)
    assert_nontrivial_png(out2, min_size=(400, 400))
    points = points_from_arrays(fresh.unseen, fresh.seen, unit='fraction')
    assert points.ausuc == pytest.approx(metrics['gzsl/AUSUC'], abs=1e-9)
    with pytest.raises(ValueError, match='no γ values'):
        plot_seen_unseen_curve(points, str(tmp_path / 'x.png'), gamma=0.3)
    with pytest.raises(ValueError, match=r'\[0, 100\]'):
        points_from_arrays([0, 150], [100, 0])


def test_curve_json_errors(curve, tmp_path):
    path, _, _ = curve
    record = json.load(open(path))
    record['ausuc'] += 5
    altered = tmp_path / 'altered.json'
    altered.write_text(json.dumps(record))
    with pytest.raises(ValueError, match='altered.json.*ausuc'):
        CurvePoints.from_json(str(altered))
    del record['gamma_low']
    broken = tmp_path / 'broken.json'
    broken.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="gamma_low"):
        CurvePoints.from_json(str(broken))
    with pytest.raises(FileNotFoundError, match='nothing.json'):
        CurvePoints.from_json(str(tmp_path / 'nothing.json'))


def test_plot_curve_cli(curve, tmp_path, capsys):
    path, metrics, _ = curve
    out = str(tmp_path / 'cli_suc.png')
    assert curve_tool.main([path, '--out', out, '--gamma', '0.3']) == 0
    assert_nontrivial_png(out, min_size=(400, 400))
    printed = capsys.readouterr().out
    assert f'AUSUC {metrics["gzsl/AUSUC"]:.2f}' in printed
    assert f'U {metrics["gzsl/U"]:.2f}' in printed
    before = open(out, 'rb').read()
    assert curve_tool.main([path, '--out', out]) == 1
    assert 'exists' in capsys.readouterr().err
    assert open(out, 'rb').read() == before


def test_visualizer_sends_the_curve_to_backends(curve, tmp_path):
    from zeromamba_mm.visualization import ZSLVisualizer
    path, _, _ = curve
    visualizer = ZSLVisualizer(
        name='zsl_curve_test',
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path))
    drawn = visualizer.visualize_seen_unseen_curve(path, name='suc', step=4)
    written = tmp_path / 'vis_data' / 'vis_image' / 'suc_4.png'
    np.testing.assert_array_equal(decode_png(str(written))[..., ::-1], drawn)
    assert drawn.shape[0] >= 400 and drawn.std() > 10


def test_mmpretrain_visualization_hook_carries_zsl_pictures(tmp_path):
    from mmpretrain.engine.hooks import VisualizationHook

    from zeromamba_mm.visualization import ZSLVisualizer
    visualizer = ZSLVisualizer.get_instance(
        'zsl_hook_test', save_dir=str(tmp_path / 'unused'))
    visualizer.dataset_meta = dict(
        classes=['a', 'b', 'c'],
        seen_classes=[0, 1],
        attribute_names=['round', 'red', 'big', 'furry'])
    hook = VisualizationHook(enable=True, interval=1, out_dir=str(tmp_path))
    assert hook._visualizer is visualizer
    maps = torch.softmax(torch.randn(4, 16), dim=1).reshape(4, 4, 4)
    sample = DataSample(img_path='x/bird.png').set_pred_label(2)
    sample.set_pred_score(torch.tensor([0.1, 0.2, 0.7]))
    sample.set_field(maps, 'attention_maps')
    sample.set_field(torch.tensor([0.9, 0.1, 0.5, 0.3]), 'pred_attributes')
    batch = dict(inputs=[torch.full((3, 64, 64), 90, dtype=torch.uint8)])
    hook._draw_samples(0, batch, [sample], step=0)
    picture = decode_png(str(tmp_path / 'bird.png_0.png'))
    assert picture.shape[1] > picture.shape[0] > 64  # attention beside
