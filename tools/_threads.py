"""Run ``zeromamba_mm/utils/threads.py`` before anything loads torch.

Importing the ``zeromamba_mm`` package registers its modules and so loads
torch and its OpenMP runtime, which reads the thread variables only when it
loads. The tools therefore execute the thread module from its file (found
without importing the package) as their first step.
"""
import importlib.util
import os.path as osp
from typing import Dict


def setup_threads() -> Dict[str, str]:
    """Apply :func:`zeromamba_mm.utils.threads.configure_threads`.

    Returns:
        dict: The variables that were set (empty if the package is not
        installed; the tool then reports that itself).
    """
    package = importlib.util.find_spec('zeromamba_mm')
    if package is None or not package.submodule_search_locations:
        return {}
    path = osp.join(package.submodule_search_locations[0], 'utils',
                    'threads.py')
    spec = importlib.util.spec_from_file_location('_zeromamba_threads', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.configure_threads()
