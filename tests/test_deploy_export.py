"""ONNX export of every model family: onnxruntime equals PyTorch.

Each family is shrunk to a toy size and exported at two input sizes; the
outputs of onnxruntime are compared with the PyTorch model's own
``extract_feat`` / head / ``predict`` (not with the export wrapper), and the
loop-free export scan with the sequential reference scan.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

ort = pytest.importorskip(
    'onnxruntime', reason="onnxruntime is missing: pip install -e '.[deploy]'")
pytest.importorskip(
    'onnxscript',
    reason='the torch.onnx exporter needs '
    "onnxscript: pip install -e '.[deploy]'")

from zeromamba_mm.evaluation.functional import to_score_space  # noqa: E402
from zeromamba_mm.ops import selective_scan_ref  # noqa: E402
from zeromamba_mm.ops.selective_scan_export import (  # noqa: E402
    segment_decays, selective_scan_export)

ROOT = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs')
TINY_VMAMBA = dict(
    depths=[1, 1, 1, 1], dims=8, ssm_ratio=2.0, d_state=1, mlp_ratio=2.0)
NUM_CLASSES, NUM_ATTRIBUTES, NUM_SEEN = 6, 20, 4
ATOL = 1e-4


def shrink(cfg: Config) -> Config:
    """The config's model at toy size (keeps scan/mixer/tokenizer
    options); the ImageNet head gets 5 classes."""
    cfg = copy.deepcopy(cfg)
    backbone = cfg.model.backbone
    backbone.pop('init_cfg', None)
    if backbone.get('drop_path_rate') is not None:
        backbone.drop_path_rate = 0.
    if backbone.type.endswith('Vim'):
        from zeromamba_mm.models.backbones import Vim
        arch = backbone.arch
        settings = dict(Vim.arch_zoo[arch]) if isinstance(arch, str) else \
            dict(arch)
        settings.update(embed_dims=16, depth=2, d_state=2)
        backbone.update(arch=settings, img_size=32, patch_size=8)
        channels = 16
    elif backbone.type.endswith('VMamba'):
        backbone.arch = TINY_VMAMBA
        channels = 64
    else:
        channels = None
    head = cfg.model.head
    if channels is not None and 'in_channels' in head:
        head.in_channels = channels
    if channels is not None and cfg.model.get('neck') and \
            'in_channels' in cfg.model.neck:
        cfg.model.neck.in_channels = channels
    if 'num_classes' in head:
        head.num_classes = 5
    if 'num_seen_classes' in head:
        head.num_seen_classes = NUM_SEEN
    if 'word_vectors' in head:
        head.word_vectors = None
        if head.type.endswith('DRMNHead'):
            head.proto_init = 'random'
    return cfg


def make_checkpoint(cfg: Config, path: str, seed: int = 0):
    """Random weights (and, for zero-shot models, classes) saved as a
    runner checkpoint; returns the built model."""
    from mmpretrain.apis import get_model
    torch.manual_seed(seed)
    model = get_model(cfg, pretrained=False, device='cpu')
    model.init_weights()
    # Non-trivial values everywhere (zero-initialised layers included).
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    meta = {}
    if callable(getattr(model.head, 'set_class_semantics', None)):
        rng = np.random.default_rng(seed)
        meta['dataset_meta'] = dict(
            class_attributes=rng.random((NUM_CLASSES, NUM_ATTRIBUTES)),
            classes=[f'class_{i}' for i in range(NUM_CLASSES)],
            seen_classes=list(range(NUM_SEEN)),
            unseen_classes=list(range(NUM_SEEN, NUM_CLASSES)))
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)
    return model


def family_config(name: str) -> Config:
    files = {
        'zeromamba-vmamba': 'zeromamba_demo.py',
        'drmn': 'drmn_demo.py',
        'linear': 'demo/linear_resnet18_zsl_demo.py',
        'vmamba-2d': 'v2m/v2m-sstar_vmamba-tiny_8xb128_in1k.py',
        'vmamba-dct': 'globalmamba/globalmamba-t_vmamba-tiny_8xb128_in1k.py',
        'vim': 'globalmamba/_base_vim_deit_in1k.py',
        'globalmamba-dct': 'globalmamba/globalmamba-mstar_vim-tiny_8xb256_'
        'in1k.py',
        'v2m': 'v2m/v2m-t_vim-tiny_8xb64_in1k.py',
    }
    cfg = Config.fromfile(osp.join(ROOT, files[name]))
    if name == 'vim':
        cfg.model.backbone.arch = 'vim-tiny'
    return shrink(cfg)


def pytorch_outputs(model, image: torch.Tensor, matrix=None) -> dict:
    """The PyTorch model's own outputs for float pixels ``image``."""
    with torch.no_grad():
        inputs = model.data_preprocessor({'inputs': image}, False)['inputs']
        if not callable(getattr(model.head, 'set_class_semantics', None)):
            preds = model(inputs, mode='predict')
            return dict(scores=torch.stack([p.pred_score for p in preds]))
        if matrix is not None:
            model.set_class_semantics(
                matrix, seen_classes=list(range(NUM_SEEN)))
        feats = model.extract_feat(inputs)
        scores = torch.stack([p.pred_score for p in model.head.predict(feats)])
        return dict(attributes=model.head(feats), raw_scores=scores)


def run_onnx(path: str, **feeds) -> dict:
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    names = [o.name for o in session.get_outputs()]
    out = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    return dict(zip(names, out))


def export(cfg, ckpt, out, **kwargs):
    from zeromamba_mm.deploy import export_onnx
    return export_onnx(cfg, ckpt, out, **kwargs)


def test_export_scan_matches_reference_in_every_layout():
    torch.manual_seed(0)
    b, d, n = 2, 4, 3
    for length in (1, 7, 16, 35):
        u, delta, z = (
            torch.randn(b, d, length, dtype=torch.float64) for _ in range(3))
        A = -torch.rand(d, n, dtype=torch.float64) * 4
        D, bias = torch.randn(
            d, dtype=torch.float64), torch.randn(
                d, dtype=torch.float64)
        for shape in ((d, n), (b, n, length), (b, 2, n, length)):
            B, C = (torch.randn(*shape, dtype=torch.float64) for _ in range(2))
            want = selective_scan_ref(u, delta, A, B, C, D, z, bias, True,
                                      True)
            got = selective_scan_export(
                u, delta, A, B, C, D, z, bias, True, True, chunk=4)
            torch.testing.assert_close(got[0], want[0])
            torch.testing.assert_close(got[1], want[1])


def test_dispatch_takes_the_export_scan_while_exporting(monkeypatch):
    from zeromamba_mm.ops import selective_scan, selective_scan_dispatch
    calls = []

    def spy(*args):
        calls.append(args)
        return selective_scan_export(*args)

    monkeypatch.setattr(selective_scan_dispatch, 'selective_scan_export', spy)
    torch.manual_seed(0)
    u, delta = torch.randn(1, 4, 9), torch.randn(1, 4, 9)
    A, B, C = -torch.rand(4, 2), torch.randn(1, 2, 9), torch.randn(1, 2, 9)
    want = selective_scan_ref(u, delta, A, B, C, delta_softplus=True)
    selective_scan(u, delta, A, B, C, delta_softplus=True)
    assert not calls  # eager: the regular backends
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    got = selective_scan(u, delta, A, B, C, delta_softplus=True)
    assert len(calls) == 1
    torch.testing.assert_close(got, want)


def test_segment_decays_by_loops():
    x = torch.tensor([-1., -2., -0.5, -3.], dtype=torch.float64)
    got = segment_decays(x)
    for t in range(4):
        for s in range(4):
            want = torch.exp(x[s + 1:t + 1].sum()) if s <= t else 0.
            torch.testing.assert_close(got[t, s], torch.as_tensor(
                want, dtype=torch.float64))


def test_strong_decay_stays_finite():
    """delta * |A| of 50 per step over 64 steps: no overflow."""
    u = torch.ones(1, 1, 64)
    delta = torch.full((1, 1, 64), 50.)
    A = -torch.ones(1, 1)
    B = torch.ones(1, 1, 64)
    C = torch.ones(1, 1, 64)
    y = selective_scan_export(u, delta, A, B, C)
    torch.testing.assert_close(y, selective_scan_ref(u, delta, A, B, C))
    assert torch.isfinite(y).all()


ZSL_FAMILIES = ('zeromamba-vmamba', 'drmn', 'linear')
BACKBONE_FAMILIES = ('vmamba-2d', 'vmamba-dct', 'vim', 'globalmamba-dct',
                     'v2m')


@pytest.mark.slow
@pytest.mark.parametrize('family', ZSL_FAMILIES)
def test_zero_shot_family_matches_pytorch(family, tmp_path):
    """Attributes (and the scores of a class added at run time) at one
    size, calibrated scores at another; batch 2 and 3 on a dynamic batch.
    """
    cfg = family_config(family)
    ckpt = str(tmp_path / 'model.pth')
    model = make_checkpoint(cfg, ckpt).eval()
    stored = export(
        cfg,
        ckpt,
        str(tmp_path / 'a.onnx'),
        shape=(32, 32),
        mode='attributes',
        dynamic_batch=True)['metadata']
    matrix = torch.tensor(stored['class_attributes'], dtype=torch.float32)
    new = torch.rand(
        1, NUM_ATTRIBUTES, generator=torch.Generator().manual_seed(5))
    extended = torch.cat([matrix, new / new.norm()])
    image = torch.rand(3, 3, 32, 32) * 255
    got = run_onnx(
        str(tmp_path / 'a.onnx'), image=image, class_attributes=extended)
    want = pytorch_outputs(model, image, extended.numpy())
    for key in ('attributes', 'raw_scores'):
        np.testing.assert_allclose(got[key], want[key].numpy(), atol=ATOL)
    assert (got['raw_scores'].argsort(1) == want['raw_scores'].numpy().argsort(
        1)).all()

    result = export(cfg, ckpt, str(tmp_path / 's.onnx'), shape=(48, 40))
    point = result['metadata']['operating_point']
    assert point['selected_on'].startswith("the config's test_evaluator")
    image = torch.rand(1, 3, 48, 40) * 255
    got = run_onnx(str(tmp_path / 's.onnx'), image=image)
    want = pytorch_outputs(model, image, matrix.numpy())['raw_scores']
    np.testing.assert_allclose(got['raw_scores'], want.numpy(), atol=ATOL)
    calibrated = to_score_space(want.numpy(), point['score_space'])
    calibrated[:, :NUM_SEEN] -= point['gamma']
    np.testing.assert_allclose(got['scores'], calibrated, atol=ATOL)


@pytest.mark.slow
@pytest.mark.parametrize('family', BACKBONE_FAMILIES)
def test_backbone_family_matches_pytorch(family, tmp_path):
    cfg = family_config(family)
    ckpt = str(tmp_path / 'model.pth')
    model = make_checkpoint(cfg, ckpt).eval()
    for size in ((32, 32), (48, 48)):
        out = str(tmp_path / f'{size[0]}.onnx')
        meta = export(cfg, ckpt, out, shape=size)['metadata']
        assert meta['kind'] == 'classifier'
        assert (meta['input']['height'], meta['input']['width']) == size
        image = torch.rand(1, 3, *size) * 255
        got = run_onnx(out, image=image)['scores']
        want = pytorch_outputs(model, image)['scores'].numpy()
        np.testing.assert_allclose(got, want, atol=ATOL)
