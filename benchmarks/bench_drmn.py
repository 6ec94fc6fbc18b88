"""DRMN vs ZeroMamba: training step time and peak memory, side by side.

Both models run on the same backbone (a small VMamba by default, so that it
fits a CPU) and the same batch; the script times full training steps
(forward, backward, optimiser) of each, alternating them so that both see
the same machine load, and reports SIT's share of DRMN's step (DRMN with
SIT vs the same model with ``use_sit=False``). Peak memory is CUDA's
``max_memory_allocated`` on a GPU, and the peak resident set growth of the
process over its built model (sampled from ``/proc/self/statm``; each model
runs in its own subprocess for this figure) otherwise.

Example::

    python benchmarks/bench_drmn.py --batch 8 --img 128 --iters 5
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import torch

ARCH = dict(
    depths=[1, 1, 2, 1],
    dims=[24, 48, 96, 192],
    ssm_ratio=2.0,
    d_state=1,
    dt_rank='auto',
    mlp_ratio=4.0)
NUM_CLASSES, NUM_SEEN, NUM_ATTRIBUTES = 24, 18, 20


def build(kind: str, device: str):
    import zeromamba_mm  # noqa: F401
    from zeromamba_mm.registry import MODELS
    channels = ARCH['dims']
    backbone = dict(
        type='zeromamba_mm.VMamba',
        arch=ARCH,
        final_norm=False,
        drop_path_rate=0.0)
    if kind == 'zeromamba':
        cfg = dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(backbone, out_indices=(3, )),
            neck=dict(
                type='zeromamba_mm.ZeroMambaNeck',
                in_channels=channels[3],
                imagenet_classes=128),
            head=dict(
                type='zeromamba_mm.ZeroMambaHead',
                num_attributes=NUM_ATTRIBUTES,
                in_channels=channels[3],
                imagenet_classes=128,
                mlp_hidden=128,
                attr_loss=dict(
                    type='zeromamba_mm.AttributeRegressionLoss',
                    loss_weight=0.1)))
    else:
        cfg = dict(
            type='zeromamba_mm.ZeroShotClassifier',
            backbone=dict(backbone, out_indices=(2, 3)),
            neck=dict(
                type='zeromamba_mm.MFFNeck',
                in_channels=(channels[2], channels[3])),
            head=dict(
                type='zeromamba_mm.DRMNHead',
                num_attributes=NUM_ATTRIBUTES,
                in_channels=channels[3],
                num_seen_classes=NUM_SEEN,
                proto_init='random',
                use_sit=(kind == 'drmn')))
    model = MODELS.build(cfg).to(device)
    model.init_weights()
    rng = np.random.default_rng(0)
    model.set_class_semantics(
        rng.random((NUM_CLASSES, NUM_ATTRIBUTES)),
        seen_classes=np.arange(NUM_SEEN),
        unseen_classes=np.arange(NUM_SEEN, NUM_CLASSES))
    return model


def make_batch(batch: int, img: int, device: str):
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    inputs = torch.randn(batch, 3, img, img, device=device)
    samples = [
        DataSample().set_gt_label(int(i % NUM_SEEN)) for i in range(batch)
    ]
    return inputs, samples


def step(model, optimizer, inputs, samples, device):
    losses = model(inputs, samples, mode='loss')
    loss = sum(v for k, v in losses.items() if k.startswith('loss'))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if device == 'cuda':
        torch.cuda.synchronize()


def time_models(kinds, args):
    device = args.device
    models = {k: build(k, device) for k in kinds}
    optims = {
        k: torch.optim.Adam(m.parameters(), lr=1e-4)
        for k, m in models.items()
    }
    inputs, samples = make_batch(args.batch, args.img, device)
    for kind in kinds:  # warm-up
        models[kind].train()
        step(models[kind], optims[kind], inputs, samples, device)
    times = {k: [] for k in kinds}
    for _ in range(args.iters):
        for kind in kinds:  # alternate: the same load for every model
            start = time.perf_counter()
            step(models[kind], optims[kind], inputs, samples, device)
            times[kind].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def peak_memory(kind, args):
    """Peak memory (MiB) of `--iters` training steps of one model."""
    device = args.device
    if device == 'cuda':
        model = build(kind, device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        inputs, samples = make_batch(args.batch, args.img, device)
        model.train()
        step(model, optimizer, inputs, samples, device)
        torch.cuda.reset_peak_memory_stats()
        step(model, optimizer, inputs, samples, device)
        return torch.cuda.max_memory_allocated() / 2**20
    out = subprocess.run(
        [sys.executable, __file__, '--rss-of', kind] + [
            f'--{k}={v}' for k, v in (('batch', args.batch), ('img', args.img),
                                      ('iters', 1), ('threads', args.threads))
        ],
        capture_output=True,
        text=True,
        check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['rss_mib']


def _current_rss_mib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def rss_of(kind, args):
    """Child process: peak RSS growth over the model's built state during
    two training steps (sampled every millisecond by a thread)."""
    model = build(kind, 'cpu')
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    inputs, samples = make_batch(args.batch, args.img, 'cpu')
    model.train()
    baseline = _current_rss_mib()
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _current_rss_mib())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(2):
        step(model, optimizer, inputs, samples, 'cpu')
    done.set()
    sampler.join()
    print(json.dumps(dict(rss_mib=peak[0] - baseline)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--img', type=int, default=128)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--rss-of', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_of:
        return rss_of(args.rss_of, args)
    kinds = ['zeromamba', 'drmn', 'drmn_no_sit']
    times = time_models(kinds, args)
    mem = {k: peak_memory(k, args) for k in ('zeromamba', 'drmn')}
    where = (
        torch.cuda.get_device_name() if args.device == 'cuda' else
        f'CPU, torch.set_num_threads({args.threads}), '
        f'{os.cpu_count()} cores visible (shared machines: compare '
        'the ratios, not the absolute times)')
    print(f'# {where}; VMamba {ARCH["dims"]}, batch {args.batch}, '
          f'{args.img}x{args.img}, median of {args.iters} steps')
    print(f'{"model":<12} {"step (s)":>9} {"peak mem (MiB)":>15}')
    print(f'{"ZeroMamba":<12} {times["zeromamba"]:9.3f} '
          f'{mem["zeromamba"]:15.1f}')
    print(f'{"DRMN":<12} {times["drmn"]:9.3f} {mem["drmn"]:15.1f}')
    ratio = times['drmn'] / times['zeromamba']
    print(f'DRMN / ZeroMamba: step time x{ratio:.2f}'
          f', peak memory x{mem["drmn"] / max(mem["zeromamba"], 1e-9):.2f}')
    share = 1 - times['drmn_no_sit'] / times['drmn']
    print(f'SIT share of the DRMN step: {100 * share:.1f}% '
          f'(DRMN without SIT: {times["drmn_no_sit"]:.3f} s)')


if __name__ == '__main__':
    main()
