"""One-command GPU check of the selective scan and the ZeroMamba model.

On a CUDA machine (a few minutes; the Triton kernels compile on first use)::

    python benchmarks/gpu_check.py --out work_dirs/gpu_check.json

runs, and prints as one table:

1. **Scan backends vs the reference.** Every usable backend (``torch``,
   ``triton``, ``mamba``) against :func:`zeromamba_mm.ops.selective_scan_ref`
   evaluated in float64 on the same (rounded) inputs: ``y``, the last state
   and the gradients of u, delta, A, B, C, D, z and delta_bias, for float32
   and bfloat16 inputs, on VMamba's call (G = 4, N = 1), a gated call with
   N = 16 and fixed (D, N) B, and a grouped call with N = 4. The figure is
   the largest error relative to the reference's largest magnitude.
2. **Golden parity on the device.** The VMamba backbone (each usable scan
   backend) and its ImageNet classifier against ``tests/data/vmamba``'s
   official-model outputs, and the ZeroMamba head against
   ``tests/data/golden/zeromamba_head_dev.pth`` (float32, TF32 off; the
   tolerances of the CPU tests).
3. **Scan timings.** Triton vs torch vs mamba-ssm, forward and forward +
   backward, at VMamba-S 448's first stage (8 x 768 x 12544), float32 and
   bfloat16 inputs, median of ``--repeats``.
4. **A ZeroMamba train step.** VMamba-S (``configs/zeromamba_cub.py``'s
   model, random weights) at 448 px: forward, a cross-entropy over the
   class scores ``pred @ att^T`` (random class attributes), backward, SGD
   step; images/s and peak memory (``torch.cuda.max_memory_allocated``),
   float32 and bfloat16 autocast.

It exits 0 when every check passes, 1 when one fails, 2 when the device is
unusable (no CUDA without ``--device cpu``). ``--out`` writes the JSON::

    meta         device, torch / triton / mamba_ssm versions, GPU name, quick
    scan_checks  [{backend, dtype, case, shape, errors: {y, last_state,
                  d<name>...}, max_error, tol, passed}]
    golden       [{check, backend, max_abs_diff, tol, passed}]
    scan_timings [{backend, dtype, shape, fwd_ms, fwd_bwd_ms}]
    train_step   [{precision, arch, image_size, batch, step_ms,
                  images_per_s, peak_memory_mb, memory_source}]
    skipped      [{what, reason}]
    passed       true when every check passed
    wall_s       seconds the whole run took

Without a GPU, ``--device cpu --quick`` (or ``--dry-run``) runs the same
checks at tiny sizes (a tiny VMamba, 32 px) so that the script itself is
tested (``tests/test_benchmarks_gpu_check.py``); its timings mean nothing.

This script was written and tested in a session without a GPU: it has run
on CPU only, and no GPU figures exist yet.
"""
import argparse
import json
import math
import os.path as osp
import platform
import resource
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA = osp.join(ROOT, 'tests', 'data')
SCAN_BACKENDS = ('torch', 'triton', 'mamba')
GRAD_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')
# Error tolerances relative to the reference's largest magnitude. bfloat16
# inputs are scanned in float32; y and the gradients come back in bf16
# (8 bits of mantissa: 2^-8 = 3.9e-3 per rounding).
TOLS = {'float32': 1e-4, 'bfloat16': 2e-2}
GOLDEN_TOLS = {'backbone': 1e-4, 'logits': 1e-4, 'head': 1e-5}
TINY_ARCH = dict(
    depths=[1, 1, 1, 1], dims=8, ssm_ratio=2.0, d_state=1, mlp_ratio=2.0)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check the selective-scan backends and the ZeroMamba '
        'model on a GPU (numerics against the reference and the golden '
        'files, timings, a train step); prints a table and writes JSON.')
    parser.add_argument(
        '--device',
        default='cuda',
        help='"cuda" (default), "cuda:N", or "cpu" (only with --quick)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='tiny sizes: checks the script, not the speed')
    parser.add_argument(
        '--dry-run', action='store_true', help='same as --device cpu --quick')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument(
        '--repeats',
        type=int,
        default=None,
        help='timed calls per measurement (median); default 10, 2 quick')
    parser.add_argument(
        '--batch',
        type=int,
        default=None,
        help='train-step batch; default 16 (2 with --quick)')
    parser.add_argument(
        '--image-size',
        type=int,
        default=None,
        help='train-step image size; default 448 (32 with --quick)')
    parser.add_argument(
        '--skip',
        nargs='+',
        default=[],
        choices=['scan', 'golden', 'timing', 'train'],
        help='parts to leave out')
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device, args.quick = 'cpu', True
    if args.repeats is not None and args.repeats < 1:
        parser.error(f'--repeats must be >= 1, got {args.repeats}')
    if args.batch is not None and args.batch < 1:
        parser.error(f'--batch must be >= 1, got {args.batch}')
    args.repeats = args.repeats or (2 if args.quick else 10)
    args.batch = args.batch or (2 if args.quick else 16)
    args.image_size = args.image_size or (32 if args.quick else 448)
    return args


def resolve_device(name: str, quick: bool) -> torch.device:
    """The device, or SystemExit(2) with a message saying what to do."""
    try:
        device = torch.device(name)
    except RuntimeError as e:
        print(f'gpu_check: invalid --device {name!r}: {e}', file=sys.stderr)
        raise SystemExit(2)
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            print(
                'gpu_check: CUDA is not available here (torch '
                f'{torch.__version__}, built for CUDA {torch.version.cuda}); '
                'this check needs a GPU. Use --device cpu --quick (or '
                '--dry-run) to test the script itself on CPU.',
                file=sys.stderr)
            raise SystemExit(2)
    elif device.type == 'cpu':
        if not quick:
            print(
                'gpu_check: --device cpu runs only with --quick (tiny '
                'sizes); the full sizes are for a GPU.',
                file=sys.stderr)
            raise SystemExit(2)
    else:
        print(
            f'gpu_check: unsupported device {name!r}; choose "cuda", '
            '"cuda:N" or "cpu".',
            file=sys.stderr)
        raise SystemExit(2)
    return device


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


def usable_backends(device: torch.device, skipped: List[dict]) -> List[str]:
    from zeromamba_mm.ops import backend_unavailable_reason
    probe = torch.zeros(1, 1, 1, device=device)
    names = []
    for name in SCAN_BACKENDS:
        reason = backend_unavailable_reason(name, probe)
        if reason is None:
            names.append(name)
        else:
            skipped.append(dict(what=f'backend {name}', reason=reason))
    return names


# ------------------------------------------------------------ scan checks
def scan_cases(quick: bool) -> List[dict]:
    batch, length = (2, 33) if quick else (2, 577)
    return [
        dict(
            name='vmamba',
            batch=batch,
            channels=16 if quick else 192,
            length=length,
            d_state=1,
            groups=4,
            bc='grouped',
            z=False),
        dict(
            name='gated_n16_fixed_b',
            batch=batch,
            channels=8 if quick else 64,
            length=length,
            d_state=16,
            groups=1,
            bc='fixed_b',
            z=True),
        dict(
            name='grouped_n4',
            batch=batch,
            channels=8 if quick else 64,
            length=length,
            d_state=4,
            groups=2,
            bc='grouped',
            z=True),
    ]


def make_scan_inputs(case: dict, device: torch.device,
                     dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b, d, n, length = (case['batch'], case['channels'], case['d_state'],
                       case['length'])

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).to(device, dtype)

    bc_shape = (b, case['groups'], n, length)
    x = dict(
        u=rnd(b, d, length),
        delta=rnd(b, d, length, scale=0.5),
        A=-(torch.rand(d, n, generator=g) + 0.2).to(device),
        B=(torch.randn(d, n, generator=g).to(device)
           if case['bc'] == 'fixed_b' else rnd(*bc_shape)),
        C=rnd(*bc_shape),
        D=torch.randn(d, generator=g).to(device),
        z=rnd(b, d, length) if case['z'] else None,
        delta_bias=(torch.rand(d, generator=g) * 2 - 3).to(device))
    return {
        k: None if v is None else v.requires_grad_(True)
        for k, v in x.items()
    }


def scan_outputs(x: Dict[str, torch.Tensor], backend: str, seed: int = 1):
    """y, last state and the gradients of a random linear loss of y (the
    last state's own gradient is left out: mamba-ssm ignores it)."""
    from zeromamba_mm.ops import selective_scan
    y, last = selective_scan(
        **x, delta_softplus=True, return_last_state=True, backend=backend)
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(y.shape, generator=g, dtype=torch.float64)
    loss = (y.double() * weight.to(y.device)).sum()
    names = [k for k in GRAD_NAMES if x[k] is not None]
    grads = torch.autograd.grad(loss, [x[k] for k in names])
    return y.detach(), last.detach(), dict(zip(names, grads))


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    scale = reference.abs().max().item() or 1.0
    return (value.double() - reference).abs().max().item() / scale


def check_scans(device: torch.device, backends: List[str],
                quick: bool) -> List[dict]:
    rows = []
    for case in scan_cases(quick):
        for dtype_name in ('float32', 'bfloat16'):
            dtype = getattr(torch, dtype_name)
            x = make_scan_inputs(case, device, dtype)
            x64 = {
                k: None if v is None else v.detach().double().requires_grad_()
                for k, v in x.items()
            }
            y_ref, s_ref, g_ref = scan_outputs(x64, 'ref')
            for backend in backends:
                y, s, grads = scan_outputs(x, backend)
                errors = dict(
                    y=relative_error(y, y_ref),
                    last_state=relative_error(s, s_ref))
                for k, v in grads.items():
                    errors[f'd{k}'] = relative_error(v, g_ref[k])
                worst = max(errors.values())
                tol = TOLS[dtype_name]
                rows.append(
                    dict(
                        backend=backend,
                        dtype=dtype_name,
                        case=case['name'],
                        shape=[
                            case['batch'], case['channels'], case['length'],
                            case['d_state']
                        ],
                        errors=errors,
                        max_error=worst,
                        tol=tol,
                        passed=bool(math.isfinite(worst) and worst <= tol)))
    return rows


# ---------------------------------------------------------------- golden
def check_golden(device: torch.device, backends: List[str],
                 skipped: List[dict]) -> List[dict]:
    from zeromamba_mm.models.backbones import VMamba
    ckpt = osp.join(DATA, 'vmamba', 'vmamba_dev_s2_ckpt.pth')
    io_file = osp.join(DATA, 'vmamba', 'vmamba_dev_s2_io.pth')
    head_file = osp.join(DATA, 'golden', 'zeromamba_head_dev.pth')
    rows = []
    tf32 = (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        if not (osp.isfile(ckpt) and osp.isfile(io_file)):
            skipped.append(
                dict(
                    what='golden backbone',
                    reason=f'{ckpt} or {io_file} is missing'))
        else:
            golden = torch.load(io_file, weights_only=True)
            raw = torch.load(ckpt, weights_only=True)['model']
            for backend in backends:
                for final_norm in (False, True):
                    model = VMamba(
                        arch=golden['arch'],
                        final_norm=final_norm,
                        scan_backend=backend,
                        init_cfg=dict(type='Pretrained', checkpoint=ckpt))
                    model.init_weights()
                    model.to(device).eval()
                    with torch.no_grad():
                        (stage4, ) = model(golden['input'].to(device))
                    stage4 = stage4.cpu()
                    if final_norm:  # the official classifier: GAP + linear
                        value = stage4.mean(
                            (2, 3)) @ raw['classifier.head.weight'].t(
                            ) + raw['classifier.head.bias']
                        check, expected = 'logits', golden['logits']
                    else:
                        value, check, expected = (stage4, 'backbone',
                                                  golden['stage4'])
                    diff = (value - expected).abs().max().item()
                    rows.append(
                        dict(
                            check=check,
                            backend=backend,
                            max_abs_diff=diff,
                            tol=GOLDEN_TOLS[check],
                            passed=bool(diff <= GOLDEN_TOLS[check])))
        if not osp.isfile(head_file):
            skipped.append(
                dict(what='golden head', reason=f'{head_file} is missing'))
        else:
            rows.append(check_head(device, head_file))
    finally:
        (torch.backends.cuda.matmul.allow_tf32,
         torch.backends.cudnn.allow_tf32) = tf32
    return rows


def check_head(device: torch.device, path: str) -> dict:
    """ZeroMambaHead with the authors' switches vs their prediction."""
    import inspect

    from zeromamba_mm.models.heads import ZeroMambaHead
    golden = torch.load(path, weights_only=True)
    num_attributes, w2v_dim = golden['slp_state']['V'].shape
    params = inspect.signature(ZeroMambaHead).parameters
    # The ImageNet-logit width (named imagenet_dim in older versions).
    width = ('imagenet_classes'
             if 'imagenet_classes' in params else 'imagenet_dim')
    head = ZeroMambaHead(
        num_attributes,
        in_channels=golden['x_pre'].shape[1],
        w2v_dim=w2v_dim,
        word_vectors=golden['w2v'],
        l2_eps=0.0,
        **{width: golden['imagenet_logits'].shape[1]})
    slp = golden['slp_state']
    head.load_state_dict(
        {
            'slp.V': slp['V'],
            'slp.W1': slp['W1'],
            'slp.W2': slp['W2'],
            'slp.mlp_local.0.weight': golden['clf_head2']['0.weight'],
            'slp.mlp_local.2.weight': golden['clf_head2']['2.weight'],
            'grl.fc.weight': golden['clf_head']['weight'],
        },
        strict=True)
    head.to(device).eval()
    with torch.no_grad():
        pred = head((golden['x_pre'].to(device),
                     golden['imagenet_logits'].to(device))).cpu()
    diff = (pred - golden['pred']).abs().max().item()
    return dict(
        check='head',
        backend='-',
        max_abs_diff=diff,
        tol=GOLDEN_TOLS['head'],
        passed=bool(diff <= GOLDEN_TOLS['head']))


# ---------------------------------------------------------------- timing
def time_scans(device: torch.device, backends: List[str], quick: bool,
               repeats: int) -> List[dict]:
    from zeromamba_mm.ops import selective_scan

    # VMamba-S at 448: stage 1 is 112 x 112 tokens, 4 directions of
    # d_inner = 192 channels; G = 4, N = 1.
    batch, channels, length = (1, 16, 256) if quick else (8, 768, 12544)
    rows = []
    for dtype_name in ('float32', 'bfloat16'):
        case = dict(
            batch=batch,
            channels=channels,
            length=length,
            d_state=1,
            groups=4,
            bc='grouped',
            z=False)
        x = make_scan_inputs(case, device, getattr(torch, dtype_name))
        frozen = {k: None if v is None else v.detach() for k, v in x.items()}
        for backend in backends:

            def forward():
                with torch.no_grad():
                    selective_scan(
                        **frozen, delta_softplus=True, backend=backend)

            def forward_backward():
                y = selective_scan(**x, delta_softplus=True, backend=backend)
                y.backward(torch.ones_like(y))
                for v in x.values():
                    if v is not None:
                        v.grad = None

            rows.append(
                dict(
                    backend=backend,
                    dtype=dtype_name,
                    shape=[batch, channels, length],
                    fwd_ms=median_ms(forward, repeats, device),
                    fwd_bwd_ms=median_ms(forward_backward, repeats, device)))
    return rows


def build_zeromamba(quick: bool, num_attributes: int = 312):
    """ZeroMamba with VMamba-S (configs/zeromamba_cub.py, random weights)."""
    from mmengine.config import Config

    import zeromamba_mm  # noqa: F401 (registers the modules)
    from zeromamba_mm.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'zeromamba_cub.py'))
    model_cfg = cfg.model
    model_cfg.backbone.init_cfg = None
    model_cfg.neck.init_cfg = None
    model_cfg.head.word_vectors = None
    model_cfg.head.num_attributes = num_attributes
    if quick:
        model_cfg.backbone.arch = TINY_ARCH
        model_cfg.neck.in_channels = 64
        model_cfg.head.in_channels = 64
    return MODELS.build(model_cfg)


def train_step_rows(device: torch.device, args: argparse.Namespace,
                    skipped: List[dict]) -> List[dict]:
    num_classes, num_attributes = 200, 312
    model = build_zeromamba(args.quick, num_attributes).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(
        args.batch, 3, args.image_size, args.image_size,
        generator=g).to(device)
    labels = torch.randint(num_classes, (args.batch, ), generator=g).to(device)
    att = F.normalize(
        torch.rand(num_classes, num_attributes, generator=g), dim=1).to(device)
    rows = []
    for precision in ('fp32', 'bf16_amp'):
        amp = precision == 'bf16_amp'

        def step():
            with torch.autocast(
                    device.type, dtype=torch.bfloat16, enabled=amp):
                pred = model.head(model.extract_feat(images))
                loss = F.cross_entropy(pred.float() @ att.t(), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        try:
            ms = median_ms(step, args.repeats, device)
        except torch.cuda.OutOfMemoryError as e:
            skipped.append(
                dict(
                    what=f'train step {precision}',
                    reason=f'out of memory at batch {args.batch}: {e}'))
            continue
        if device.type == 'cuda':
            peak, source = (torch.cuda.max_memory_allocated(device) / 2**20,
                            'torch.cuda.max_memory_allocated')
        else:
            peak, source = (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                'ru_maxrss (process)')
        rows.append(
            dict(
                precision=precision,
                arch='tiny' if args.quick else 'small',
                image_size=args.image_size,
                batch=args.batch,
                step_ms=ms,
                images_per_s=args.batch / (ms / 1e3),
                peak_memory_mb=peak,
                memory_source=source))
    return rows


# ---------------------------------------------------------------- report
def versions(device: torch.device) -> dict:
    meta = dict(
        device=str(device),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        python=platform.python_version())
    try:
        import triton
        meta['triton'] = triton.__version__
    except ImportError:
        meta['triton'] = None
    try:
        from importlib.metadata import version
        meta['mamba_ssm'] = version('mamba-ssm')
    except Exception:
        meta['mamba_ssm'] = None
    meta['gpu'] = (
        torch.cuda.get_device_name(device) if device.type == 'cuda' else None)
    return meta


def print_report(result: dict) -> None:
    print(f'gpu_check on {result["meta"]["device"]} '
          f'({result["meta"]["gpu"] or "no GPU"}), torch '
          f'{result["meta"]["torch"]}, triton {result["meta"]["triton"]}, '
          f'mamba_ssm {result["meta"]["mamba_ssm"]}'
          f'{", QUICK (tiny sizes)" if result["meta"]["quick"] else ""}')
    if result['scan_checks']:
        print('\nscan vs float64 reference (max error / max |reference|)')
        print(f'{"backend":<8} {"dtype":<9} {"case":<18} {"y":>9} '
              f'{"worst grad":>11} {"tol":>8}  ok')
        for r in result['scan_checks']:
            grads = [v for k, v in r['errors'].items() if k.startswith('d')]
            print(f'{r["backend"]:<8} {r["dtype"]:<9} {r["case"]:<18} '
                  f'{r["errors"]["y"]:>9.2e} {max(grads):>11.2e} '
                  f'{r["tol"]:>8.0e}  {"yes" if r["passed"] else "NO"}')
    if result['golden']:
        print('\ngolden parity (max |difference|)')
        for r in result['golden']:
            print(f'{r["check"]:<10} {r["backend"]:<8} '
                  f'{r["max_abs_diff"]:>9.2e} tol {r["tol"]:.0e}  '
                  f'{"yes" if r["passed"] else "NO"}')
    if result['scan_timings']:
        print('\nscan timings (median ms)')
        print(f'{"backend":<8} {"dtype":<9} {"shape":<16} {"fwd":>9} '
              f'{"fwd+bwd":>9}')
        for r in result['scan_timings']:
            shape = 'x'.join(str(v) for v in r['shape'])
            print(f'{r["backend"]:<8} {r["dtype"]:<9} {shape:<16} '
                  f'{r["fwd_ms"]:>9.2f} {r["fwd_bwd_ms"]:>9.2f}')
    if result['train_step']:
        print('\nZeroMamba train step')
        for r in result['train_step']:
            print(f'{r["precision"]:<9} {r["arch"]}@{r["image_size"]} '
                  f'batch {r["batch"]}: {r["step_ms"]:.1f} ms, '
                  f'{r["images_per_s"]:.1f} images/s, peak '
                  f'{r["peak_memory_mb"]:.0f} MB ({r["memory_source"]})')
    for s in result['skipped']:
        print(f'skipped {s["what"]}: {s["reason"]}')
    print(f'\n{"PASSED" if result["passed"] else "FAILED"} in '
          f'{result["wall_s"]:.1f} s')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device, args.quick)
    start = time.perf_counter()
    torch.manual_seed(0)
    skipped: List[dict] = []
    meta = versions(device)
    meta['quick'] = args.quick
    backends = usable_backends(device, skipped)
    result = dict(
        meta=meta,
        scan_checks=[],
        golden=[],
        scan_timings=[],
        train_step=[],
        skipped=skipped)
    if 'scan' not in args.skip:
        result['scan_checks'] = check_scans(device, backends, args.quick)
    if 'golden' not in args.skip:
        result['golden'] = check_golden(device, backends, skipped)
    if 'timing' not in args.skip:
        result['scan_timings'] = time_scans(device, backends, args.quick,
                                            args.repeats)
    if 'train' not in args.skip:
        result['train_step'] = train_step_rows(device, args, skipped)
    result['passed'] = all(r['passed']
                           for r in result['scan_checks'] + result['golden'])
    result['wall_s'] = time.perf_counter() - start
    print_report(result)
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=2)
        print(f'wrote {args.out}')
    return 0 if result['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
