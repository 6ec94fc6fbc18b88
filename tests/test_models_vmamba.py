"""VMamba backbone: parity with the official model, archs, options, loading."""
import copy
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.apis import get_model

import zeromamba_mm  # noqa: F401
from zeromamba_mm.models.backbones import VMamba
from zeromamba_mm.models.backbones.vmamba_layers import (SS2D, cross_merge,
                                                         cross_scan)
from zeromamba_mm.models.utils import (CheckpointMismatchError,
                                       convert_official_vmamba,
                                       infer_vmamba_arch, load_checkpoint_file,
                                       strict_load_state_dict)
from zeromamba_mm.registry import MODELS

DATA = osp.join(osp.dirname(__file__), 'data', 'vmamba')
CKPT = osp.join(DATA, 'vmamba_dev_s2_ckpt.pth')
IO = osp.join(DATA, 'vmamba_dev_s2_io.pth')
CONFIGS = osp.join(osp.dirname(osp.dirname(__file__)), 'configs', 'vmamba')
# A small arch for fast tests (the reference scan is sequential).
TINY = dict(
    depths=[1, 1, 2, 1], dims=8, ssm_ratio=2.0, d_state=1, mlp_ratio=2.0)


@pytest.fixture(scope='module')
def golden():
    return torch.load(IO, weights_only=True)


_PRESETS = {}


def preset(arch):
    # Full-size models are slow to build on CPU: build each one once.
    if arch not in _PRESETS:
        _PRESETS[arch] = VMamba(arch)
    return _PRESETS[arch]


def pretrained(path=CKPT, **kwargs):
    return dict(type='Pretrained', checkpoint=path, **kwargs)


# ---------------------------------------------------------------- parity ---
def test_golden_stage4_parity_final_norm_off(golden):
    model = VMamba(
        arch=golden['arch'], final_norm=False, init_cfg=pretrained())
    model.init_weights()
    model.eval()
    assert not hasattr(model, 'norm_out')
    with torch.no_grad():
        (stage4, ) = model(golden['input'])
    assert stage4.shape == golden['stage4'].shape == (2, 128, 2, 2)
    assert (stage4 - golden['stage4']).abs().max() <= 1e-4


def test_golden_logits_parity_image_classifier(golden):
    cfg = dict(
        type='mmpretrain.ImageClassifier',
        backbone=dict(
            type='zeromamba_mm.VMamba',
            arch=golden['arch'],
            init_cfg=pretrained()),
        neck=dict(type='mmpretrain.GlobalAveragePooling'),
        head=dict(
            type='mmpretrain.LinearClsHead',
            num_classes=golden['num_classes'],
            in_channels=128))
    model = MODELS.build(cfg)
    model.init_weights()
    # The backbone loaded itself; the head comes from the same file.
    head = {
        k[len('head.'):]: v
        for k, v in convert_official_vmamba(load_checkpoint_file(
            CKPT)).items() if k.startswith('head.')
    }
    strict_load_state_dict(model.head, head, source=CKPT)
    model.eval()
    with torch.no_grad():
        logits = model(golden['input'], mode='tensor')
    assert logits.shape == (2, 5)
    assert (logits - golden['logits']).abs().max() <= 1e-4


def test_cross_scan_merge_adjoint():
    # cross_merge is the adjoint of cross_scan: <scan(x), y> == <x, merge(y)>
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    y = torch.randn(2, 4, 3, 20, dtype=torch.float64)
    xs = cross_scan(x)
    assert torch.equal(xs[:, 0], x.flatten(2))
    assert torch.equal(xs[:, 1, :, 1], x[:, :, 1, 0])  # column-major
    assert torch.equal(xs[:, 2], x.flatten(2).flip(-1))
    lhs = (xs * y).sum()
    rhs = (x * cross_merge(y, 4, 5)).sum()
    assert torch.allclose(lhs, rhs)


# ----------------------------------------------------------------- archs ---
@pytest.mark.parametrize('arch,params,depths,dims,ratio,dpr', [
    ('tiny', 30.2e6, [2, 2, 8, 2], [96, 192, 384, 768], 1.0, 0.2),
    ('small', 50.1e6, [2, 2, 15, 2], [96, 192, 384, 768], 2.0, 0.3),
    ('base', 88.6e6, [2, 2, 15, 2], [128, 256, 512, 1024], 2.0, 0.6),
])
def test_arch_presets(arch, params, depths, dims, ratio, dpr):
    model = preset(arch)
    assert model.depths == depths and model.dims == dims
    assert model.drop_path_rate == dpr
    op = model.layers[0].blocks[0].op
    assert op.d_inner == int(ratio * 96 if arch != 'base' else ratio * 128)
    assert op.d_state == 1 and op.dt_rank == math.ceil(dims[0] / 16)
    count = sum(p.numel() for p in model.parameters())
    count += dims[-1] * 1000 + 1000  # the ImageNet head
    assert abs(count - params) / params < 0.01


def test_arch_dict_and_int_dims():
    model = VMamba(dict(TINY, dt_rank=3, drop_path_rate=0.1))
    assert model.dims == [8, 16, 32, 64]
    assert model.layers[2].blocks[0].op.dt_rank == 3
    assert model.drop_path_rate == 0.1
    listed = VMamba(dict(TINY, dims=[8, 12, 20, 24]))
    assert listed.dims == [8, 12, 20, 24]
    assert listed.layers[3].blocks[0].op.dt_rank == 2  # ceil(24 / 16)
    assert listed.layers[1].blocks[0].mlp.fc1.out_features == 24


def test_arch_errors():
    with pytest.raises(KeyError, match="'base', 'small', 'tiny'"):
        VMamba('huge')
    bad = dict(TINY)
    del bad['d_state']
    with pytest.raises(KeyError, match='d_state'):
        VMamba(bad)
    with pytest.raises(KeyError, match='depth'):
        VMamba(dict(TINY, depth=[1]))
    with pytest.raises(IndexError, match='out_indices'):
        VMamba(TINY, out_indices=(4, ))
    with pytest.raises(ValueError, match='frozen_stages'):
        VMamba(TINY, frozen_stages=5)
    with pytest.raises(ValueError, match="scan_backend 'cuda'"):
        VMamba(TINY, scan_backend='cuda')


def test_ssm_init_like_mamba():
    torch.manual_seed(0)
    op = SS2D(32, d_state=4, ssm_ratio=2.0)
    assert op.x_proj_weight.shape == (4, 2 + 8, 64)
    assert op.dt_projs_weight.shape == (4, 64, 2)
    dt = torch.nn.functional.softplus(op.dt_projs_bias)
    assert dt.min() >= 1e-3 - 1e-6 and dt.max() <= 0.1 + 1e-6
    assert torch.allclose(op.A_logs,
                          torch.log(torch.arange(1., 5.)).expand(256, 4))
    assert torch.equal(op.Ds, torch.ones(256))
    assert op.dt_projs_weight.abs().max() <= 2**-0.5


# --------------------------------------------------------------- forward ---
def test_out_indices_shapes_and_strides():
    model = VMamba(TINY, out_indices=(0, 1, 2, -1)).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 16), (2, 16, 8, 8),
                                              (2, 32, 4, 4), (2, 64, 2, 2)]


def test_final_norm_applies_to_last_stage_only():
    torch.manual_seed(0)
    on = VMamba(TINY, out_indices=(2, 3)).eval()
    off = VMamba(TINY, out_indices=(2, 3), final_norm=False).eval()
    assert set(on.state_dict()) - set(off.state_dict()) == {
        'norm_out.weight', 'norm_out.bias'
    }
    off.load_state_dict(on.state_dict(), strict=False)
    with torch.no_grad():
        on.norm_out.weight.mul_(2.0)
        x = torch.randn(1, 3, 32, 32)
        a, b = on(x), off(x)
    assert torch.equal(a[0], b[0])  # stage 2 untouched
    assert torch.allclose(a[1], on.norm_out(b[1]))
    assert not torch.allclose(a[1], b[1])


def test_frozen_stages():
    model = VMamba(TINY, frozen_stages=2)
    model.train()
    frozen = [
        model.patch_embed, model.layers[0].blocks, model.layers[0].downsample,
        model.layers[1].blocks
    ]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    free = [
        model.layers[1].downsample, model.layers[2], model.layers[3],
        model.norm_out
    ]
    for module in free:
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    every = VMamba(TINY, frozen_stages=4)
    assert not any(p.requires_grad for p in every.parameters())


def test_norm_eval_is_accepted_and_harmless():
    model = VMamba(TINY, norm_eval=True).train()
    assert all(p.requires_grad for p in model.parameters())
    assert model.layers[0].blocks[0].norm.training


def test_with_cp_same_output_and_grads():
    torch.manual_seed(0)
    plain = VMamba(TINY, drop_path_rate=0.3, out_indices=(1, 3))
    ckpt = VMamba(TINY, drop_path_rate=0.3, out_indices=(1, 3), with_cp=True)
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 16, 16)
    results = []
    for model in (plain, ckpt):
        model.train()
        torch.manual_seed(1)  # same drop-path draws in both runs
        outs = model(x)
        (outs[0].sum() + (outs[1]**2).sum()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        results.append(([o.detach() for o in outs], grads))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        assert torch.allclose(a, b, atol=1e-6)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        assert torch.allclose(grads_a[name], grads_b[name], atol=1e-5), name


def test_drop_path():
    model = VMamba(TINY, drop_path_rate=0.5)
    rates = [
        b.drop_path.drop_prob for layer in model.layers[1:]
        for b in layer.blocks
    ]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.5)
    assert isinstance(model.layers[0].blocks[0].drop_path, torch.nn.Identity)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    with torch.no_grad():
        ref = model(x)[0]
        assert torch.equal(ref, model(x)[0])  # no drop path in eval
        model.train()
        torch.manual_seed(0)
        a = model(x)[0]
        torch.manual_seed(1)
        b = model(x)[0]
    assert not torch.allclose(a, b)


def test_scan_backend_is_forwarded(monkeypatch):
    from zeromamba_mm.models.backbones import vmamba_layers
    seen = []
    original = vmamba_layers.selective_scan

    def spy(*args, **kwargs):
        seen.append(kwargs.get('backend', 'absent'))
        kwargs.pop('backend', None)
        return original(*args, **kwargs)

    monkeypatch.setattr(vmamba_layers, 'selective_scan', spy)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        VMamba(TINY).eval()(x)
        VMamba(TINY, scan_backend='torch').eval()(x)
    assert seen == ['absent'] * 5 + ['torch'] * 5


# --------------------------------------------------------------- loading ---
def test_pretrained_mmpretrain_layout_and_prefix(tmp_path, golden):
    converted = convert_official_vmamba(load_checkpoint_file(CKPT))
    nested = {'model.' + k: v for k, v in converted.items()}
    path = str(tmp_path / 'nested.pth')
    torch.save({'state_dict': nested, 'meta': {}}, path)
    model = VMamba(
        golden['arch'],
        final_norm=False,
        init_cfg=pretrained(path, prefix='model.backbone'))
    model.init_weights()
    model.eval()
    with torch.no_grad():
        (stage4, ) = model(golden['input'])
    assert (stage4 - golden['stage4']).abs().max() <= 1e-4
    bad = VMamba(golden['arch'], init_cfg=pretrained(path, prefix='neck.'))
    with pytest.raises(KeyError, match="prefix 'neck.'"):
        bad.init_weights()


def test_tiny_checkpoint_into_small_model_fails_loudly():
    state = preset('tiny').state_dict()
    small = preset('small')
    with pytest.raises(CheckpointMismatchError) as err:
        strict_load_state_dict(small, state, source='vssm1_tiny.pth')
    msg = str(err.value)
    assert 'vssm1_tiny.pth' in msg
    assert ('layers.0.blocks.0.op.x_proj_weight: expected (4, 8, 192), '
            'found (4, 8, 96)') in msg
    assert '140 key(s) with the wrong shape, 126 missing' in msg
    assert 'missing from checkpoint: layers.2.blocks.8.norm.weight' in msg


def test_init_weights_mismatch_names_file_keys_shapes(tmp_path, golden):
    arch = dict(golden['arch'], ssm_ratio=1.0)
    model = VMamba(arch, init_cfg=pretrained())
    with pytest.raises(CheckpointMismatchError) as err:
        model.init_weights()
    msg = str(err.value)
    assert CKPT in msg
    assert ('layers.0.blocks.0.op.x_proj_weight: expected (4, 3, 16), '
            'found (4, 3, 32)') in msg
    assert 'ssm_ratio=2.0' in msg  # the hint describes the checkpoint


def test_final_norm_true_requires_norm_out(tmp_path, golden):
    state = load_checkpoint_file(CKPT)
    del state['classifier.norm.weight'], state['classifier.norm.bias']
    path = str(tmp_path / 'no_norm.pth')
    torch.save({'model': state}, path)
    with pytest.raises(CheckpointMismatchError, match='norm_out.weight'):
        VMamba(golden['arch'], init_cfg=pretrained(path)).init_weights()
    VMamba(
        golden['arch'], final_norm=False,
        init_cfg=pretrained(path)).init_weights()


def test_truncated_and_missing_files(tmp_path):
    data = open(CKPT, 'rb').read()
    path = tmp_path / 'truncated.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='truncated.pth'):
        load_checkpoint_file(str(path))
    model = VMamba(TINY, init_cfg=pretrained(str(path)))
    with pytest.raises(RuntimeError, match='corrupt or truncated'):
        model.init_weights()
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        VMamba(TINY, init_cfg=pretrained(missing)).init_weights()


def test_unsafe_pickle_is_refused(tmp_path):
    path = str(tmp_path / 'unsafe.pth')
    torch.save({'model': {'a': torch.ones(1)}, 'cfg': copy.copy}, path)
    with pytest.raises(RuntimeError, match='weights_only=True'):
        load_checkpoint_file(path)


def test_convert_official_layout_variants():
    sd = load_checkpoint_file(CKPT)
    out = convert_official_vmamba(sd)
    assert convert_official_vmamba(out) is out  # already mmpretrain layout
    assert out['backbone.layers.0.blocks.0.op.x_proj_weight'].shape == (4, 3,
                                                                        32)
    assert out['backbone.layers.3.blocks.0.op.dt_projs_weight'].shape == (4,
                                                                          256,
                                                                          8)
    assert torch.equal(out['backbone.norm_out.weight'],
                       sd['classifier.norm.weight'])
    assert torch.equal(out['head.fc.bias'], sd['classifier.head.bias'])
    # Stacked projections and conv-shaped 1x1 weights convert the same way.
    stacked = dict(sd)
    for key in [k for k in sd if k.endswith('op.x_proj.weight')]:
        e = sd[key].shape[1]
        stacked[key.replace('x_proj.weight', 'x_proj_weight')] = \
            stacked.pop(key).view(4, -1, e)
    key = 'layers.1.blocks.0.op.in_proj.weight'
    stacked[key] = sd[key][:, :, None, None]
    again = convert_official_vmamba(stacked)
    assert again.keys() == out.keys()
    for k in out:
        assert torch.equal(again[k], out[k]), k
    with pytest.raises(ValueError, match='Not a VMamba state dict'):
        convert_official_vmamba({'encoder.weight': torch.ones(1)})


@pytest.mark.parametrize('dt_rank', ['auto', 3])
def test_infer_arch_round_trip(dt_rank):
    # Stages of 16..128 channels give per-stage auto ranks 1, 2, 4, 8: the
    # inferred arch must say 'auto', not stage 0's rank for all stages.
    arch = dict(
        depths=[1, 2, 1, 1],
        dims=[16, 32, 64, 128],
        ssm_ratio=2.0,
        d_state=2,
        mlp_ratio=4.0,
        dt_rank=dt_rank)
    model = VMamba(arch, final_norm=False)
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    assert infer_vmamba_arch(sd) == arch
    rebuilt = VMamba(infer_vmamba_arch(sd), final_norm=False)
    strict_load_state_dict(rebuilt, model.state_dict(), source='in-memory')


def test_infer_arch_rejects_mixed_ranks():
    sd = {
        f'backbone.{k}': v
        for k, v in VMamba(TINY, final_norm=False).state_dict().items()
    }
    key = 'backbone.layers.1.blocks.0.op.dt_projs_weight'
    sd[key] = torch.zeros(4, sd[key].shape[1], 5)
    with pytest.raises(ValueError, match='per-stage dt ranks'):
        infer_vmamba_arch(sd)


# --------------------------------------------------------------- configs ---
def test_configs_build():
    for arch, dims in [('tiny', 768), ('small', 768), ('base', 1024)]:
        cfg = Config.fromfile(
            osp.join(CONFIGS, f'vmamba-{arch}_8xb128_in1k.py'))
        assert cfg.model.backbone.type == 'zeromamba_mm.VMamba'
        assert cfg.model.backbone.arch == arch
        assert cfg.model.head.in_channels == dims
        cfg.model.backbone.arch = dict(
            depths=[1, 1, 1, 1],
            dims=dims // 8,
            ssm_ratio=1.0,
            d_state=1,
            mlp_ratio=1.0)
        model = get_model(cfg)
        assert isinstance(model.backbone, VMamba)
        with torch.no_grad():
            scores = model(torch.randn(1, 3, 32, 32), mode='tensor')
        assert scores.shape == (1, 1000)
