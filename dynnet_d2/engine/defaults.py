"""Job set-up shared by the command-line tools: Detectron2's ``default_setup`` plus our logger."""
from detectron2.engine import default_argument_parser
from detectron2.engine import default_setup as detectron2_default_setup
from detectron2.utils import comm

from ..utils.io import ensure_writable_dir
from ..utils.logger import setup_logger

__all__ = ["default_argument_parser", "default_setup"]


def default_setup(cfg, args) -> None:
    """Check ``OUTPUT_DIR`` is writable, then Detectron2's ``default_setup`` (logging, config
    backup, seeds), and log dynnet_d2's messages to the console and ``OUTPUT_DIR/log.txt`` too."""
    ensure_writable_dir(cfg.OUTPUT_DIR)
    detectron2_default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank())
