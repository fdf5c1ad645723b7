"""Errors raised for bad datasets: each message names the file, key or value at fault."""


class DatasetFormatError(ValueError):
    """An annotation file does not have the format its loader expects."""


class EmptyDatasetError(ValueError):
    """A dataset has no usable image (before or after filtering)."""


class ImageReadError(OSError):
    """An image listed in a dataset is missing, unreadable or not the declared size."""
