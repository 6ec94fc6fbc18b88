"""Drop log messages that tell a user nothing they could act on."""
import logging
from typing import Sequence

__all__ = ['DropMessages']


class DropMessages(logging.Filter):
    """A logging filter that drops the records whose message starts with one
    of ``starts``; all other records pass.

    Args:
        starts (Sequence[str]): Beginnings of the messages to drop.
    """

    def __init__(self, starts: Sequence[str]) -> None:
        super().__init__()
        self.starts = tuple(starts)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)
