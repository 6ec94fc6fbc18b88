"""Build-at-first-use of the compiled CPU selective scan, and its switch.

The kernel (``selective_scan_cpu_kernel.cpp``, next to this file) is
compiled by :func:`torch.utils.cpp_extension.load` the first time a CPU
scan needs it, into a per-user cache directory outside the repository:
``$ZEROMAMBA_EXTENSIONS_DIR`` if set, else ``$TORCH_EXTENSIONS_DIR``, else
``$XDG_CACHE_HOME`` (default ``~/.cache``) ``/zeromamba_mm/extensions``,
one subdirectory per kernel source, torch and Python version and CPU
flags (a home directory shared by different machines gets one build per
instruction set). torch holds an OS-level file lock over each build, which
the kernel releases if the builder dies, so two processes started in the
same second build once, and a killed build does not block the next one.

The switch ``ZEROMAMBA_CPU_SCAN`` (read at each call):

- ``auto`` (default): use the compiled kernel for d_state > 1 when it
  builds; if it cannot (no C++ compiler, no ``ninja``, a compile error),
  one warning names the cause and the switch, and the pure-PyTorch scan
  runs. d_state 1 (VMamba) keeps the chunked pure-PyTorch scan.
- ``torch``: never build; always the pure-PyTorch scan.
- ``compiled``: the compiled kernel for every d_state, or an error saying
  why it cannot build.
"""
import hashlib
import os
import os.path as osp
import platform
import shutil
import sys
import warnings
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import torch

CPU_SCAN_ENV = 'ZEROMAMBA_CPU_SCAN'
CPU_SCAN_CHOICES = ('auto', 'torch', 'compiled')
KERNEL_SOURCE = osp.join(
    osp.dirname(osp.abspath(__file__)), 'selective_scan_cpu_kernel.cpp')

# The outcome of the one build attempt of this process: the module, or the
# reason it could not be built.
_STATE: Dict[str, object] = {}


def cpu_scan_mode() -> str:
    """The value of ``ZEROMAMBA_CPU_SCAN`` (``'auto'`` when unset).

    Returns:
        str: One of :data:`CPU_SCAN_CHOICES`.

    Raises:
        ValueError: For any other value, naming the variable and choices.
    """
    mode = os.environ.get(CPU_SCAN_ENV, 'auto').strip().lower() or 'auto'
    if mode not in CPU_SCAN_CHOICES:
        raise ValueError(
            f'environment variable {CPU_SCAN_ENV}={mode!r} is not one of '
            f'{CPU_SCAN_CHOICES}; unset it or choose one of them.')
    return mode


def _cpu_flags() -> List[str]:
    """Compiler flags for this CPU: AVX2 + FMA where /proc/cpuinfo lists
    both (the kernel's state loop is then 8 floats wide)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    if {'avx2', 'fma'} <= flags:
                        return ['-DZEROMAMBA_AVX2']
                    break
    except OSError:
        pass
    return []


def extensions_dir() -> str:
    """The per-user directory the kernel is built in (see module doc).

    Returns:
        str: An absolute path (not created here).
    """
    root = os.environ.get('ZEROMAMBA_EXTENSIONS_DIR') or \
        os.environ.get('TORCH_EXTENSIONS_DIR')
    if not root:
        cache = os.environ.get('XDG_CACHE_HOME') or osp.join(
            osp.expanduser('~'), '.cache')
        root = osp.join(cache, 'zeromamba_mm', 'extensions')
    return osp.abspath(root)


def _build_spec() -> Tuple[str, str, List[str]]:
    """(module name, build directory, compiler flags) of this build."""
    # -fno-trapping-math lets the compiler turn the clamps of the exp into
    # blends, so the state loop vectorises; results are unchanged.
    flags = ['-O3', '-fopenmp-simd', '-fno-trapping-math'] + _cpu_flags()
    with open(KERNEL_SOURCE, 'rb') as f:
        digest = hashlib.sha256(f.read())
    digest.update(
        ' '.join(flags + [torch.__version__, sys.version,
                          platform.machine()]).encode())
    name = f'zeromamba_scan_cpu_{digest.hexdigest()[:12]}'
    return name, osp.join(extensions_dir(), name), flags


def _ninja_path() -> str:
    """PATH with the bin directory of pip's ``ninja`` package (a runtime
    requirement) appended: torch runs ``ninja`` from PATH, and a virtual
    environment used without activation does not put its ``bin`` there."""
    path = os.environ.get('PATH', '')
    try:
        import ninja
    except ImportError:
        return path
    return os.pathsep.join([path, ninja.BIN_DIR]) if path else ninja.BIN_DIR


def _missing_tool() -> Optional[str]:
    """Why torch's JIT build cannot start here (None if it can)."""
    compiler = os.environ.get('CXX', 'c++')
    if shutil.which(compiler) is None:
        return f'no C++ compiler ({compiler!r} is not on PATH)'
    if shutil.which('ninja', path=_ninja_path()) is None:
        return ('`ninja` is not on PATH (pip install ninja, or your '
                'system\'s package)')
    return None


def _build() -> ModuleType:
    """Compile (or load the cached build of) the kernel."""
    reason = _missing_tool()
    if reason is not None:
        raise RuntimeError(reason)
    from torch.utils.cpp_extension import load
    name, build_dir, flags = _build_spec()
    os.makedirs(build_dir, exist_ok=True)
    # torch's build runs `ninja` in a copy of os.environ: PATH is extended
    # for the build only.
    saved_path = os.environ.get('PATH')
    os.environ['PATH'] = _ninja_path()
    try:
        return load(
            name=name,
            sources=[KERNEL_SOURCE],
            extra_cflags=flags,
            build_directory=build_dir,
            verbose=False)
    finally:
        if saved_path is None:
            os.environ.pop('PATH', None)
        else:
            os.environ['PATH'] = saved_path


def load_cpu_kernel() -> Optional[ModuleType]:
    """The compiled kernel module, building it on the first call.

    Returns:
        ModuleType | None: The module, or None if it cannot be built (the
        reason is :func:`cpu_kernel_error`).
    """
    if 'module' not in _STATE and 'error' not in _STATE:
        try:
            _STATE['module'] = _build()
        except Exception as exc:  # noqa: BLE001 -- any build failure
            _STATE['error'] = _one_line(exc)
    return _STATE.get('module')  # type: ignore[return-value]


def cpu_kernel_error() -> Optional[str]:
    """Why the kernel could not be built (None if built or not tried)."""
    return _STATE.get('error')  # type: ignore[return-value]


def _one_line(exc: BaseException) -> str:
    """A compile error's last non-empty line (the compiler's own message
    is above it in torch's exception), or the message itself."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) < 300 else text[:297] + '...'


def use_compiled_cpu_scan() -> bool:
    """Whether ``'auto'`` runs the compiled kernel on CPU tensors.

    ``ZEROMAMBA_CPU_SCAN=torch`` -> False (nothing is built); ``auto`` ->
    True if the kernel builds, else False after one warning naming the
    cause and the switch; ``compiled`` -> True or a RuntimeError.

    Returns:
        bool: True to run the compiled kernel.

    Raises:
        RuntimeError: Under ``compiled`` when the kernel cannot be built.
    """
    mode = cpu_scan_mode()
    if mode == 'torch':
        return False
    if load_cpu_kernel() is not None:
        return True
    message = (f'the compiled CPU selective scan could not be built: '
               f'{cpu_kernel_error()}')
    if mode == 'compiled':
        raise RuntimeError(f'{message}. Set {CPU_SCAN_ENV}=auto or torch to '
                           'use the pure-PyTorch scan.')
    if not _STATE.get('warned'):
        _STATE['warned'] = True
        warnings.warn(
            f'{message}; using the pure-PyTorch scan (slower on CPU). Set '
            f'{CPU_SCAN_ENV}=torch to skip the build.',
            RuntimeWarning,
            stacklevel=3)
    return False
