"""This plugin's models and configs, announced to mmpretrain and mmengine.

Importing :mod:`zeromamba_mm` makes the plugin's configs inheritable from a
config anywhere on disk, as mmpretrain's ``mmpretrain::`` configs are::

    _base_ = ['zeromamba_mm::own_data/zeromamba_own_data.py']

(mmengine resolves ``PACKAGE::PATH`` to ``PACKAGE/.mim/configs/PATH``, for
the packages in its ``MODULE2PACKAGE`` table; PATH must contain a folder, so
the top-level ``configs/zeromamba_*.py`` are reached through the bases in
``configs/_base_/`` and the configs in sub-folders), and registers the
models of ``model-index.yml``
(one ``configs/<family>/metafile.yml`` per model family) with
:class:`mmpretrain.apis.ModelHub`, so that the standard entry points know
them by name::

    import mmpretrain
    import zeromamba_mm  # noqa: F401

    mmpretrain.list_models('*zeromamba*')
    model = mmpretrain.get_model(
        'zeromamba_vmamba-small_3rdparty_cub-448px-gzsl')

The hub builds a model by name to load released weights into it, so its
configs are rewritten by :func:`zeromamba_mm.checkpoint.config_for_loading`:
no pretraining file and no word-vector file is needed (they only
initialise weights that the checkpoint replaces). Train from the config
files (``tools/train.py CONFIG``), which keep them. mmpretrain loads
``pretrained=`` non-strictly; the plugin's strict counterpart is
:func:`zeromamba_mm.apis.get_model`.

The released weights cannot be downloaded by the hub: ``Weights:`` names the
release file, and ``pretrained=`` takes a local path (after conversion, see
the metafiles and ``docs/model_zoo.md``).

The model index is read from the repository root in a source checkout (the
live files of an editable install), else from the installed package's
``zeromamba_mm/.mim`` (copied there by ``setup.py``, as mmpretrain does).
"""
import os.path as osp
import warnings
from typing import List, Optional

from mmengine.config import Config
from mmpretrain.apis.model import ModelHub
from modelindex.load_model_index import load
from modelindex.models.Model import Model

from zeromamba_mm.checkpoint import config_for_loading

MODEL_INDEX = 'model-index.yml'
PACKAGE = 'zeromamba_mm'

_registered: List[str] = []


def model_index_root() -> Optional[str]:
    """The folder holding ``model-index.yml`` and ``configs/``.

    Returns:
        str | None: The source checkout's root (the folder above the package
        with ``setup.py``), else ``zeromamba_mm/.mim`` of an installed
        package, else None.
    """
    package_dir = osp.dirname(osp.abspath(__file__))
    checkout = osp.dirname(package_dir)
    candidates = [osp.join(package_dir, '.mim')]
    if osp.isfile(osp.join(checkout, 'setup.py')):
        candidates.insert(0, checkout)
    for root in candidates:
        if (osp.isfile(osp.join(root, MODEL_INDEX))
                and osp.isdir(osp.join(root, 'configs'))):
            return root
    return None


class _ModelForLoading(Model):
    """A model-hub entry whose config builds without data files.

    :meth:`mmpretrain.apis.ModelHub.get` reads ``config`` (a path) with
    ``Config.fromfile``; here the path is read at that moment and its
    ``model`` rewritten by :func:`~zeromamba_mm.checkpoint.
    config_for_loading`.
    """

    @property
    def config(self):
        value = self.data.get('Config')
        if isinstance(value, str):
            value = Config.fromfile(value)
            value.model = config_for_loading(value.model)
            self.data['Config'] = value
        return value

    @config.setter
    def config(self, value):
        self.data['Config'] = value


def register_models() -> List[str]:
    """Register this plugin's models with mmpretrain's model hub (once).

    Returns:
        list[str]: The registered model names (lower case, as the hub keeps
        them).
    """
    if _registered:
        return list(_registered)
    root = model_index_root()
    if root is None:
        warnings.warn(
            f'zeromamba_mm: no {MODEL_INDEX} found in the installed package '
            '(zeromamba_mm/.mim) or beside it; the plugin\'s models are not '
            'in mmpretrain.list_models(). Reinstall with `pip install .` or '
            '`pip install -e .` from the repository.')
        return []
    index = load(osp.join(root, MODEL_INDEX))
    index.build_models_with_collections()
    names = [model.name.lower() for model in index.models]
    clashes = [name for name in names if ModelHub.has(name)]
    if clashes:
        raise ValueError(
            f'zeromamba_mm: the model names {clashes} of '
            f'{osp.join(root, MODEL_INDEX)} are already in mmpretrain\'s '
            'model hub; rename them in their metafile.yml.')
    ModelHub.register_model_index(
        osp.join(root, MODEL_INDEX), config_prefix=root)
    for name in names:
        # The same entry, its config read for loading (see the docstring).
        ModelHub._models_dict[name].__class__ = _ModelForLoading
    _registered.extend(names)
    return list(_registered)


def register_config_package() -> None:
    """Let mmengine resolve ``zeromamba_mm::PATH`` configs.

    mmengine 0.10 accepts ``PACKAGE::`` only for the packages listed in
    ``mmengine.config.utils.MODULE2PACKAGE``; this adds the plugin there.
    mmengine then asks ``is_installed`` and ``get_installed_path`` for the
    package; both query ``pkg_resources`` (each call reloads it, and every
    load warns "pkg_resources is deprecated" once per ``zeromamba_mm::``
    base) and look for ``<site-packages>/zeromamba_mm``, which a PEP 660
    editable install (``pip install -e .``) does not create. For this
    package only, both are answered from the imported package itself; other
    packages go to mmengine's functions unchanged.
    """
    from mmengine.config import config as config_module
    from mmengine.config import utils as config_utils

    config_utils.MODULE2PACKAGE.setdefault(PACKAGE, PACKAGE)
    if getattr(config_module.get_installed_path, '_zeromamba_mm', False):
        return
    installed_path = config_module.get_installed_path
    installed = config_module.is_installed
    package_dir = osp.dirname(osp.abspath(__file__))

    def get_installed_path(package: str) -> str:
        return package_dir if package == PACKAGE else installed_path(package)

    def is_installed(package: str) -> bool:
        return package == PACKAGE or installed(package)

    for function in (get_installed_path, is_installed):
        function._zeromamba_mm = True
    config_module.get_installed_path = get_installed_path
    config_module.is_installed = is_installed


register_config_package()
register_models()
