import os
import os.path as osp
import uuid
from itertools import chain, zip_longest

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import zeromamba_mm.evaluation.metrics.gzsl_metric as gzsl_module
from zeromamba_mm.evaluation import (GZSLMetric, best_gamma_on_curve,
                                     gzsl_accuracy, seen_unseen_curve)
from zeromamba_mm.registry import METRICS
from zeromamba_mm.structures import OperatingPoint

GOLDEN = osp.join(
    osp.dirname(__file__), 'data', 'golden', 'zeromamba_head_dev.pth')

# Same hand-checked case as in test_evaluation_functional.py; class 4 is a
# seen class without any test sample.
SCORES = np.array([
    [2.0, 1.0, 1.5, 0.0, -9.0],
    [0.0, 1.0, 1.2, 0.0, -9.0],
    [0.0, 3.0, 0.0, 0.0, -9.0],
    [3.0, 0.0, 2.0, 1.0, -9.0],
    [0.0, 0.0, 1.0, 2.0, -9.0],
    [1.0, 0.0, 2.0, 0.0, -9.0],
])
TARGET = np.array([0, 1, 1, 2, 3, 3])
META = dict(
    classes=('c0', 'c1', 'c2', 'c3', 'c4'),
    seen_classes=np.array([0, 1, 4]),
    unseen_classes=np.array([2, 3]),
    class_attributes=np.eye(5, dtype=np.float32))


def make_samples(scores, target, indices=None, as_dict=False, paths=None):
    samples = []
    for i, (score, label) in enumerate(zip(scores, target)):
        sample = DataSample().set_gt_label(int(label)).set_pred_score(
            torch.as_tensor(score, dtype=torch.float32))
        meta = dict(sample_idx=i if indices is None else int(indices[i]))
        if paths is not None:
            meta['img_path'] = paths[i]
        sample.set_metainfo(meta)
        samples.append(sample.to_dict() if as_dict else sample)
    return samples


def run_metric(metric, scores=SCORES, target=TARGET, meta=META, **kwargs):
    metric.dataset_meta = meta
    metric.process(None, make_samples(scores, target, **kwargs))
    return metric.evaluate(len(target))


@pytest.fixture
def hub():
    # A fresh current MessageHub per test: runtime info does not leak.
    return MessageHub.get_instance(f'test_gzsl_{uuid.uuid4().hex}')


@pytest.fixture
def logs(monkeypatch):
    lines = []

    def record(msg, logger=None, level=None):
        lines.append(msg)

    monkeypatch.setattr(gzsl_module, 'print_log', record)
    return lines


def test_registered_and_hand_computed_values(hub, logs):
    assert METRICS.get('GZSLMetric') is GZSLMetric
    metric = METRICS.build(
        dict(type='zeromamba_mm.GZSLMetric', gamma=1.2, score_space='raw'))
    res = run_metric(metric, as_dict=True)
    # Percent, like mmpretrain. See the functional test for the hand
    # computation; class 4 (no sample) is skipped, not counted as 0.
    assert list(res)[0] == 'gzsl/H'  # save_best='auto' picks H
    assert res['gzsl/U'] == pytest.approx(75.0)
    assert res['gzsl/S'] == pytest.approx(25.0)
    assert res['gzsl/H'] == pytest.approx(37.5)
    assert res['zsl/top1'] == pytest.approx(75.0)
    assert res['gzsl/AUSUC'] == pytest.approx(37.5)
    assert res['gzsl/gamma'] == 1.2
    assert res['gzsl/num_samples'] == 6
    # The oracle sweep (paper protocol): on γ in (-2, -0.2) samples 4 (right)
    # and maybe 5 (wrong either way) go to unseen classes: U = 25, S = 100,
    # H = 40; the reported γ is the middle of that run.
    assert res['gzsl/H_best_gamma'] == pytest.approx(40.0)
    assert res['gzsl/best_gamma'] == pytest.approx(-1.1)
    best = gzsl_accuracy(SCORES, TARGET, [0, 1, 4], [2, 3],
                         res['gzsl/best_gamma'], 'raw')
    assert 100 * best['H'] == pytest.approx(40.0)
    assert any('protocol=paper' in line and 'oracle' in line for line in logs)
    assert any("['c4']" in line and 'no sample' in line
               and 'label space of 5 classes' in line for line in logs)


def test_both_score_spaces_and_datasample_input(hub, logs):
    soft = run_metric(GZSLMetric(gamma=0.3))  # DataSample objects
    raw = run_metric(GZSLMetric(gamma=0.3, score_space='raw'), as_dict=True)
    assert (soft['gzsl/U'], soft['gzsl/S'], soft['gzsl/H']) == pytest.approx(
        (25.0, 25.0, 25.0))
    assert (raw['gzsl/U'], raw['gzsl/S'], raw['gzsl/H']) == pytest.approx(
        (25.0, 75.0, 37.5))
    # T1 does not depend on the score space.
    assert soft['zsl/top1'] == raw['zsl/top1'] == pytest.approx(75.0)


def test_empty_classes_reported_once(hub, logs):
    metric = GZSLMetric()
    run_metric(metric)
    run_metric(metric)
    warned = [line for line in logs if 'no sample' in line]
    assert len(warned) == 1 and "['c4']" in warned[0]


def test_partial_split_reports_what_exists(hub, logs):
    seen_only = np.isin(TARGET, [0, 1])
    res = run_metric(GZSLMetric(), SCORES[seen_only], TARGET[seen_only])
    assert 'gzsl/H' not in res and 'gzsl/U' not in res
    assert 'zsl/top1' not in res and 'gzsl/AUSUC' not in res
    assert res['gzsl/S'] == pytest.approx(75.0)
    assert any('no sample of a unseen class' in line for line in logs)


def test_bad_inputs(hub):
    with pytest.raises(ValueError, match='protocol'):
        GZSLMetric(protocol='oracle')
    with pytest.raises(ValueError, match='score_space'):
        GZSLMetric(score_space='logit')
    with pytest.raises(ValueError, match="protocol='clean'"):
        GZSLMetric(gamma='selected')
    with pytest.raises(ValueError, match='sweep'):
        GZSLMetric(gamma='best')
    with pytest.raises(ValueError, match='dataset_meta'):
        GZSLMetric().compute_metrics([])
    meta = dict(META, classes=('a', 'b'))
    with pytest.raises(ValueError, match='all classes'):
        run_metric(GZSLMetric(), meta=meta)
    meta = dict(META, seen_classes=np.array([0, 4]))
    with pytest.raises(ValueError, match='outside the seen and unseen'):
        run_metric(GZSLMetric(), meta=meta)
    metric = GZSLMetric()
    # Mixed-precision outputs are kept as float32.
    metric.process(
        None,
        [dict(pred_score=torch.ones(5, dtype=torch.bfloat16), gt_label=1)])
    assert metric.results[0]['pred_score'].dtype == np.float32
    with pytest.raises(KeyError, match='pred_score'):
        metric.process(None, [dict(gt_label=torch.tensor([1]))])


def test_evaluator_with_dataset_meta(hub):
    evaluator = Evaluator(
        dict(type='zeromamba_mm.GZSLMetric', gamma=0.3, prefix='zsl_test'))
    evaluator.dataset_meta = META
    samples = make_samples(SCORES, TARGET)
    evaluator.process(samples[:4])
    evaluator.process(samples[4:])
    res = evaluator.evaluate(len(samples))
    # The prefix goes before the groups.
    assert res['zsl_test/gzsl/H'] == pytest.approx(25.0)
    assert res['zsl_test/zsl/top1'] == pytest.approx(75.0)
    assert res['zsl_test/gzsl/num_samples'] == 6


def test_golden_parity(hub):
    golden = torch.load(GOLDEN, weights_only=True)
    case = golden['metric']
    att = golden['att'].double()
    scores = torch.cat([case['feats_seen'], case['feats_unseen']]) @ att.T
    target = torch.cat([case['y_seen'], case['y_unseen']])
    meta = dict(
        classes=tuple(f'class{i}' for i in range(att.shape[0])),
        seen_classes=golden['seen'].numpy(),
        unseen_classes=golden['unseen'].numpy())
    for gamma, (u, s, h) in case['gzsl'].items():
        res = run_metric(
            GZSLMetric(gamma=gamma), scores.numpy(), target.numpy(), meta)
        # float32 pred_score (as the model gives) vs the authors' float64.
        assert res['gzsl/U'] == pytest.approx(100 * u, abs=1e-6)
        assert res['gzsl/S'] == pytest.approx(100 * s, abs=1e-6)
        assert res['gzsl/H'] == pytest.approx(100 * h, abs=1e-6)
        assert res['zsl/top1'] == pytest.approx(100 * case['czsl'], abs=1e-6)


def _two_ranks(scores, target, size):
    """Split like mmengine's DefaultSampler: round robin, padded."""
    indices = list(range(size))
    per_rank = -(-size // 2)
    indices += indices[:2 * per_rank - size]  # padding repeats the start
    parts = []
    for rank in range(2):
        metric = GZSLMetric()
        mine = indices[rank::2]
        metric.process(
            None, make_samples(scores[mine], target[mine], mine, as_dict=True))
        parts.append(metric.results)
    return parts


def test_distributed_collect_drops_padding(hub, logs, monkeypatch):
    rng = np.random.default_rng(0)
    size = 7
    scores = rng.normal(size=(size, 5))
    target = np.array([0, 1, 2, 3, 0, 2, 1])
    parts = _two_ranks(scores, target, size)

    def collect(results, size, device, tmpdir=None):
        # What collect_results_cpu does on rank 0: interleave, truncate.
        merged = [r for r in chain.from_iterable(zip_longest(*parts)) if r]
        return merged[:size]

    monkeypatch.setattr('mmengine.evaluator.metric.collect_results', collect)
    metric = GZSLMetric()
    metric.dataset_meta = META
    res = metric.evaluate(size)
    ref = run_metric(GZSLMetric(), scores, target)
    assert res.pop('gzsl/operating_point') == ref.pop('gzsl/operating_point')
    assert res == pytest.approx(ref)
    assert res['gzsl/num_samples'] == size
    assert not any('duplicated' in line for line in logs)


def test_distributed_padding_leak_is_deduplicated(hub, logs, monkeypatch):
    rng = np.random.default_rng(1)
    size = 7
    scores = rng.normal(size=(size, 5))
    target = np.array([0, 1, 2, 3, 0, 2, 1])
    parts = _two_ranks(scores, target, size)
    # A sampler that is not round robin: the padding survives truncation.
    monkeypatch.setattr('mmengine.evaluator.metric.collect_results',
                        lambda results, size, *a, **k: parts[0] + parts[1])
    metric = GZSLMetric()
    metric.dataset_meta = META
    res = metric.evaluate(size)
    ref = run_metric(GZSLMetric(), scores, target)
    assert res['gzsl/num_samples'] == size
    assert res['gzsl/H'] == pytest.approx(ref['gzsl/H'])
    assert res['gzsl/AUSUC'] == pytest.approx(ref['gzsl/AUSUC'])
    assert any('dropped 1 duplicated' in line for line in logs)

    # Truncation that lost a real sample is reported too.
    monkeypatch.setattr('mmengine.evaluator.metric.collect_results',
                        lambda results, size, *a, **k: parts[0])
    metric.evaluate(size)
    assert any('4 distinct samples but the dataset has 7' in line
               for line in logs)


def test_dedupe_key_and_conflicts(hub):
    # ConcatDataset repeats sample_idx across parts but not img_path.
    paths = [f'part{i // 3}/img{i % 3}.jpg' for i in range(6)]
    indices = [0, 1, 2, 0, 1, 2]
    metric = GZSLMetric()
    res = run_metric(metric, indices=indices, paths=paths)
    assert res['gzsl/num_samples'] == 6
    with pytest.raises(ValueError, match='share sample_idx=0'):
        run_metric(GZSLMetric(), indices=indices)


def test_clean_protocol_sweep_and_selected_gamma(hub, logs):
    rng = np.random.default_rng(3)
    val_scores = rng.normal(size=(40, 5))
    val_target = rng.choice([0, 1, 2, 3], size=40)
    val = GZSLMetric(protocol='clean')  # gamma='sweep'
    res = run_metric(val, val_scores, val_target)
    curve = seen_unseen_curve(
        val_scores.astype(np.float32), val_target, [0, 1, 4], [2, 3])
    best = best_gamma_on_curve(curve)
    assert res['gzsl/gamma'] == pytest.approx(best['gamma'])
    assert res['gzsl/H'] == pytest.approx(100 * best['H'])
    assert 'gzsl/H_best_gamma' not in res  # no oracle keys off 'paper'
    assert any('protocol=clean' in line for line in logs)
    # No side effects: nothing written to the message hub.
    assert hub.runtime_info == {}

    test = GZSLMetric(protocol='clean', gamma='selected')
    test.set_operating_point(
        OperatingPoint(best['gamma'], 'softmax', 'clean', 'by a test'))
    out = run_metric(test)
    assert out['gzsl/gamma'] == best['gamma']
    ref = gzsl_accuracy(SCORES, TARGET, [0, 1, 4], [2, 3], best['gamma'])
    assert out['gzsl/H'] == pytest.approx(100 * ref['H'])
    assert any('by a test' in line for line in logs)
    # The metric publishes the point in force.
    assert out['gzsl/operating_point'] == OperatingPoint(
        best['gamma'], 'softmax', 'clean', 'by a test').to_meta()
    with pytest.raises(ValueError, match="score_space='softmax'"):
        GZSLMetric(
            protocol='clean', gamma='selected',
            score_space='raw').set_operating_point(
                OperatingPoint(0.1, 'softmax', 'clean'))


def test_selected_gamma_without_a_gamma_fails(hub):
    metric = GZSLMetric(protocol='clean', gamma='selected')
    with pytest.raises(
            RuntimeError, match=r'OperatingPointHook.*gamma=<float>'):
        run_metric(metric)


def test_metric_has_no_side_effects(hub, tmp_path, monkeypatch):
    """No file (no curve_dir any more), nothing in the message hub; the
    published point is the configured one."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TypeError, match='curve_dir'):
        GZSLMetric(gamma=0.3, curve_dir=str(tmp_path))
    metric = GZSLMetric(gamma=0.3, selected_on='a test config')
    metric.return_curve = True
    res = run_metric(metric)
    assert list(tmp_path.iterdir()) == []
    assert hub.runtime_info == {}
    assert res['gzsl/operating_point'] == OperatingPoint(
        0.3, 'softmax', 'paper', 'a test config').to_meta()
    assert metric.configured_point().to_meta() == res['gzsl/operating_point']
    assert res['gzsl/curve']['operating_point']['gamma'] == 0.3


def _dist_worker(rank, port, size, out):
    import torch.distributed as dist
    from mmengine.dataset import DefaultSampler
    dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        rng = np.random.default_rng(5)
        scores = rng.normal(size=(size, 5))
        target = np.arange(size) % 4
        metric = GZSLMetric(gamma=0.1)
        metric.dataset_meta = META
        # DefaultSampler pads rank 1 with sample 0 (size is odd).
        for i in DefaultSampler(list(range(size)), shuffle=False):
            metric.process(
                None,
                make_samples(scores[[i]], target[[i]], [i], as_dict=True))
        res = metric.evaluate(size)
        torch.save(res, f'{out}.{rank}')
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_real_two_process_evaluation(hub, tmp_path):
    import socket

    import torch.multiprocessing as mp
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    size = 11
    out = str(tmp_path / 'res.pth')
    mp.start_processes(
        _dist_worker, args=(port, size, out), nprocs=2, start_method='fork')
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(size, 5))
    ref = run_metric(GZSLMetric(gamma=0.1), scores, np.arange(size) % 4)
    for rank in range(2):  # the result is broadcast to every rank
        res = torch.load(f'{out}.{rank}', weights_only=True)
        assert res.pop('gzsl/operating_point') == ref['gzsl/operating_point']
        assert res == pytest.approx({
            k: v
            for k, v in ref.items() if k != 'gzsl/operating_point'
        })
        assert res['gzsl/num_samples'] == size


def test_reads_the_class_semantics_of_the_dataset(hub):
    """``dataset_meta['class_semantics']`` (a ClassSemantics; a stand-in
    with its fields here) wins over the older keys."""
    from types import SimpleNamespace
    semantics = SimpleNamespace(
        seen_classes=np.array([0, 1, 4]),
        unseen_classes=np.array([2, 3]),
        class_names=('c0', 'c1', 'c2', 'c3', 'c4'))
    # Keys that disagree: the semantics must be used.
    meta = dict(
        class_semantics=semantics,
        seen_classes=[0],
        unseen_classes=[1, 2, 3, 4])
    res = run_metric(GZSLMetric(gamma=0.3), meta=meta)
    ref = run_metric(GZSLMetric(gamma=0.3))
    assert res['gzsl/H'] == pytest.approx(ref['gzsl/H'])
    assert res['gzsl/U'] == pytest.approx(ref['gzsl/U'])
