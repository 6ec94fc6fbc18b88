"""Settings for the whole test session.

The test process gets the tools' thread settings (``zeromamba_mm/utils/
threads.py``: passive OpenMP waits, one thread per usable core, unless set
by the user) before anything loads torch, so that the in-process trainings
do not spin on cores shared with the tools' subprocesses or other work.
The module is loaded from its file: importing the package would load torch
first.
"""
import importlib.util
import os.path as osp

_THREADS = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'zeromamba_mm', 'utils',
    'threads.py')
_spec = importlib.util.spec_from_file_location('_zeromamba_threads', _THREADS)
_threads = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_threads)
_threads.configure_threads()
