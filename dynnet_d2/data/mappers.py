"""Dataset mappers that fail with the image's file name instead of a bare PIL/OS error."""
from typing import Any, Dict

from detectron2.data import DatasetMapper
from detectron2.data.detection_utils import SizeMismatchError

from .errors import ImageReadError


class CheckedDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper``; a missing, corrupt or wrongly sized image raises
    :class:`ImageReadError` naming the file."""

    def __call__(self, dataset_dict: Dict[str, Any]) -> Dict[str, Any]:
        try:
            return super().__call__(dataset_dict)
        except (OSError, SizeMismatchError) as e:
            raise ImageReadError(
                f"cannot use image {dataset_dict.get('file_name')!r} "
                f"(image_id {dataset_dict.get('image_id')!r}): {type(e).__name__}: {e}"
            ) from e
