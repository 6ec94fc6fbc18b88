"""VMamba's scan='2d' and serialization='dct' options (our designs)."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from test_ops_selective_scan_2d import naive_2d

from zeromamba_mm.models.backbones import VMamba
from zeromamba_mm.models.backbones.vmamba_layers import SS2D
from zeromamba_mm.models.backbones.vmamba_variants import (SS2DCorner2D,
                                                           SS2DFrequency)
from zeromamba_mm.models.utils import CheckpointMismatchError
from zeromamba_mm.models.utils.dct import DCTLevels
from zeromamba_mm.ops import selective_scan

DATA = osp.join(osp.dirname(__file__), 'data', 'vmamba')
CKPT = osp.join(DATA, 'vmamba_dev_s2_ckpt.pth')
IO = osp.join(DATA, 'vmamba_dev_s2_io.pth')
TINY = dict(
    depths=[1, 1, 1, 1], dims=8, ssm_ratio=2.0, d_state=1, mlp_ratio=2.0)


def test_frequency_prefix_maps_are_resized_dct_levels():
    torch.manual_seed(0)
    op = SS2DFrequency(4, d_state=2, num_levels=3).double()
    x = torch.randn(2, 8, 12, 10, dtype=torch.float64)
    assert op.prefix_grids(12, 10) == [(3, 3), (6, 5)]
    levels = DCTLevels(3)(x)
    for got, lev, grid in zip(
            op.prefix_maps(x), levels, op.prefix_grids(12, 10)):
        want = F.interpolate(
            lev, size=grid, mode='bilinear', align_corners=False)
        torch.testing.assert_close(got, want)


def test_frequency_scan_matches_rederivation():
    torch.manual_seed(1)
    op = SS2DFrequency(4, d_state=2, num_levels=3).double()
    x = torch.randn(1, 8, 4, 6, dtype=torch.float64)
    pre = op.prefix_maps(x)
    rows = [m.flatten(2) for m in pre + [x]]
    cols = [m.transpose(2, 3).flatten(2) for m in pre + [x]]
    seqs = [
        torch.cat(rows, -1),
        torch.cat(cols, -1),
        torch.cat([r.flip(-1) for r in rows], -1),
        torch.cat([c.flip(-1) for c in cols], -1)
    ]
    r, n, e = op.dt_rank, op.d_state, op.d_inner
    outs = []
    for k, seq in enumerate(seqs):
        dbl = torch.einsum('bel,ke->bkl', seq, op.x_proj_weight[k])
        dt, B, C = dbl[:, :r], dbl[:, r:r + n], dbl[:, r + n:]
        delta = torch.einsum('brl,er->bel', dt, op.dt_projs_weight[k])
        sl = slice(k * e, (k + 1) * e)
        y = selective_scan(
            seq,
            delta,
            -torch.exp(op.A_logs[sl]),
            B,
            C,
            D=op.Ds[sl],
            delta_bias=op.dt_projs_bias[k],
            delta_softplus=True,
            backend='ref')
        outs.append(y[..., -24:])
    # Grid outputs back onto the pixels: rows, cols, reversed ones.
    grid = (
        outs[0].view(1, e, 4, 6) + outs[2].flip(-1).view(1, e, 4, 6) +
        outs[1].view(1, e, 6, 4).transpose(2, 3) +
        outs[3].flip(-1).view(1, e, 6, 4).transpose(2, 3))
    torch.testing.assert_close(op.forward_core(x), op.out_norm(grid))


def test_frequency_with_one_level_is_plain_ss2d():
    torch.manual_seed(2)
    plain = SS2D(4, d_state=1).double()
    freq = SS2DFrequency(4, d_state=1, num_levels=1).double()
    freq.load_state_dict(plain.state_dict())
    x = torch.randn(1, 4, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(freq(x), plain(x))


def test_corner_2d_matches_double_loop():
    torch.manual_seed(3)
    op = SS2DCorner2D(3, d_state=2, ssm_ratio=1.0).double()
    x = torch.randn(1, 3, 3, 4, dtype=torch.float64)
    k, e, r, n = 4, op.d_inner, op.dt_rank, op.d_state
    p = dict(
        x_proj1=op.x_proj_weight[:, :r + n],
        dt_proj1=op.dt_projs_weight,
        dt_bias1=op.dt_projs_bias,
        A1=-torch.exp(op.A_logs).view(k, e, n),
        D1=op.Ds.view(k, e),
        x_proj2=op.x_proj2_weight,
        dt_proj2=op.dt_projs2_weight,
        dt_bias2=op.dt_projs2_bias,
        A2=-torch.exp(op.A2_logs).view(k, e, n),
        D2=op.D2s.view(k, e))
    want = op.out_norm(naive_2d(x, None, p, ('tl', 'tr', 'bl', 'br'), 'row'))
    torch.testing.assert_close(op.forward_core(x), want)


def test_variants_load_official_weights_and_name_the_new_ones(tmp_path):
    golden = torch.load(IO, weights_only=True)
    arch = golden['arch']
    ref = VMamba(arch, init_cfg=dict(type='Pretrained', checkpoint=CKPT))
    ref.init_weights()
    # Frequency option: no new weights, strict load of the release file.
    freq = VMamba(
        arch,
        serialization='dct',
        init_cfg=dict(type='Pretrained', checkpoint=CKPT))
    freq.init_weights()
    assert freq.state_dict().keys() == ref.state_dict().keys()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(freq.state_dict()[key], value)
    # 2-D scan: the release's weights load, the pass-2 ones keep their init.
    two = VMamba(
        arch, scan='2d', init_cfg=dict(type='Pretrained', checkpoint=CKPT))
    init = {k: v.clone() for k, v in two.state_dict().items()}
    two.init_weights()
    new = [k for k in two.state_dict() if k not in ref.state_dict()]
    assert new and all(
        k.rsplit('.', 1)[1] in ('x_proj2_weight', 'dt_projs2_weight',
                                'dt_projs2_bias', 'A2_logs', 'D2s')
        for k in new)
    for key, value in two.state_dict().items():
        source = init if key in new else ref.state_dict()
        torch.testing.assert_close(value, source[key])
    with torch.no_grad():
        out = two.eval()(golden['input'])[0]
    assert torch.isfinite(out).all()
    # A 2-D checkpoint does not fit the plain model (strict, keys named).
    path = str(tmp_path / 'v2m.pth')
    torch.save({'backbone.' + k: v for k, v in two.state_dict().items()}, path)
    again = VMamba(
        arch, scan='2d', init_cfg=dict(type='Pretrained', checkpoint=path))
    again.init_weights()
    for key, value in two.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)
    plain = VMamba(arch, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(CheckpointMismatchError, match='x_proj2_weight'):
        plain.init_weights()


def test_variant_forward_shapes_and_bad_names():
    x = torch.randn(1, 3, 64, 48)
    for kwargs in (dict(
            scan='2d', scan_cfg=dict(axis_order='both', inter_norm=True)),
                   dict(
                       serialization='dct',
                       serialization_cfg=dict(stages=(0, 1)))):
        model = VMamba(TINY, out_indices=(0, 3), **kwargs)
        outs = model(x)
        assert [o.shape for o in outs] == [(1, 8, 16, 12), (1, 64, 2, 2)]
        outs[-1].sum().backward()
    model = VMamba(
        TINY, serialization='dct', serialization_cfg=dict(stages=(1, )))
    kinds = [type(layer.blocks[0].op) for layer in model.layers]
    assert kinds == [SS2D, SS2DFrequency, SS2D, SS2D]
    with pytest.raises(ValueError, match="'cross', '2d'"):
        VMamba(TINY, scan='zigzag')
    with pytest.raises(ValueError, match="'none', 'dct'"):
        VMamba(TINY, serialization='fft')
    with pytest.raises(ValueError, match='cannot be combined'):
        VMamba(TINY, scan='2d', serialization='dct')
    with pytest.raises(ValueError, match='out of range'):
        VMamba(TINY, serialization='dct', serialization_cfg=dict(stages=(4, )))
    with pytest.raises(ValueError, match="'row', 'col', 'both'"):
        VMamba(TINY, scan='2d', scan_cfg=dict(axis_order='diag'))
