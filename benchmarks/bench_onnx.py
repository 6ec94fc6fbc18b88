"""CPU latency of onnxruntime against PyTorch on the same exported model.

For VMamba-T (``configs/vmamba/vmamba-tiny_8xb128_in1k.py``) at 224 x 224
and the demo model (``configs/zeromamba_demo.py``, ZeroMamba on a small
VMamba, 64 x 64), both with seeded random weights, this script exports the
model with :func:`zeromamba_mm.deploy.export_onnx` (``--mode scores``,
batch 1) and times, side by side in one run, one image through

- PyTorch: the exported module itself (preprocessing, model, calibrated
  scores; the selective scan on its CPU backend), under ``no_grad``;
- onnxruntime: the ``.onnx`` file on the CPU execution provider,

with 1 thread and with all threads (``torch.set_num_threads`` /
``intra_op_num_threads``). Time is the median of ``--repeat`` calls after
``--warmup`` calls. Usage::

    python benchmarks/bench_onnx.py [--repeat 20] [--models demo vmamba-t]

Other jobs on the machine distort both columns; the ratio of the two, taken
in the same run, is the figure to read.
"""
import argparse
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODELS = {
    'vmamba-t': ('configs/vmamba/vmamba-tiny_8xb128_in1k.py', (224, 224)),
    'demo': ('configs/zeromamba_demo.py', (64, 64)),
}


def save_random_checkpoint(config: str, path: str) -> None:
    """Seeded random weights (and the demo's class layout) as a checkpoint.
    """
    from mmpretrain.apis import get_model

    from zeromamba_mm.apis.model_zoo import resolve_model
    cfg, _ = resolve_model(config, False)
    torch.manual_seed(0)
    model = get_model(cfg, pretrained=False, device='cpu')
    meta = {}
    if callable(getattr(model.head, 'set_class_semantics', None)):
        rng = np.random.default_rng(0)
        meta['dataset_meta'] = dict(
            class_attributes=rng.random((24, model.head.num_attributes)),
            classes=[f'class_{i}' for i in range(24)],
            seen_classes=list(range(18)))
    torch.save({'state_dict': model.state_dict(), 'meta': meta}, path)


def median_time(fn, warmup: int, repeat: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(name: str, folder: str, warmup: int, repeat: int) -> list:
    import onnxruntime as ort

    from zeromamba_mm.deploy import ExportableClassifier, export_onnx
    from zeromamba_mm.deploy.exporter import load_classifier
    config, shape = MODELS[name]
    config = osp.join(ROOT, config)
    ckpt = osp.join(folder, f'{name}.pth')
    out = osp.join(folder, f'{name}.onnx')
    save_random_checkpoint(config, ckpt)
    start = time.perf_counter()
    result = export_onnx(config, ckpt, out, shape=shape)
    export_s = time.perf_counter() - start
    point = result['metadata'].get('operating_point') or {}
    model = load_classifier(config, ckpt)[0]
    module = ExportableClassifier(model, 'scores', point.get('gamma', 0.),
                                  point.get('score_space', 'softmax')).eval()
    image = torch.rand(
        1, 3, *shape, generator=torch.Generator().manual_seed(0)) * 255
    feed = {'image': image.numpy()}
    rows = []
    for threads in (1, os.cpu_count()):
        torch.set_num_threads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        session = ort.InferenceSession(
            out, options, providers=['CPUExecutionProvider'])

        def run_torch():
            with torch.no_grad():
                module(image)

        torch_s = median_time(run_torch, warmup, repeat)
        ort_s = median_time(lambda: session.run(None, feed), warmup, repeat)
        rows.append((name, f'{shape[0]}x{shape[1]}', threads, torch_s, ort_s,
                     export_s))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--models',
        nargs='+',
        choices=sorted(MODELS),
        default=['vmamba-t', 'demo'])
    parser.add_argument('--repeat', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    rows = []
    with tempfile.TemporaryDirectory(prefix='bench_onnx_') as folder:
        for name in args.models:
            rows.extend(bench(name, folder, args.warmup, args.repeat))
    print(f'torch {torch.__version__}, onnxruntime '
          f'{__import__("onnxruntime").__version__}, {os.cpu_count()} CPUs, '
          f'median of {args.repeat} calls (batch 1)')
    print(f'{"model":<10} {"input":>8} {"threads":>7} {"pytorch ms":>11} '
          f'{"onnxrt ms":>10} {"pytorch/onnxrt":>15} {"export s":>9}')
    for name, size, threads, torch_s, ort_s, export_s in rows:
        print(f'{name:<10} {size:>8} {threads:>7} {1e3 * torch_s:>11.2f} '
              f'{1e3 * ort_s:>10.2f} {torch_s / ort_s:>15.2f} '
              f'{export_s:>9.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
