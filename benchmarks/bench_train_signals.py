"""Training-signal parts vs the plain ZeroMamba head: step time and memory.

Builds the demo models (``configs/zeromamba_demo.py`` and its IDML, OPERA
and PDML-inspired variants in ``configs/demo/``) on synthetic inputs and
times full training steps (forward, backward, optimiser) of each,
alternating the models step by step so that all see the same machine load.
Peak memory is the growth of the resident set over the built model during
the steps, each model in its own subprocess (sampled from
``/proc/self/statm``). CPU, one thread.

Example::

    python benchmarks/bench_train_signals.py --batch 16 --iters 5
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

CONFIGS = {
    'plain': 'configs/zeromamba_demo.py',
    'idml': 'configs/demo/zeromamba_demo_idml.py',
    'opera': 'configs/demo/zeromamba_demo_opera.py',
    'pdml': 'configs/demo/zeromamba_demo_pdml.py',
}
NUM_CLASSES, NUM_SEEN, NUM_ATTRIBUTES = 24, 18, 20


def build(part: str, batch: int, img: int):
    """Model, optimiser and one synthetic training batch of a part."""
    from mmengine.config import Config
    from mmengine.logging import MessageHub
    from mmengine.registry import init_default_scope
    from mmpretrain.structures import DataSample

    from zeromamba_mm.registry import MODELS
    cfg = Config.fromfile(CONFIGS[part])
    init_default_scope(cfg.default_scope)
    head = cfg.model.head
    (head.head if 'head' in head else head).word_vectors = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.set_class_semantics(
        torch.nn.functional.normalize(
            torch.rand(NUM_CLASSES, NUM_ATTRIBUTES), dim=1),
        seen_classes=list(range(NUM_SEEN)))
    MessageHub.get_current_instance().update_info('max_iters', 1000)
    inputs = torch.randn(batch, 3, img, img)
    samples = []
    for i in range(batch):
        sample = DataSample().set_gt_label(i % NUM_SEEN)
        if part == 'opera':
            sample.set_field(
                [torch.randn(3, img // 2, img // 2) for _ in range(2)],
                'views',
                field_type='data')
        samples.append(sample)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    return model, optim, inputs, samples


def step(model, optim, inputs, samples) -> float:
    start = time.perf_counter()
    losses = model.loss(inputs, samples)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    optim.zero_grad()
    total.backward()
    optim.step()
    return time.perf_counter() - start


def rss_bytes() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def memory_worker(part: str, batch: int, img: int, iters: int) -> None:
    """Print the peak RSS growth (bytes) over the built model."""
    torch.set_num_threads(1)
    model, optim, inputs, samples = build(part, batch, img)
    base = rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    for _ in range(iters):
        step(model, optim, inputs, samples)
    done.set()
    thread.join()
    print(json.dumps(dict(peak=peak[0] - base)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--img', type=int, default=64)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--memory-worker', default=None)
    args = parser.parse_args()
    if args.memory_worker:
        memory_worker(args.memory_worker, args.batch, args.img, args.iters)
        return
    torch.set_num_threads(1)
    built = {part: build(part, args.batch, args.img) for part in CONFIGS}
    times = {part: [] for part in CONFIGS}
    for it in range(args.iters + 1):
        for part, parts in built.items():
            elapsed = step(*parts)
            if it:  # the first step warms up
                times[part].append(elapsed)
    memory = {}
    for part in CONFIGS:
        out = subprocess.run([
            sys.executable, __file__, '--memory-worker', part, '--batch',
            str(args.batch), '--img',
            str(args.img), '--iters',
            str(args.iters)
        ],
                             capture_output=True,
                             text=True,
                             check=True)
        memory[part] = json.loads(out.stdout.strip().splitlines()[-1])['peak']
    plain_t = np.median(times['plain'])
    print(f'batch {args.batch}, {args.img}x{args.img}, {args.iters} steps, '
          'CPU 1 thread; median step time, peak RSS growth')
    print(f'{"part":8s} {"step (s)":>9s} {"x plain":>8s} {"peak (MiB)":>11s} '
          f'{"x plain":>8s}')
    for part in CONFIGS:
        t = np.median(times[part])
        mem = memory[part] / 2**20
        ratio = memory[part] / max(memory['plain'], 1)
        print(f'{part:8s} {t:9.3f} {t / plain_t:8.2f} {mem:11.1f} '
              f'{ratio:8.2f}')


if __name__ == '__main__':
    main()
