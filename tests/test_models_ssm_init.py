"""The one Mamba SSM initialisation and the library norms the backbones use,
against plain re-derivations."""
import math

import torch
import torch.nn.functional as F

from zeromamba_mm.models.backbones.ssm_init import init_mamba_ssm_
from zeromamba_mm.models.backbones.vim_layers import rms_norm
from zeromamba_mm.models.backbones.vmamba_layers import SS2D
from zeromamba_mm.models.utils import parse_out_indices


def test_init_follows_mamba():
    torch.manual_seed(0)
    k, e, r, n = 4, 6, 3, 5
    weight, bias = torch.empty(k, e, r), torch.empty(k, e)
    a_log, d = torch.empty(k * e, n), torch.empty(k * e)
    init_mamba_ssm_(weight, bias, a_log, d, dt_min=1e-3, dt_max=0.1)
    assert weight.abs().max() <= r**-0.5
    steps = F.softplus(bias)  # the inverse softplus is undone exactly
    assert steps.min() >= 1e-3 - 1e-7 and steps.max() <= 0.1 + 1e-7
    for row in range(k * e):
        for j in range(n):
            assert a_log[row, j] == torch.tensor(math.log(j + 1))
    assert torch.equal(d, torch.ones(k * e))


def test_ss2d_draws_its_ssm_parameters_through_the_shared_init():
    ss2d = SS2D(16, d_state=1, ssm_ratio=0.5, dt_rank=2)  # K=4, E=8, R=2
    torch.manual_seed(3)
    ss2d.reset_ssm_parameters()
    torch.manual_seed(3)
    torch.empty(4, 2 + 2, 8).uniform_()  # x_proj_weight's draw comes first
    weight, bias = torch.empty(4, 8, 2), torch.empty(4, 8)
    init_mamba_ssm_(weight, bias, torch.empty(32, 1), torch.empty(32))
    assert torch.equal(ss2d.dt_projs_weight.data, weight)
    assert torch.equal(ss2d.dt_projs_bias.data, bias)


def test_rms_norm_is_vims():
    torch.manual_seed(0)
    norm = rms_norm(7)
    norm.weight.data.uniform_(0.5, 2)
    x = torch.randn(3, 4, 7)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * \
        norm.weight
    torch.testing.assert_close(norm(x), expected, rtol=1e-6, atol=1e-6)
    assert list(norm.state_dict()) == ['weight']


def test_parse_out_indices():
    assert parse_out_indices(-1, 4) == (3, )
    assert parse_out_indices([2, -2, 0], 4) == (0, 2)
    try:
        parse_out_indices([4], 4, 'blocks')
    except IndexError as err:
        assert 'out_indices entry 4 is out of range for 4 blocks' in str(err)
    else:
        raise AssertionError('no IndexError')
