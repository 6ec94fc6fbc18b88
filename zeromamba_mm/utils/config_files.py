"""Reading a config file, with a message for the two ways it goes wrong
before its contents matter: the file is missing, or it inherits the
plugin's configs (``zeromamba_mm::...``, as the own-data template does)
while the plugin is not installed from the repository."""
import os.path as osp

from mmengine.config import Config


class ConfigFileError(FileNotFoundError):
    """A config file that is missing, or whose ``zeromamba_mm::`` bases are
    not installed; the message names the file and the fix."""

    def __str__(self) -> str:
        return str(self.args[0])


def read_config(path: str) -> Config:
    """``Config.fromfile`` that names a missing file and an uninstalled
    plugin whose configs the file inherits.

    Args:
        path (str): The config file.

    Returns:
        Config: The config.

    Raises:
        ConfigFileError: ``path`` does not exist, or it inherits
            ``zeromamba_mm::`` configs and ``pip install -e .`` was not run
            (``zeromamba_mm/.mim`` is missing).
    """
    if not osp.isfile(path):
        raise ConfigFileError(
            f'config file {path} does not exist. The plugin\'s configs are '
            'under configs/ of the repository (e.g. configs/zeromamba_cub.py);'
            ' the own-data template is configs/own_data/zeromamba_own_data.py.'
        )
    try:
        return Config.fromfile(path)
    except (FileNotFoundError, ModuleNotFoundError) as err:
        text = str(err)
        if '.mim' not in text and 'is not installed' not in text:
            raise
        raise ConfigFileError(
            f'{path} inherits the plugin\'s configs ("zeromamba_mm::..."), '
            f'which are not installed with the package ({text}). Install '
            'the plugin from the repository: pip install -e .') from None
