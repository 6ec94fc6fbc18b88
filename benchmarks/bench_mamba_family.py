"""The Vision Mamba family side by side: time and memory ratios.

Rows (each pair measured in the same run, alternating the two sides so that
both see the same machine load):

1. ``scan2d``: V2M's 2-D scan (:class:`SS2DCorner2D`, 4 corners x 2 passes)
   vs VMamba's 4-direction cross scan (:class:`SS2D`) at the same
   (B, E, H, W), forward + backward of the scan core. Targets: <= 2.2x
   time, <= 2x memory.
2. ``dct``: GlobalMamba's DCT serialization (levels + shared patch
   embedding + resize) minus the plain patch embedding, as a share of a
   GlobalMamba-T* (Vim-S width) forward at 224. Target: <= 10 %.
3. ``vmamba_freq``: VMamba-S with ``serialization='dct'`` vs VMamba-S,
   forward at 224. Target: <= 1.4x.
4. ``vim_vit``: Vim-S vs mmpretrain's ViT-S/16 (width 384, 12 layers,
   ``deit-small``) forward at 224 and 448. Targets: <= 3x at 224, <= 2x
   at 448 (the ratio falls with the resolution: linear vs quadratic token
   mixing). Vim-S runs once per scan backend of ``--vim-backends``
   (default: the pure-PyTorch scan and the compiled CPU kernel, see
   ``ZEROMAMBA_CPU_SCAN``), all alternated with the one ViT-S.

Every ratio is printed next to its target with PASS or MISS.

Clock: on CPU the default is the process's CPU time (``--clock cpu``),
which on a machine shared with other jobs counts only the time this
process ran, not the time it waited for a core (with one thread it equals
the wall time on an idle machine); ``--clock wall`` measures wall time.
Cache and memory-bandwidth contention from other jobs still slow both
sides, the memory-bound scans more than the GEMM-bound ViT.

Memory is CUDA's ``max_memory_allocated`` on a GPU; on CPU it is the bytes
of the tensors autograd saves for backward (the activation memory of a
training step; weights excluded), for rows with a backward pass. Forward
rows on CPU report time only.

Example (CPU, one thread)::

    python benchmarks/bench_mamba_family.py --threads 1 --repeats 2
"""
import argparse
import time
from typing import Callable, List, Tuple

import torch


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument(
        '--clock',
        choices=('cpu', 'wall'),
        default=None,
        help='cpu: process CPU time (default on CPU); wall: wall time '
        '(default on CUDA)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument(
        '--scan-shape',
        type=int,
        nargs=4,
        default=(1, 192, 28, 28),
        metavar=('B', 'E', 'H', 'W'))
    parser.add_argument(
        '--backend',
        default='auto',
        help='selective-scan backend (default auto)')
    parser.add_argument(
        '--vim-backends',
        nargs='+',
        default=['torch', 'compiled'],
        help='scan backends of Vim-S in the vim_vit row, each measured '
        'beside the same ViT-S (default: torch compiled)')
    parser.add_argument(
        '--rows',
        nargs='+',
        default=['scan2d', 'dct', 'vmamba_freq', 'vim_vit'])
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[224, 448],
        help='image sizes of the vim_vit row')
    return parser.parse_args()


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


CLOCKS = dict(cpu=time.process_time, wall=time.perf_counter)
clock = time.perf_counter


def verdict(ratio: float, target: float) -> str:
    """'PASS' or 'MISS' for a ratio that should stay <= target."""
    return 'PASS' if ratio <= target else 'MISS'


def measure(fns: List[Callable[[], None]], device: str,
            repeats: int) -> List[Tuple[float, float]]:
    """(median seconds, peak bytes) of each fn, alternating them."""
    times = [[] for _ in fns]
    peaks = [0.0 for _ in fns]
    for fn in fns:  # warm-up (caches, kernels)
        fn()
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            if device.startswith('cuda'):
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            sync(device)
            start = clock()
            saved = fn()
            sync(device)
            times[i].append(clock() - start)
            if device.startswith('cuda'):
                peaks[i] = max(peaks[i],
                               torch.cuda.max_memory_allocated() - base)
            elif saved is not None:
                peaks[i] = max(peaks[i], saved)
    return [(sorted(t)[len(t) // 2], p) for t, p in zip(times, peaks)]


def saved_bytes_step(module_fn: Callable[[], torch.Tensor]) -> float:
    """Run forward + backward and return the bytes autograd saved."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module_fn()
    out.float().sum().backward()
    return float(total[0])


def forward_only(fn: Callable[[], torch.Tensor]) -> None:
    with torch.no_grad():
        fn()


def row_scan2d(args, device):
    from zeromamba_mm.models.backbones.vmamba_layers import SS2D
    from zeromamba_mm.models.backbones.vmamba_variants import SS2DCorner2D
    b, e, h, w = args.scan_shape
    x = torch.randn(b, e, h, w, device=device)
    cross = SS2D(e // 2, d_state=1, scan_backend=args.backend).to(device)
    two = SS2DCorner2D(e // 2, d_state=1, scan_backend=args.backend).to(device)
    res = measure([
        lambda: saved_bytes_step(lambda: cross.forward_core(x)),
        lambda: saved_bytes_step(lambda: two.forward_core(x))
    ], device, args.repeats)
    (t_c, m_c), (t_2, m_2) = res
    print(f'scan2d   (B,E,H,W)={tuple(args.scan_shape)} f+b: cross-scan '
          f'{t_c * 1e3:.1f} ms / {m_c / 2**20:.1f} MiB, 2-D scan '
          f'{t_2 * 1e3:.1f} ms / {m_2 / 2**20:.1f} MiB -> time '
          f'{t_2 / t_c:.2f}x (target <= 2.2x: {verdict(t_2 / t_c, 2.2)}), '
          f'memory {m_2 / m_c:.2f}x (target <= 2x: '
          f'{verdict(m_2 / m_c, 2.0)})')


def row_dct(args, device):
    from zeromamba_mm.models.backbones import Vim
    model = Vim('globalmamba-t*', scan_backend=args.backend).to(device).eval()
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    res = measure([
        lambda: forward_only(lambda: model.tokenize(x)),
        lambda: forward_only(lambda: model.patch_embed(x)),
        lambda: forward_only(lambda: model(x)),
    ], device, args.repeats)
    (t_tok, _), (t_patch, _), (t_all, _) = res
    share = (t_tok - t_patch) / t_all
    print(f'dct      GlobalMamba-T* (Vim-S width) at 224, batch {args.batch}: '
          f'forward {t_all * 1e3:.1f} ms, DCT serialization '
          f'{t_tok * 1e3:.1f} ms vs patch embedding {t_patch * 1e3:.1f} ms '
          f'-> overhead {100 * share:.1f}% of the forward (target <= 10%: '
          f'{verdict(share, 0.1)})')


def row_vmamba_freq(args, device):
    from zeromamba_mm.models.backbones import VMamba
    plain = VMamba('small', scan_backend=args.backend).to(device).eval()
    freq = VMamba(
        'small', serialization='dct',
        scan_backend=args.backend).to(device).eval()
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    (t_p, _), (t_f, _) = measure([
        lambda: forward_only(lambda: plain(x)),
        lambda: forward_only(lambda: freq(x))
    ], device, args.repeats)
    print(f'vmamba_freq VMamba-S at 224, batch {args.batch}: forward '
          f'{t_p * 1e3:.1f} ms, with serialization=\'dct\' '
          f'{t_f * 1e3:.1f} ms -> {t_f / t_p:.2f}x (target <= 1.4x: '
          f'{verdict(t_f / t_p, 1.4)})')


# Vim-S / ViT-S/16 forward-time targets per image size.
VIM_VIT_TARGETS = {224: 3.0, 448: 2.0}


def row_vim_vit(args, device):
    from mmpretrain.models import VisionTransformer

    from zeromamba_mm.models.backbones import Vim
    from zeromamba_mm.ops import backend_unavailable_reason
    probe = torch.zeros(1, device=device)
    backends = []
    for backend in args.vim_backends:
        reason = (None if backend == 'auto' else backend_unavailable_reason(
            backend, probe))
        if reason is None:
            backends.append(backend)
        else:
            print(f'vim_vit  scan backend {backend!r} skipped: {reason}')
    for size in args.sizes:
        vims = [
            Vim('vim-small', img_size=size,
                scan_backend=backend).to(device).eval()
            for backend in backends
        ]
        for vim in vims[1:]:  # the same weights for every backend
            vim.load_state_dict(vims[0].state_dict())
        vit = VisionTransformer(
            'deit-small', img_size=size, patch_size=16).to(device)
        vit.eval()  # mmpretrain's BaseBackbone.train returns None
        x = torch.randn(args.batch, 3, size, size, device=device)
        fns = [(lambda m=vim: forward_only(lambda: m(x))) for vim in vims]
        times = measure(fns + [lambda: forward_only(lambda: vit(x))],
                        device, args.repeats)
        t_t = times[-1][0]
        tokens = (size // 16)**2
        target = VIM_VIT_TARGETS.get(size)
        for backend, (t_m, _) in zip(backends, times):
            goal = ('' if target is None else
                    f' (target <= {target:g}x: {verdict(t_m / t_t, target)})')
            print(f'vim_vit  {size}x{size} ({tokens} tokens), batch '
                  f'{args.batch}, scan {backend}: Vim-S {t_m * 1e3:.1f} ms, '
                  f'ViT-S/16 {t_t * 1e3:.1f} ms -> Vim/ViT '
                  f'{t_m / t_t:.2f}x{goal}; images/s {args.batch / t_m:.2f} '
                  f'vs {args.batch / t_t:.2f}')


def main():
    global clock
    args = parse_args()
    name = args.clock or ('wall' if args.device.startswith('cuda') else 'cpu')
    clock = CLOCKS[name]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f'device {args.device}, torch threads {torch.get_num_threads()}, '
          f'repeats {args.repeats} (median), clock {name}, scan backend '
          f'{args.backend}')
    rows = dict(
        scan2d=row_scan2d,
        dct=row_dct,
        vmamba_freq=row_vmamba_freq,
        vim_vit=row_vim_vit)
    for name in args.rows:
        if name not in rows:
            raise SystemExit(f'unknown row {name!r}; choose from '
                             f'{sorted(rows)}')
        rows[name](args, args.device)


if __name__ == '__main__':
    main()
