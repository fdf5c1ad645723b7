"""Pascal VOC folders as written by labelling tools: a tolerant loader and its registration.

A VOC folder holds ``Annotations/<id>.xml`` and its images, in ``JPEGImages/`` when that
directory exists, else next to ``Annotations/``; ``ImageSets/Main/<split>.txt`` (one image id a
line) is optional. Detectron2's ``load_voc_instances`` needs the split file, integer ``<size>``
values and ``JPEGImages/<id>.jpg``; this loader also accepts no split file, images of any common
extension (a ``<filename>`` naming another extension than the file has, as some tools write),
a missing or zero ``<size>`` (read from the image header), float coordinates
(``<xmin>191.0</xmin>``) and empty or missing ``<truncated/>``, ``<difficult/>`` and ``<pose/>``
(which Detectron2's VOC evaluator reads with ``int(...)``).

Each dataset dict has ``file_name``, ``image_id`` (the XML stem), ``height``, ``width`` and
``annotations``: ``bbox`` in ``BoxMode.XYXY_ABS`` following Detectron2's VOC convention (VOC's
1-based inclusive ``xmin``/``ymin`` minus 1, ``xmax``/``ymax`` as written, so a box
``xmin=1..xmax=W`` spans ``[0, W]``), ``category_id`` (index into the class list) and
``difficult`` (0/1). Training uses difficult objects like Detectron2 does; the VOC evaluator
(:mod:`dynnet_d2.evaluation.pascal_voc`) ignores them.

``DATASETS.VOC_DATASETS: [[name, folder, split, classes], ...]`` in a config (or
:func:`register_voc_dataset` in code) makes ``name`` usable in ``DATASETS.TRAIN/TEST``.
"""
import os
import xml.etree.ElementTree as ET
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.structures import BoxMode

from .catalog import register
from .errors import DatasetFormatError, ImageReadError
from .image_check import image_size

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
_COORDINATES = ("xmin", "ymin", "xmax", "ymax")
_CONFIG_KEY = "DATASETS.VOC_DATASETS"


def _annotation_dir(folder: str) -> str:
    return os.path.join(folder, "Annotations")


def _split_dir(folder: str) -> str:
    return os.path.join(folder, "ImageSets", "Main")


def image_dir(folder: str) -> str:
    """``folder/JPEGImages`` if that directory exists, else ``folder`` itself."""
    jpeg_images = os.path.join(folder, "JPEGImages")
    return jpeg_images if os.path.isdir(jpeg_images) else folder


def check_folder(folder: str) -> None:
    """Raise ``FileNotFoundError`` unless ``folder`` is a directory with ``Annotations/``."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Pascal VOC folder {folder!r} is not a directory")
    if not os.path.isdir(_annotation_dir(folder)):
        raise FileNotFoundError(
            f"Pascal VOC folder {folder!r} has no Annotations/ directory; expected "
            f"{_annotation_dir(folder)!r} holding one <image id>.xml per image"
        )


def split_file(folder: str, split: Optional[str]) -> Optional[str]:
    """The split file ``split`` names: None for every XML (``split`` None or ""), the path
    itself when it ends in ``.txt``, else ``folder/ImageSets/Main/<split>.txt``.

    Raises ``FileNotFoundError`` naming the path and listing the split files that exist.
    """
    if not split:
        return None
    path = split if split.endswith(".txt") else os.path.join(_split_dir(folder), split + ".txt")
    if not os.path.isfile(path):
        main = _split_dir(folder)
        existing = []
        if os.path.isdir(main):
            existing = sorted(f for f in os.listdir(main) if f.endswith(".txt"))
        found = (f"split files in {main!r}: {existing}" if existing
                 else f"there is no split file in {main!r}")
        raise FileNotFoundError(
            f"split file {path!r} of Pascal VOC folder {folder!r} does not exist; {found}. "
            f"Use split '' (or None) to load every Annotations/*.xml"
        )
    return path


def annotation_files(folder: str, split: Optional[str] = None) -> List[str]:
    """Paths of the XMLs of ``split`` (see :func:`split_file`), in split-file order, or of every
    ``Annotations/*.xml`` sorted by name."""
    xml_dir = _annotation_dir(folder)
    path = split_file(folder, split)
    if path is None:
        return sorted(os.path.join(xml_dir, f) for f in os.listdir(xml_dir) if f.endswith(".xml"))
    files = []
    with open(path) as f:
        for line_number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 1:
                raise DatasetFormatError(
                    f"{path}:{line_number}: {line.strip()!r}; expected one image id a line"
                )
            xml_file = os.path.join(xml_dir, fields[0] + ".xml")
            if not os.path.isfile(xml_file):
                raise DatasetFormatError(
                    f"{path}:{line_number}: image id {fields[0]!r} has no annotation file "
                    f"{xml_file!r}"
                )
            files.append(xml_file)
    return files


def _parse_xml(xml_file: str) -> ET.Element:
    try:
        return ET.parse(xml_file).getroot()
    except ET.ParseError as e:
        raise DatasetFormatError(f"{xml_file}: not a well-formed XML file ({e})") from e


def _object_name(xml_file: str, index: int, obj: ET.Element) -> str:
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise DatasetFormatError(
            f"{xml_file}: <object> {index} has no <name>; expected a class name"
        )
    return name


def class_names_in(folder: str) -> List[str]:
    """Sorted set of the object ``<name>``s over every ``Annotations/*.xml`` of ``folder``, so
    that all splits of one folder get the same class list."""
    names = set()
    for xml_file in annotation_files(folder):
        for i, obj in enumerate(_parse_xml(xml_file).iter("object")):
            names.add(_object_name(xml_file, i, obj))
    return sorted(names)


def _number(xml_file: str, field: str, text: Optional[str]) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{xml_file}: {field} is {text!r}; expected a number") from None


def _difficult(xml_file: str, index: int, obj: ET.Element) -> int:
    text = (obj.findtext("difficult") or "").strip()
    if not text:
        return 0
    if text not in ("0", "1"):
        raise DatasetFormatError(
            f"{xml_file}: <object> {index} <difficult> is {text!r}; expected 0, 1 or empty"
        )
    return int(text)


def _annotation(xml_file: str, index: int, obj: ET.Element,
                class_index: Dict[str, int]) -> dict:
    name = _object_name(xml_file, index, obj)
    if name not in class_index:
        raise DatasetFormatError(
            f"{xml_file}: <object> {index} has class {name!r}, which is not in the class list "
            f"{list(class_index)}"
        )
    bndbox = obj.find("bndbox")
    if bndbox is None:
        raise DatasetFormatError(
            f"{xml_file}: <object> {index} ({name!r}) has no <bndbox>; expected "
            f"<bndbox><xmin>..</xmin><ymin>..</ymin><xmax>..</xmax><ymax>..</ymax></bndbox>"
        )
    xmin, ymin, xmax, ymax = (
        _number(xml_file, f"<object> {index} ({name!r}) <bndbox><{c}>", bndbox.findtext(c))
        for c in _COORDINATES
    )
    for low, high, axis in ((xmin, xmax, "x"), (ymin, ymax, "y")):
        if high < low:
            raise DatasetFormatError(
                f"{xml_file}: <object> {index} ({name!r}) has <{axis}max> {high:g} < "
                f"<{axis}min> {low:g}; expected {axis}min <= {axis}max"
            )
    return {
        # VOC's xmin/ymin are 1-based inclusive pixel indices; Detectron2's boxes start at 0.
        "bbox": [xmin - 1.0, ymin - 1.0, xmax, ymax],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": class_index[name],
        "difficult": _difficult(xml_file, index, obj),
    }


class ImageIndex:
    """The image files of one directory, listed once: ``stem -> {lower-case extension: name}``."""

    def __init__(self, directory: str):
        self.directory = directory
        self.names = set()
        self.by_stem: Dict[str, Dict[str, str]] = {}
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_file():
                    self.names.add(entry.name)
                    stem, ext = os.path.splitext(entry.name)
                    self.by_stem.setdefault(stem, {})[ext.lower()] = entry.name

    def find(self, xml_file: str, filename: Optional[str]) -> str:
        """Path of the image of ``xml_file``: its ``<filename>`` if that file is in the
        directory, else the XML stem with the first of :data:`IMAGE_EXTENSIONS` (any case)."""
        tried = []
        if filename:
            filename = os.path.basename(filename.strip())
            if filename in self.names:
                return os.path.join(self.directory, filename)
            tried.append(filename)
        stem = os.path.splitext(os.path.basename(xml_file))[0]
        candidates = self.by_stem.get(stem, {})
        for ext in IMAGE_EXTENSIONS:
            if ext in candidates:
                return os.path.join(self.directory, candidates[ext])
        tried += [stem + ext for ext in IMAGE_EXTENSIONS]
        raise ImageReadError(
            f"{xml_file}: no image file in {self.directory!r}; tried {tried} "
            f"(extensions in any case)"
        )


def _declared_size(xml_file: str, root: ET.Element) -> Optional[Tuple[int, int]]:
    """``(height, width)`` from ``<size>``, or None when missing or 0."""
    height_text, width_text = root.findtext("size/height"), root.findtext("size/width")
    if not (height_text or "").strip() or not (width_text or "").strip():
        return None
    height = _number(xml_file, "<size><height>", height_text)
    width = _number(xml_file, "<size><width>", width_text)
    if height == 0 or width == 0:
        return None
    if height < 0 or width < 0 or height != int(height) or width != int(width):
        raise DatasetFormatError(
            f"{xml_file}: <size> is width={width_text!r} height={height_text!r}; expected "
            f"positive whole numbers of pixels (or 0 / no <size> to read them from the image)"
        )
    return int(height), int(width)


def _image_height_width(path: str) -> Tuple[int, int]:
    """``(height, width)`` of the image at ``path``, from its header (EXIF orientation applied)."""
    try:
        width, height = image_size(path)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read the image size ({e})") from e
    return height, width


def _record(xml_file: str, images: ImageIndex, class_index: Dict[str, int]) -> dict:
    root = _parse_xml(xml_file)
    file_name = images.find(xml_file, root.findtext("filename"))
    height, width = _declared_size(xml_file, root) or _image_height_width(file_name)
    return {
        "file_name": file_name,
        "image_id": os.path.splitext(os.path.basename(xml_file))[0],
        "height": height,
        "width": width,
        "annotations": [
            _annotation(xml_file, i, obj, class_index) for i, obj in enumerate(root.iter("object"))
        ],
    }


def load_voc_folder(folder: str, split: Optional[str] = None,
                    class_names: Optional[Sequence[str]] = None) -> List[dict]:
    """Detectron2 dataset dicts of the Pascal VOC ``folder`` (see the module docstring).

    Args:
        folder: holds ``Annotations/`` and the images (in ``JPEGImages/`` if it exists).
        split: None or "" for every ``Annotations/*.xml`` (sorted by name); a name for
            ``ImageSets/Main/<name>.txt``; a path ending in ``.txt`` for that file.
        class_names: ``category_id`` indexes this list; None for the sorted names found in all
            XMLs of the folder. An object of another class is an error.
    """
    check_folder(folder)
    xml_files = annotation_files(folder, split)
    if class_names is None:
        class_names = class_names_in(folder)
    class_index = {name: i for i, name in enumerate(class_names)}
    images = ImageIndex(image_dir(folder))
    return [_record(xml_file, images, class_index) for xml_file in xml_files]


def register_voc_dataset(name: str, folder: str, split: Optional[str] = None,
                         class_names: Optional[Sequence[str]] = None,
                         year: int = 2007) -> List[str]:
    """Register the VOC ``folder`` (``split``) under ``name`` with VOC-evaluator metadata.

    The folder, its ``Annotations/`` and the split file are checked now, and the class list
    (when None, from every XML of the folder) is resolved now, so a bad folder fails here rather
    than when training starts. ``year`` 2007 makes the evaluator use VOC2007's 11-point AP, any
    other the VOC2010+ area. Returns the class list (``thing_classes``).
    """
    check_folder(folder)
    split_file(folder, split)
    if class_names is None:
        class_names = class_names_in(folder)
    class_names = list(class_names)
    if not class_names:
        raise DatasetFormatError(
            f"dataset {name!r}: no class list given and no <object><name> in "
            f"{_annotation_dir(folder)!r}"
        )
    register(name, partial(load_voc_folder, folder, split, class_names),
             thing_classes=class_names, evaluator_type="pascal_voc", dirname=folder,
             split=split or "", year=year)
    return class_names


def register_voc_config_entry(name: str, folder: str, split: str, classes) -> None:
    """Register one ``[name, folder, split, classes]`` entry of ``DATASETS.VOC_DATASETS``:
    ``split`` "" for every XML; ``classes`` a list of class names, or "" / [] for the names found
    in the XMLs."""
    where = f"{_CONFIG_KEY} entry {name!r}"
    if not isinstance(split, str):
        raise ValueError(f"{where}: split {split!r} must be a string ('' for every XML)")
    if isinstance(classes, str):
        if classes:
            raise ValueError(f"{where}: classes {classes!r} must be a list of class names, or "
                             f"'' / [] for the names in the XMLs")
        classes = None
    elif not (isinstance(classes, (list, tuple)) and all(isinstance(c, str) for c in classes)):
        raise ValueError(f"{where}: classes {classes!r} must be a list of class names, or '' / []")
    register_voc_dataset(name, folder, split or None, list(classes) if classes else None)
