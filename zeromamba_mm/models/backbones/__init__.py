from .vim import Vim
from .vmamba import VMamba

__all__ = ['VMamba', 'Vim']
