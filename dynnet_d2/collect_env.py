"""``python -m dynnet_d2.collect_env``: which Detectron2 is in use and what it lacks here."""
import importlib
import importlib.metadata
import platform
import sys

from tabulate import tabulate


def _version(module: str) -> str:
    """Version and location of ``module``, or why it does not import."""
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # report, never crash: this is a diagnostics tool
        return f"not importable ({type(e).__name__}: {e})"
    try:
        version = importlib.metadata.version(module)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(mod, "__version__", "?")
    return f"{version} @ {getattr(mod, '__file__', '?')}"


def collect_env_info() -> str:
    """A table of the stack plus the list of Detectron2 features unavailable here."""
    import torch

    from . import compat
    from .modeling.pretrained import PREFIX, search_dirs

    rows = [
        ("Python", sys.version.replace("\n", " ")),
        ("platform", platform.platform()),
        ("dynnet_d2", _version("dynnet_d2")),
        ("detectron2", _version("detectron2")),
        ("detectron2 installed by", ", ".join(
            importlib.metadata.packages_distributions().get("detectron2",
                                                            ["(unknown, e.g. source checkout)"]))),
        ("detectron2._C", "loaded" if compat.has_compiled_detectron2()
         else f"NOT loadable: {compat.detectron2_c_extension_error()}"),
        ("torch", _version("torch")),
        ("torch CUDA available", str(torch.cuda.is_available())),
        ("torch threads", str(torch.get_num_threads())),
        ("torchvision", _version("torchvision")),
        ("numpy", _version("numpy")),
        ("pycocotools", _version("pycocotools")),
        ("lvis", _version("lvis")),
        ("cv2", _version("cv2")),
        (f"{PREFIX} weights", ", ".join(sorted(p.name for d in search_dirs() if d.is_dir()
                                               for p in d.glob("*.pth"))) or "none found"),
    ]
    lines = [tabulate(rows)]
    missing = compat.unavailable_ops()
    if missing:
        lines.append("Unavailable with this Detectron2 "
                     "(configs asking for them fail with a clear error):")
        lines += [f"  - {op}" for op in missing]
        lines.append(compat.INSTALL_HINT)
    else:
        lines.append("Compiled Detectron2: every op is available.")
    return "\n".join(lines)


if __name__ == "__main__":
    print(collect_env_info())
