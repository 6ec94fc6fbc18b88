"""CPU benchmark of the VMamba backbone: forward time and peak memory.

Measures ``zeromamba_mm.VMamba`` (with an average-pool + linear head, i.e.
the full ImageNet classifier) in inference mode on CPU for the chosen archs,
input sizes and batch sizes, and optionally the official VMamba code's
pure-torch path on the same weights.

Usage::

    python benchmarks/bench_vmamba_backbone.py \
        [--archs tiny small] [--sizes 224 448] [--batches 1 8] \
        [--repeat 3] [--skip small:448:8] \
        [--official-repo /work/external/VMamba] [--json OUT.json]

Every measurement runs in a fresh subprocess so that peak memory is its
own: *peak memory* is the growth of the process's peak resident set size
(``VmHWM`` of ``/proc/self/status``, reset through ``/proc/self/clear_refs``
just before the first forward) over its resident size at that moment, i.e.
the extra memory the forward passes need (activations and workspace, not
the weights). Where the reset is refused the lifetime peak
(``ru_maxrss``) is used and the JSON says so. *Time* is the median wall time of
``--repeat`` forwards after one warm-up forward, under ``torch.no_grad()``.

``--official-repo`` points at a checkout of github.com/MzeroMiko/VMamba
(it is imported from there, never copied into this project). Its
classification model cannot run on CPU as is; this script shims, *in its own
process only* (no file of the checkout is edited):

* ``timm`` and ``fvcore`` are imported at module level but only ``DropPath``
  / ``trunc_normal_`` are used: stub modules provide those when the
  packages are absent;
* ``cross_scan_fn`` / ``cross_merge_fn`` enter ``torch.cuda.device(x.device)``
  even for CPU tensors (which raises): the shim calls their torch autograd
  functions (``CrossScanF`` / ``CrossMergeF``) directly;
* without its CUDA extensions the official ``selective_scan_fn`` already
  falls back to its pure-torch ``selective_scan_torch``: that is the path
  measured.

Both models are built from the official model's seeded random weights
(converted with ``convert_official_vmamba``), and the parent reports the
largest logit difference between the two implementations.
"""
import argparse
import importlib.util
import json
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
OFFICIAL_FACTORIES = dict(
    tiny='vmamba_tiny_s1l8',
    small='vmamba_small_s2l15',
    base='vmamba_base_s2l15')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--archs',
        nargs='+',
        default=['tiny', 'small'],
        choices=sorted(OFFICIAL_FACTORIES))
    parser.add_argument('--sizes', nargs='+', type=int, default=[224, 448])
    parser.add_argument('--batches', nargs='+', type=int, default=[1, 8])
    parser.add_argument(
        '--repeat',
        type=int,
        default=3,
        help='timed forwards per measurement (median)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='torch.set_num_threads; 0 keeps torch\'s default. Default 1: '
        'the sequential scans launch many small ops, and with several '
        'threads on a busy machine their timings swing by 10x')
    parser.add_argument(
        '--skip',
        nargs='*',
        default=[],
        help='ARCH:SIZE:BATCH combinations to leave out (slow ones)')
    parser.add_argument(
        '--official-repo',
        default=None,
        help='checkout of github.com/MzeroMiko/VMamba')
    parser.add_argument(
        '--timeout',
        type=int,
        default=3600,
        help='seconds allowed per measurement')
    parser.add_argument('--json', default=None, help='also write results')
    # Internal: one measurement in a child process.
    parser.add_argument(
        '--worker', choices=['ours', 'official'], help=argparse.SUPPRESS)
    parser.add_argument('--arch', help=argparse.SUPPRESS)
    parser.add_argument('--size', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--batch', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--save-logits', help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ------------------------------------------------------ official import ---
def _stub_missing_packages():
    """Provide the two names the official module needs from timm/fvcore."""
    import torch
    import torch.nn as nn

    if importlib.util.find_spec('timm') is None:

        class DropPath(nn.Module):

            def __init__(self, drop_prob=0.):
                super().__init__()
                self.drop_prob = drop_prob

            def forward(self, x):
                if self.drop_prob == 0. or not self.training:
                    return x
                keep = 1 - self.drop_prob
                mask = x.new_empty((x.shape[0], ) + (1, ) *
                                   (x.ndim - 1)).bernoulli_(keep)
                return x * mask / keep

        layers = types.ModuleType('timm.models.layers')
        layers.DropPath = DropPath
        layers.trunc_normal_ = nn.init.trunc_normal_
        for name in ('timm', 'timm.models'):
            sys.modules.setdefault(name, types.ModuleType(name))
        sys.modules['timm.models.layers'] = layers
    if importlib.util.find_spec('fvcore') is None:
        fv_nn = types.ModuleType('fvcore.nn')

        def _unavailable(*args, **kwargs):
            raise RuntimeError('fvcore is stubbed in this benchmark')

        for name in ('FlopCountAnalysis', 'flop_count_str', 'flop_count',
                     'parameter_count'):
            setattr(fv_nn, name, _unavailable)
        sys.modules.setdefault('fvcore', types.ModuleType('fvcore'))
        sys.modules['fvcore.nn'] = fv_nn
    return torch


def import_official(repo):
    """Import ``classification/models/vmamba.py`` of an official checkout
    under a private package name and make its CPU path work."""
    _stub_missing_packages()
    pkg_dir = osp.join(repo, 'classification', 'models')
    spec = importlib.util.spec_from_file_location(
        'official_vmamba_models',
        osp.join(pkg_dir, '__init__.py'),
        submodule_search_locations=[pkg_dir])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    vmamba = sys.modules[spec.name + '.vmamba']
    csm = sys.modules[spec.name + '.csm_triton']

    def cross_scan_fn(x,
                      in_channel_first=True,
                      out_channel_first=True,
                      one_by_one=False,
                      scans=0,
                      force_torch=False):
        return csm.CrossScanF.apply(x, in_channel_first, out_channel_first,
                                    one_by_one, scans)

    def cross_merge_fn(y,
                       in_channel_first=True,
                       out_channel_first=True,
                       one_by_one=False,
                       scans=0,
                       force_torch=False):
        return csm.CrossMergeF.apply(y, in_channel_first, out_channel_first,
                                     one_by_one, scans)

    vmamba.cross_scan_fn = cross_scan_fn
    vmamba.cross_merge_fn = cross_merge_fn
    return vmamba


# -------------------------------------------------------------- workers ---
def _status_bytes(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def _reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM), so that building the
    models (two of them for `ours` with official weights) does not count.
    Returns False where that is not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def build_ours(arch, official_repo):
    """Our classifier as a callable, plus where its weights came from."""
    import torch
    import torch.nn.functional as F

    from zeromamba_mm.models.backbones import VMamba
    from zeromamba_mm.models.utils import (convert_official_vmamba,
                                           strict_load_state_dict)
    model = VMamba(arch).eval()
    head_w = torch.randn(1000, model.dims[-1]) * 0.02
    head_b = torch.zeros(1000)
    source = 'own init'
    if official_repo:
        official = build_official(arch, official_repo)
        state = convert_official_vmamba(official.state_dict())
        del official
        backbone = {
            k[9:]: v
            for k, v in state.items() if k.startswith('backbone.')
        }
        strict_load_state_dict(model, backbone, source='official model')
        head_w, head_b = state['head.fc.weight'], state['head.fc.bias']
        source = 'official weights (seed 0)'

    def forward(x):
        (feat, ) = model(x)
        return F.linear(feat.mean((2, 3)), head_w, head_b)

    return forward, source


def build_official(arch, repo):
    import torch
    vmamba = import_official(repo)
    torch.manual_seed(0)
    return getattr(vmamba, OFFICIAL_FACTORIES[arch])().eval()


def run_worker(args):
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == 'ours':
        forward, source = build_ours(args.arch, args.official_repo)
    else:
        forward, source = build_official(args.arch, args.official_repo), \
            'official weights (seed 0)'
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=generator)
    times = []
    with torch.no_grad():
        reset = _reset_peak_rss()
        rss_before = _status_bytes('VmRSS')
        logits = forward(x)  # warm-up
        for _ in range(args.repeat):
            start = time.perf_counter()
            logits = forward(x)
            times.append(time.perf_counter() - start)
    if reset:
        peak = _status_bytes('VmHWM')
    else:  # lifetime peak: may include model building
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if args.save_logits:
        torch.save(logits, args.save_logits)
    print(
        json.dumps(
            dict(
                impl=args.worker,
                arch=args.arch,
                size=args.size,
                batch=args.batch,
                time_s=statistics.median(times),
                peak_mb=(peak - rss_before) / 2**20,
                threads=torch.get_num_threads(),
                weights=source,
                peak_since='forward' if reset else 'process start')))


# --------------------------------------------------------------- parent ---
def measure(args, impl, arch, size, batch, logits_path):
    cmd = [
        sys.executable,
        osp.abspath(__file__), '--worker', impl, '--arch', arch, '--size',
        str(size), '--batch',
        str(batch), '--repeat',
        str(args.repeat), '--save-logits', logits_path
    ]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    if args.official_repo:
        cmd += ['--official-repo', args.official_repo]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f'  {impl} {arch} {size} b{batch}: timed out', flush=True)
        return None
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        print(f'  {impl} {arch} {size} b{batch}: failed: {tail}', flush=True)
        return None
    result = json.loads(lines[-1])
    print(
        f'  {impl:8s} {arch:5s} {size} b{batch}: '
        f'{result["time_s"] * 1e3:9.1f} ms  '
        f'{result["peak_mb"]:8.1f} MB',
        flush=True)
    return result


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    import torch
    impls = ['ours']
    if args.official_repo:
        if osp.isfile(
                osp.join(args.official_repo, 'classification', 'models',
                         'vmamba.py')):
            impls.append('official')
        else:
            print(f'--official-repo {args.official_repo}: no '
                  'classification/models/vmamba.py there; skipping the '
                  'official column.')
            args.official_repo = None
    else:
        print('No --official-repo given: skipping the official column.')
    skip = set(args.skip)
    results = []
    diffs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            for size in args.sizes:
                for batch in args.batches:
                    if f'{arch}:{size}:{batch}' in skip:
                        print(f'  skipped {arch} {size} b{batch}')
                        continue
                    outs = {}
                    for impl in impls:
                        path = osp.join(tmp, f'{impl}.pt')
                        result = measure(args, impl, arch, size, batch, path)
                        if result:
                            results.append(result)
                            outs[impl] = torch.load(path, weights_only=True)
                    if len(outs) == 2:
                        diffs[(arch, size, batch)] = float(
                            (outs['ours'] - outs['official']).abs().max())

    def find(impl, arch, size, batch):
        for r in results:
            if (r['impl'], r['arch'], r['size'], r['batch']) == (impl, arch,
                                                                 size, batch):
                return r
        return None

    print('\nVMamba forward on CPU (threads: '
          f'{results[0]["threads"] if results else "?"}; '
          'time = median wall time, mem = peak RSS growth during forward)')
    header = ('arch  size batch | ours ms    MB | official ms    MB | '
              'ours/official time | 2x-size time ours  official | '
              'max |logit diff|')
    print(header)
    print('-' * len(header))
    rows = []
    for arch in args.archs:
        for size in args.sizes:
            for batch in args.batches:
                ours = find('ours', arch, size, batch)
                off = find('official', arch, size, batch)
                if not ours and not off:
                    continue

                def fmt(r):
                    return (f'{r["time_s"] * 1e3:8.0f} {r["peak_mb"]:6.0f}'
                            if r else f'{"-":>8s} {"-":>6s}')

                ratio = (f'{ours["time_s"] / off["time_s"]:.2f}x'
                         if ours and off else '-')
                scale = []
                for impl in ('ours', 'official'):
                    now = find(impl, arch, size, batch)
                    half = find(impl, arch, size // 2, batch)
                    scale.append(f'{now["time_s"] / half["time_s"]:.2f}x'
                                 if now and half else '-')
                diff = diffs.get((arch, size, batch))
                diff = f'{diff:.2e}' if diff is not None else '-'
                print(f'{arch:5s} {size:4d} {batch:5d} | {fmt(ours)} | '
                      f'{fmt(off):>17s} | {ratio:>18s} | '
                      f'{scale[0]:>17s} {scale[1]:>9s} | {diff}')
                rows.append(
                    dict(
                        arch=arch,
                        size=size,
                        batch=batch,
                        ours=ours,
                        official=off,
                        max_diff=diff))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
