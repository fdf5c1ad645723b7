"""Check, before any training, that every image of a dataset exists and has its recorded size.

Only the file header is read (PIL opens lazily), with EXIF orientation applied as Detectron2's
``read_image`` does, in a thread pool; a progress bar appears on large datasets. Every bad image
is reported at once, instead of one crash per image hours into training.
"""
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable, List, Optional, Sequence, Tuple

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .errors import ImageReadError

# EXIF orientations that swap width and height (transpose, rotate 90/270, transverse).
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112
# Datasets with more images than this get a progress bar.
PROGRESS_MIN_IMAGES = 2000
# Bad images named in the error message (the count of all is given).
MAX_REPORTED = 10


def image_size(path: str) -> Tuple[int, int]:
    """(width, height) of the image at ``path`` as Detectron2 will see it, from its header."""
    with Image.open(path) as image:
        width, height = image.size
        if image.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
            width, height = height, width
    return width, height


def _problem(record: dict) -> Optional[str]:
    """What is wrong with ``record``'s image, or None."""
    path = record["file_name"]
    try:
        width, height = image_size(path)
    except FileNotFoundError:
        return f"{path}: no such file"
    except (UnidentifiedImageError, OSError) as e:
        return f"{path}: not a readable image ({e})"
    expected = (record.get("width"), record.get("height"))
    if None not in expected and expected != (width, height):
        return (f"{path}: the image is {width}x{height} but its annotation says "
                f"{expected[0]}x{expected[1]} (width x height)")
    return None


def find_image_problems(records: Sequence[dict], description: str = "images",
                        workers: int = 8) -> List[str]:
    """One line per record whose image is missing, unreadable or not its recorded size; records
    without a ``file_name`` (pixels held in arrays, e.g. Fashion-MNIST) have nothing to check."""
    records = [r for r in records if "file_name" in r]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results: Iterable[Optional[str]] = pool.map(_problem, records, chunksize=64)
        results = tqdm(results, total=len(records), desc=f"checking {description}",
                       disable=len(records) < PROGRESS_MIN_IMAGES, leave=False)
        return [p for p in results if p is not None]


def raise_for_image_problems(problems: Sequence[str], where: str) -> None:
    """Raise :class:`ImageReadError` listing ``problems`` (found in ``where``), if any."""
    if not problems:
        return
    shown = "\n  ".join(problems[:MAX_REPORTED])
    more = (f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED
            else "")
    raise ImageReadError(
        f"{len(problems)} image(s) of {where} cannot be used:\n  {shown}{more}\n"
        f"Fix or remove them (DATASETS.CHECK_IMAGES False skips this check)."
    )
