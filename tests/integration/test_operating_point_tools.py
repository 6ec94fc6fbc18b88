"""One operating point from training to test and inference (issue 15).

The demo model of ``conftest.trained_demo`` is trained once; training kept
its operating point (γ, score space, protocol) in the checkpoint. Then:
``tools/test.py`` scores the test images at that point and
``tools/infer.py`` with no flag predicts, for every test image, the class the
metric counted for it (calibrated stacking re-derived here with plain loops
from ``tools/test.py``'s dump). Both tools print the point in their header,
and flags override it.
"""
import glob
import json
import math
import os.path as osp
import re

import pytest
import torch

from .conftest import DEMO_CONFIG, demo_options, run_tool
from .recompute import load_dump

HEADER = re.compile(r'^operating point: γ=(\S+), score space (\w+), protocol '
                    r'(\w+) \(from (.*)\)$')


def header(stdout: str):
    lines = [ln for ln in stdout.splitlines() if HEADER.match(ln)]
    assert lines, f'no operating-point header in:\n{stdout[-2000:]}'
    gamma, space, protocol, source = HEADER.match(lines[0]).groups()
    return float(gamma), space, protocol, source


def calibrated_class(scores, seen, label_space, gamma, score_space) -> int:
    """argmax_c [s(x, c) - γ·1(c ∈ seen)] over the label space, by hand."""
    values = {c: float(scores[c]) for c in label_space}
    if score_space == 'softmax':
        top = max(values.values())
        exp = {c: math.exp(v - top) for c, v in values.items()}
        total = sum(exp.values())
        values = {c: e / total for c, e in exp.items()}
    shifted = {c: v - (gamma if c in seen else 0.0) for c, v in values.items()}
    return max(sorted(shifted), key=lambda c: shifted[c])


@pytest.fixture(scope='module')
def tested(trained_demo, demo_root, tmp_path_factory):
    """``tools/test.py`` on the last checkpoint, with --out and --curve."""
    work = tmp_path_factory.mktemp('op_test')
    dump = str(work / 'predictions.pkl')
    curves = str(work / 'curves')
    result = run_tool([
        'tools/test.py', DEMO_CONFIG, trained_demo['last'], '--work-dir',
        str(work / 'run'), '--out', dump, '--curve', curves, '--cfg-options'
    ] + demo_options(demo_root))
    return dict(stdout=result.stdout, dump=dump, curves=curves)


def test_training_keeps_the_operating_point(trained_demo):
    from zeromamba_mm.structures import OperatingPoint
    meta = torch.load(trained_demo['last'], weights_only=False)['meta']
    point = OperatingPoint.from_meta(meta['zsl_operating_point'])
    # The demo config: paper protocol, fixed γ = 0.7 in softmax space.
    assert (point.gamma, point.score_space, point.protocol) == (0.7, 'softmax',
                                                                'paper')
    assert 'config' in point.selected_on
    assert 'zsl_selected_gamma' not in meta


def test_infer_default_top1_is_the_calibrated_prediction_of_test(
        trained_demo, demo_root, tested, tmp_path):
    from zeromamba_mm.datasets import ZSLDataset
    gamma, space, protocol, source = header(tested['stdout'])
    assert (gamma, space, protocol) == (0.7, 'softmax', 'paper')
    assert trained_demo['last'] in source  # it came with the file ...
    assert 'training config' in source  # ... which says where it is from
    logged = re.search(r'gzsl/gamma: (\S+)', tested['stdout'])
    assert float(logged.group(1)) == pytest.approx(0.7)

    meta = ZSLDataset(
        data_root=demo_root,
        split='test',
        path_preset='DEMO',
        img_prefix='images').metainfo
    seen = {int(c) for c in meta['seen_classes']}
    label_space = sorted(seen | {int(c) for c in meta['unseen_classes']})
    names = list(meta['classes'])
    samples = load_dump(tested['dump'])
    expected = {
        osp.basename(s['img_path']):
        names[calibrated_class(s['pred_score'], seen, label_space, gamma,
                               space)]
        for s in samples
    }
    assert len(expected) == len(samples) > 50
    # The metric's number agrees with these predictions (its U on them).
    images = sorted(s['img_path'] for s in samples)
    out = str(tmp_path / 'infer.json')
    result = run_tool(['tools/infer.py', DEMO_CONFIG, trained_demo['last']] +
                      images +
                      ['--out', out, '--batch-size', '16', '--topk', '1'])
    assert header(result.stdout)[:3] == (0.7, 'softmax', 'paper')
    with open(out) as f:
        records = json.load(f)['results']
    got = {osp.basename(r['image']): r['pred_class'] for r in records}
    mismatched = [k for k in expected if got[k] != expected[k]]
    assert not mismatched, mismatched[:5]
    # The image: an unseen class, now ranked first.
    triangle = [k for k in got if k.startswith('triangle_blue_dots_large')]
    for key in triangle:
        assert got[key] == expected[key]


def test_flags_override_and_legacy_checkpoints(trained_demo, tested, tmp_path):
    samples = load_dump(tested['dump'])[:4]
    images = [s['img_path'] for s in samples]
    out = str(tmp_path / 'raw.json')
    result = run_tool([
        'tools/infer.py', DEMO_CONFIG, trained_demo['last'], *images,
        '--gamma', '0', '--score-space', 'raw', '--out', out
    ])
    gamma, space, _, source = header(result.stdout)
    assert (gamma, space) == (0.0, 'raw') and '--gamma' in source
    with open(out) as f:
        records = json.load(f)['results']
    for sample, record in zip(samples, records):
        raw = [float(v) for v in sample['pred_score']]
        assert record['pred_label'] == max(
            range(len(raw)), key=lambda c: raw[c])

    # An older checkpoint (legacy selected γ) and bare weights.
    from zeromamba_mm.apis import ZSLInferencer
    checkpoint = torch.load(trained_demo['last'], weights_only=False)
    meta = dict(checkpoint['meta'])
    meta.pop('zsl_operating_point')
    meta['zsl_selected_gamma'] = dict(
        gamma=0.5, score_space='softmax', val_H=10.0, epoch=4)
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(dict(state_dict=checkpoint['state_dict'], meta=meta), legacy)
    point = ZSLInferencer(DEMO_CONFIG, legacy, device='cpu').operating_point
    assert (point.gamma, point.protocol) == (0.5, 'clean')
    assert 'epoch 4' in point.selected_on
    bare = str(tmp_path / 'bare.pth')
    torch.save(checkpoint['state_dict'], bare)
    point = ZSLInferencer(
        DEMO_CONFIG,
        bare,
        device='cpu',
        class_attributes=meta['dataset_meta']['class_attributes'],
        class_names=meta['dataset_meta']['classes'],
        seen_classes=meta['dataset_meta']['seen_classes']).operating_point
    assert (point.gamma, point.score_space) == (0.7, 'softmax')
    assert "config's test_evaluator" in point.selected_on
    assert 'keeps no operating point' in point.selected_on


def test_test_tool_draws_the_curve_and_takes_flags(trained_demo, demo_root,
                                                   tested, tmp_path):
    pngs = glob.glob(osp.join(tested['curves'], '*.png'))
    jsons = glob.glob(osp.join(tested['curves'], '*.json'))
    assert len(pngs) == len(jsons) == 1
    with open(pngs[0], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open(jsons[0]) as f:
        record = json.load(f)
    assert record['operating_point']['gamma'] == pytest.approx(0.7)
    logged = float(re.search(r'gzsl/AUSUC: (\S+)', tested['stdout']).group(1))
    assert record['ausuc'] == pytest.approx(logged, abs=0.006)

    result = run_tool([
        'tools/test.py', DEMO_CONFIG, trained_demo['last'], '--work-dir',
        str(tmp_path), '--gamma', '0.25', '--curve', tested['curves'],
        '--cfg-options'
    ] + demo_options(demo_root))
    gamma, space, _, source = header(result.stdout)
    assert (gamma, space) == (0.25, 'softmax') and '--gamma' in source
    assert float(re.search(r'gzsl/gamma: (\S+)',
                           result.stdout).group(1)) == pytest.approx(0.25)
    # A second curve under a new name; the first is kept.
    assert len(glob.glob(osp.join(tested['curves'], '*.png'))) == 2
    with open(jsons[0]) as f:
        assert json.load(f) == record
