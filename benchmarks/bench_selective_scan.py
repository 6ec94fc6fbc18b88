"""Benchmark the selective-scan backends against the sequential reference
and against one ``torch.cumsum`` of the same size (a memory-bound floor).

Every row is measured in the same run, side by side: median wall time of
``--repeats`` calls (after one warm-up) for the forward (under no_grad) and
for forward + backward (gradients w.r.t. u, delta, A, B, C, D and
delta_bias, as in training). The floor for forward + backward is the
cumsum's own forward + backward. Inputs follow VMamba's call: G groups of
B/C (default 4, the four scan directions), d_state 1, softplus with bias.

Example::

    python benchmarks/bench_selective_scan.py
    python benchmarks/bench_selective_scan.py --sizes 1x384x3136 \\
        --repeats 10 --backends torch
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from zeromamba_mm.ops import backend_unavailable_reason, selective_scan


def parse_size(text: str):
    try:
        batch, channels, length = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'size {text!r} is not BATCHxDxL, e.g. 8x384x3136')
    return batch, channels, length


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], None], repeats: int,
              device: torch.device) -> float:
    fn()  # warm-up (and kernel compilation)
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def make_inputs(batch, channels, length, groups, d_state, device, dtype):
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device, dtype)

    return dict(
        u=rnd(batch, channels, length),
        delta=rnd(batch, channels, length, scale=0.5),
        A=-torch.rand(channels, d_state, generator=g).add(0.1).to(device),
        B=rnd(batch, groups, d_state, length),
        C=rnd(batch, groups, d_state, length),
        D=torch.randn(channels, generator=g).to(device),
        delta_bias=(torch.rand(channels, generator=g) * 4 - 6).to(device),
    )


def time_backend(x: Dict[str, torch.Tensor], backend: str, repeats: int,
                 device: torch.device) -> Dict[str, float]:
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in x.items()}

    def forward():
        with torch.no_grad():
            selective_scan(**x, delta_softplus=True, backend=backend)

    def forward_backward():
        y = selective_scan(**leaves, delta_softplus=True, backend=backend)
        y.backward(torch.ones_like(y))
        for v in leaves.values():
            v.grad = None

    return dict(
        fwd=median_ms(forward, repeats, device),
        fwd_bwd=median_ms(forward_backward, repeats, device))


def time_cumsum(x: Dict[str, torch.Tensor], repeats: int,
                device: torch.device) -> Dict[str, float]:
    u = x['u'].detach()
    leaf = u.clone().requires_grad_(True)

    def forward():
        torch.cumsum(u, dim=-1)

    def forward_backward():
        y = torch.cumsum(leaf, dim=-1)
        y.backward(torch.ones_like(y))
        leaf.grad = None

    return dict(
        fwd=median_ms(forward, repeats, device),
        fwd_bwd=median_ms(forward_backward, repeats, device))


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--sizes',
        nargs='+',
        type=parse_size,
        default=[(1, 384, 3136), (8, 384, 3136), (1, 384, 12544)],
        help='BATCHxDxL sizes (default: 1x384x3136 8x384x3136 1x384x12544)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='timed calls per measurement (median)')
    parser.add_argument(
        '--ref-repeats',
        type=int,
        default=1,
        help='timed calls of the (slow) sequential reference')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--groups', type=int, default=4, help='groups of B/C (4 in VMamba)')
    parser.add_argument('--d-state', type=int, default=1)
    parser.add_argument(
        '--dtype',
        default='float32',
        choices=['float32', 'float16', 'bfloat16'])
    parser.add_argument(
        '--backends',
        nargs='+',
        default=['ref', 'torch', 'triton', 'mamba'],
        help='backends to time; unavailable ones are reported and skipped')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch.set_num_threads (default: torch default)')
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print(f'device {device}, {torch.get_num_threads()} threads, torch '
          f'{torch.__version__}, dtype {args.dtype}, G={args.groups}, '
          f'N={args.d_state}; median of {args.repeats} '
          f'(reference: {args.ref_repeats}) after one warm-up')
    probe = torch.zeros(1, device=device, dtype=dtype)
    backends = []
    for name in args.backends:
        reason = backend_unavailable_reason(name, probe)
        if reason is None:
            backends.append(name)
        else:
            print(f'  skipping {name}: {reason}')

    header = (f'{"size (B, D, L)":<18} {"backend":<8} {"fwd ms":>9} '
              f'{"fwd+bwd ms":>11} {"ref/x fwd":>10} {"ref/x f+b":>10} '
              f'{"x/cumsum fwd":>13} {"x/cumsum f+b":>13}')
    print(header)
    print('-' * len(header))
    for batch, channels, length in args.sizes:
        x = make_inputs(batch, channels, length, args.groups, args.d_state,
                        device, dtype)
        floor = time_cumsum(x, args.repeats, device)
        rows = {}
        for name in backends:
            reps = args.ref_repeats if name == 'ref' else args.repeats
            rows[name] = time_backend(x, name, reps, device)
        ref = rows.get('ref')
        size = f'{batch}x{channels}x{length}'
        for name, t in list(rows.items()) + [('cumsum', floor)]:
            speed = ('{:>10.1f} {:>10.1f}'.format(
                ref['fwd'] / t['fwd'], ref['fwd_bwd'] /
                t['fwd_bwd']) if ref else f'{"-":>10} {"-":>10}')
            print(f'{size:<18} {name:<8} {t["fwd"]:>9.2f} '
                  f'{t["fwd_bwd"]:>11.2f} {speed} '
                  f'{t["fwd"] / floor["fwd"]:>13.1f} '
                  f'{t["fwd_bwd"] / floor["fwd_bwd"]:>13.1f}')
        print()


if __name__ == '__main__':
    main()
