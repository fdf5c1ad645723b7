"""Errors raised for bad datasets: each message names the file, key or value at fault."""


class DatasetFormatError(ValueError):
    """An annotation file does not have the format its loader expects."""


class EmptyDatasetError(ValueError):
    """A dataset has no usable image (before or after filtering)."""


class ImageReadError(OSError):
    """An image listed in a dataset is missing, unreadable or not the declared size."""


class UnknownDatasetError(KeyError):
    """A config names a dataset that is not registered (a ``KeyError``, as Detectron2's catalog
    raises, whose message prints without KeyError's quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
