"""Find, build and load this plugin's models the MMPretrain way.

Model names come from MMPretrain's model hub (the plugin registers its
``model-index.yml`` on import), configs from files or :obj:`Config` objects.
Weights are read safely and loaded strictly by
:func:`zeromamba_mm.checkpoint.load_model_weights`; the model they go into
is built by :func:`zeromamba_mm.checkpoint.config_for_loading`, so no
pretraining file or word-vector file of the training config is needed.
"""
import copy
import os.path as osp
from pathlib import Path
from typing import List, Optional, Tuple, Union

from mmengine.config import Config
from mmengine.model import BaseModel
from mmpretrain.apis import get_model as mmpretrain_get_model
from mmpretrain.apis import list_models
from mmpretrain.apis.model import ModelHub

from zeromamba_mm import model_zoo
from zeromamba_mm.checkpoint import config_for_loading, load_model_weights
from zeromamba_mm.utils import read_config

__all__ = ['resolve_model', 'get_model', 'list_plugin_models']


def resolve_model(
        model: Union[str, Path, Config],
        pretrained: Union[bool, str, Path]) -> Tuple[Config, Union[bool, str]]:
    """A model name, config path or :obj:`Config` -> (config, weights).

    Args:
        model (str | Path | Config): A name of
            ``mmpretrain.apis.list_models()``, a ``.py`` config or a config.
        pretrained (bool | str | Path): A weights path; ``True`` for the
            config's ``load_from`` (or the model-index ``Weights`` when it is
            a local file); ``False`` for none.

    Returns:
        tuple[Config, str | bool]: The config, its model rewritten by
        :func:`~zeromamba_mm.checkpoint.config_for_loading` (no pretraining
        or word-vector files are read: the weights replace what they
        initialise), and the weights path, or False.
    """
    weights = pretrained
    if isinstance(model, Config):
        config = copy.deepcopy(model)
    elif isinstance(model, (str, Path)) and str(model).endswith('.py'):
        config = read_config(str(model))
    elif isinstance(model, str):
        metainfo = ModelHub.get(model)  # names list_models() on failure
        config = metainfo.config
        if pretrained is True:
            release = metainfo.weights
            if not (release and osp.isfile(str(release))):
                raise ValueError(
                    f'{model}: pass pretrained=PATH, the local copy of the '
                    f'release file {release!r} (weights cannot be '
                    'downloaded here).')
            weights = release
    else:
        raise TypeError('model must be a model name, a config path, a Config '
                        f'or a built model, got {type(model).__name__}.')
    if 'model' not in config:
        raise KeyError(f'The config {getattr(config, "filename", "")} has no '
                       '`model` entry.')
    if weights is True:
        weights = config.get('load_from')
        if not weights:
            raise ValueError(
                'ZSLInferencer needs the trained weights: pass pretrained='
                'PATH (or pretrained=False for an untrained model).')
    config.model = config_for_loading(config.model)
    return config, weights


def get_model(model: Union[str, Path, Config],
              pretrained: Union[bool, str, Path] = False,
              device: Optional[str] = None,
              **kwargs) -> BaseModel:
    """Build a model and load its weights strictly (the plugin's
    counterpart of :func:`mmpretrain.apis.get_model`).

    ``mmpretrain.get_model(..., pretrained=PATH)`` loads with MMEngine's
    non-strict ``load_checkpoint``: a file of another architecture only
    warns and the model keeps random weights. Here any missing, unexpected
    or mis-shaped key raises
    :class:`~zeromamba_mm.checkpoint.CheckpointMismatchError` naming the
    file and the keys.

    Args:
        model (str | Path | Config): A model name, a ``.py`` config or a
            config.
        pretrained (bool | str | Path): A checkpoint path; ``True`` for the
            config's ``load_from`` (or the model-index ``Weights`` when it
            is a local file); ``False`` (default) for none.
        device (str, optional): Where to put the model.
        **kwargs: Overrides of the ``model`` config, as in mmpretrain.

    Returns:
        BaseModel: The model in eval mode, with ``_dataset_meta`` (from the
        checkpoint's meta), ``_config`` and ``_checkpoint_meta`` set.
    """
    config, weights = resolve_model(model, pretrained)
    built = mmpretrain_get_model(
        config, pretrained=False, device=device, **kwargs)
    meta = {}
    if weights:
        meta = load_model_weights(built, str(weights))
        if meta.get('dataset_meta'):
            built._dataset_meta = meta['dataset_meta']
    built._checkpoint_meta = meta
    return built.eval()


def list_plugin_models(pattern: Optional[str] = None) -> List[str]:
    """Names in MMPretrain's model hub whose metafile is this plugin's.

    Args:
        pattern (str, optional): A wildcard pattern, e.g. ``'*zeromamba*'``.

    Returns:
        list[str]: Model names.
    """
    package = osp.dirname(osp.abspath(model_zoo.__file__))
    # The metafiles live in the repository's configs/ (editable install) or
    # in the package's .mim folder (regular install).
    roots = (package + osp.sep,
             osp.join(osp.dirname(package), 'configs') + osp.sep)
    return [
        name for name in list_models(pattern=pattern) if osp.abspath(
            str(ModelHub._models_dict[name].filepath)).startswith(roots)
    ]
