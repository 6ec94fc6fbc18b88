"""benchmarks/gpu_check.py on CPU: arguments, the no-CUDA message, the JSON.

The GPU figures themselves need a CUDA machine; here the script runs its
``--dry-run`` (``--device cpu --quick``: the same checks at tiny sizes).
"""
import importlib.util
import json
import math
import os.path as osp

import pytest
import torch

PATH = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'benchmarks',
    'gpu_check.py')


@pytest.fixture(scope='module')
def gpu_check():
    spec = importlib.util.spec_from_file_location('gpu_check', PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help(gpu_check, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(['--help'])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ('--device', '--quick', '--dry-run', '--out', '--skip'):
        assert option in out


def test_arguments(gpu_check):
    args = gpu_check.parse_args(['--dry-run'])
    assert (args.device, args.quick, args.repeats, args.batch,
            args.image_size) == ('cpu', True, 2, 2, 32)
    args = gpu_check.parse_args(['--repeats', '3', '--batch', '4'])
    assert (args.device, args.quick, args.repeats, args.batch,
            args.image_size) == ('cuda', False, 3, 4, 448)


@pytest.mark.parametrize('argv,match', [
    (['--device', 'cuda'], 'CUDA is not available'),
    (['--device', 'cuda:1', '--quick'], 'CUDA is not available'),
    (['--device', 'cpu'], 'only with --quick'),
    (['--device', 'mps', '--quick'], 'unsupported device'),
    (['--device', 'nonsense'], 'invalid --device'),
    (['--repeats', '0'], '--repeats must be >= 1'),
    (['--skip', 'everything'], 'invalid choice'),
])
def test_refusals_exit_non_zero(gpu_check, monkeypatch, capsys, argv, match):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert match in err
    if 'CUDA' in match:
        assert '--dry-run' in err  # says what to run instead


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def test_dry_run_writes_the_documented_json(gpu_check, tmp_path, capsys):
    out = tmp_path / 'gpu_check.json'
    code = gpu_check.main(
        ['--dry-run', '--repeats', '1', '--batch', '1', '--out',
         str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert 'PASSED' in printed and 'ZeroMamba train step' in printed
    result = json.loads(out.read_text())
    assert set(result) == {
        'meta', 'scan_checks', 'golden', 'scan_timings', 'train_step',
        'skipped', 'passed', 'wall_s'
    }
    assert result['passed'] is True and result['meta']['quick'] is True
    assert result['meta']['device'] == 'cpu'
    assert all(math.isfinite(v) for v in _numbers(result))
    # Every case, float32 and bf16, for the CPU backend; all gradients.
    checks = {(r['backend'], r['dtype'], r['case'])
              for r in result['scan_checks']}
    assert checks == {('torch', d, c)
                      for d in ('float32', 'bfloat16')
                      for c in ('vmamba', 'gated_n16_fixed_b', 'grouped_n4')}
    for r in result['scan_checks']:
        assert {
            'y', 'last_state', 'du', 'ddelta', 'dA', 'dB', 'dC', 'dD',
            'ddelta_bias'
        } <= set(r['errors'])
        assert ('dz' in r['errors']) == (r['case'] != 'vmamba')
        assert 0 <= r['max_error'] <= r['tol']
    assert {(r['check'], r['backend'])
            for r in result['golden']} == {('backbone', 'torch'),
                                           ('logits', 'torch'), ('head', '-')}
    for r in result['golden']:
        assert r['passed'] and 0 <= r['max_abs_diff'] <= r['tol']
    assert {(r['backend'], r['dtype'])
            for r in result['scan_timings']} == {('torch', 'float32'),
                                                 ('torch', 'bfloat16')}
    assert all(r['fwd_ms'] > 0 and r['fwd_bwd_ms'] > 0
               for r in result['scan_timings'])
    steps = {r['precision']: r for r in result['train_step']}
    assert set(steps) == {'fp32', 'bf16_amp'}
    for r in steps.values():
        assert r['images_per_s'] == pytest.approx(r['batch'] /
                                                  (r['step_ms'] / 1e3))
        assert r['peak_memory_mb'] > 0
    skipped = {s['what'] for s in result['skipped']}
    assert 'backend triton' in skipped  # CPU without the interpreter


def test_a_failing_check_exits_one(gpu_check, monkeypatch, capsys):
    # The checks can fail: with a zero tolerance the bf16 errors exceed it.
    monkeypatch.setattr(gpu_check, 'TOLS', {'float32': 0.0, 'bfloat16': 0.0})
    code = gpu_check.main(['--dry-run', '--skip', 'golden', 'timing', 'train'])
    assert code == 1
    assert 'FAILED' in capsys.readouterr().out
