"""Helpers on Detectron2's DatasetCatalog/MetadataCatalog shared by our registrations."""
from detectron2.data import DatasetCatalog, MetadataCatalog


def unregister(name: str) -> None:
    """Remove ``name`` from both catalogs if registered, so it can be registered anew."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
