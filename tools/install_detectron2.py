#!/usr/bin/env python
"""Make Detectron2 importable in the current environment without vendoring it.

1. If a compiled, official Detectron2 is importable (``detectron2._C`` loads),
   leave it untouched.
2. Otherwise install the registry's ``sal-detectron2`` wheel (a snapshot of
   Detectron2's main branch, built for CPython 3.10) with ``--no-deps`` into
   this interpreter's site-packages. Its pure-Python code runs on 3.11; its
   ``_C`` extension does not load, see ``python -m dynnet_d2.collect_env``.
3. Install ``lvis`` without its ``opencv-python`` (GUI) requirement; we depend
   on ``opencv-python-headless``.
"""
import importlib.util
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

WHEEL = "sal-detectron2==0.7.2"
LVIS = "lvis==0.5.3"


def _pip(*args: str) -> None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *args])


def compiled_detectron2_present() -> bool:
    """True when a Detectron2 with a loadable ``_C`` extension is importable."""
    code = "import detectron2._C"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def install_registry_wheel() -> None:
    """Install the cp310 ``sal-detectron2`` wheel into this interpreter's purelib."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    with tempfile.TemporaryDirectory() as tmp:
        _pip("--no-deps", "--only-binary=:all:", "--python-version", "3.10",
             "--implementation", "cp", "--target", tmp, WHEEL)
        # The wheel also ships a top-level ``tools`` package; we copy only the library.
        for name in (("detectron2",)
                     + tuple(p.name for p in Path(tmp).glob("sal_detectron2-*.dist-info"))):
            dst = purelib / name
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(Path(tmp) / name, dst)


def main() -> int:
    if compiled_detectron2_present():
        print("install_detectron2: a compiled Detectron2 is importable; leaving it untouched")
    elif importlib.util.find_spec("detectron2") is not None:
        print("install_detectron2: Detectron2 (without a loadable _C) already installed")
    else:
        print(f"install_detectron2: installing {WHEEL} (no compiled Detectron2 found)")
        install_registry_wheel()
    if importlib.util.find_spec("lvis") is None:
        _pip("--no-deps", LVIS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
