"""Helpers on Detectron2's DatasetCatalog/MetadataCatalog shared by our registrations."""
from typing import Callable, List

from detectron2.data import DatasetCatalog, MetadataCatalog


def unregister(name: str) -> None:
    """Remove ``name`` from both catalogs if registered, so it can be registered anew."""
    if name in DatasetCatalog:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def register(name: str, loader: Callable[[], List[dict]], **metadata) -> str:
    """Register ``loader`` and ``metadata`` under ``name`` (replacing an earlier one); return
    ``name``."""
    unregister(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)
    return name
