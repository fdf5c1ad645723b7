"""Logging set-up: Detectron2's loggers and dynnet_d2's, to the console and ``log.txt``."""
import logging
from typing import Optional

from detectron2.utils.logger import setup_logger as detectron2_setup_logger

LOGGER_NAMES = ("detectron2", "dynnet_d2")


def setup_logger(output_dir: Optional[str] = None, distributed_rank: int = 0) -> logging.Logger:
    """Detectron2's ``setup_logger`` for the ``detectron2`` and ``dynnet_d2`` loggers; returns the
    ``dynnet_d2`` logger. Detectron2 caches the set-up by its arguments, and the ``detectron2``
    call is the one its ``default_setup`` makes, so a logger never gets two handlers."""
    detectron2_setup_logger(output_dir, distributed_rank=distributed_rank)
    return detectron2_setup_logger(output_dir, distributed_rank=distributed_rank, name="dynnet_d2")


def logging_is_set_up() -> bool:
    """True when both loggers already print INFO messages."""
    return all(logging.getLogger(name).isEnabledFor(logging.INFO) for name in LOGGER_NAMES)
