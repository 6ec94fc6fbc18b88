"""Find, build and load this plugin's models the MMPretrain way.

Model names come from MMPretrain's model hub (the plugin registers its
``model-index.yml`` on import), configs from files or :obj:`Config` objects,
and weights are read by :func:`zeromamba_mm.utils.safe_load.load_torch_file`
(nothing in a file is run) and loaded strictly.
"""
import copy
import os.path as osp
from pathlib import Path
from typing import List, Mapping, Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.model import BaseModel

__all__ = ['resolve_model', 'load_weights', 'list_plugin_models']


def _without_word_vectors(cfg):
    """Set every ``word_vectors=`` of a model config to None.

    Word vectors only initialise SLP's ``V``, which the checkpoint replaces
    (strictly): the file they name is not needed for inference.
    """
    if isinstance(cfg, Mapping):
        return type(cfg)({
            k: (None if k == 'word_vectors' else _without_word_vectors(v))
            for k, v in cfg.items()
        })
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_without_word_vectors(v) for v in cfg)
    return cfg


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
        tuple[Config, str | bool]: The config (its ``word_vectors`` unset)
        and the weights path, or False.
    """
    from mmpretrain.apis.model import ModelHub
    weights = pretrained
    if isinstance(model, Config):
        config = copy.deepcopy(model)
    elif isinstance(model, (str, Path)) and str(model).endswith('.py'):
        if not osp.isfile(str(model)):
            raise FileNotFoundError(f'Config file not found: {model}')
        config = Config.fromfile(str(model))
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
    config.model = _without_word_vectors(config.model)
    return config, weights


def load_weights(model: BaseModel, path: str) -> dict:
    """Strictly load a checkpoint's state dict into ``model``.

    Args:
        model (BaseModel): The built model.
        path (str): A runner checkpoint (``{'state_dict', 'meta', ...}``),
            ``{'model': sd}`` or a bare state dict.

    Returns:
        dict: The checkpoint's ``meta`` (``{}`` if none; MMEngine keeps
        ``meta['dataset_meta']`` there).
    """
    from zeromamba_mm.models.utils import strict_load_state_dict
    from zeromamba_mm.utils.safe_load import (CheckpointLoadError,
                                              load_torch_file)
    obj = load_torch_file(path, map_location='cpu')
    meta, state_dict = {}, obj
    if isinstance(obj, Mapping):
        if isinstance(obj.get('meta'), Mapping):
            meta = dict(obj['meta'])
        for key in ('state_dict', 'model'):
            if isinstance(obj.get(key), Mapping):
                state_dict = obj[key]
                break
    if not isinstance(state_dict, Mapping) or not state_dict or any(
            not torch.is_tensor(v) for v in state_dict.values()):
        raise CheckpointLoadError(
            f'Checkpoint {path} holds no state dict of tensors (expected one '
            "under 'state_dict' or 'model', or a bare one).")
    strict_load_state_dict(
        model,
        state_dict,
        source=path,
        hint='Is this checkpoint from the same config?')
    return meta


def list_plugin_models(pattern: Optional[str] = None) -> List[str]:
    """Names in MMPretrain's model hub whose metafile is this plugin's.

    Args:
        pattern (str, optional): A wildcard pattern, e.g. ``'*zeromamba*'``.

    Returns:
        list[str]: Model names.
    """
    from mmpretrain.apis import list_models
    from mmpretrain.apis.model import ModelHub

    import zeromamba_mm  # registers the plugin's model index
    package = osp.dirname(osp.abspath(zeromamba_mm.__file__))
    # The metafiles live in the repository's configs/ (editable install) or
    # in the package's .mim folder (regular install).
    roots = (package + osp.sep,
             osp.join(osp.dirname(package), 'configs') + osp.sep)
    return [
        name for name in list_models(pattern=pattern) if osp.abspath(
            str(ModelHub._models_dict[name].filepath)).startswith(roots)
    ]
