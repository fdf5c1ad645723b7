"""dynnet_d2: dynamic neural networks of one thesis as Detectron2 components.

Detectron2 itself is not a PyPI dependency (it is not published there): an
already importable, compiled Detectron2 is used untouched, otherwise
``tools/install_detectron2.py`` (run by ``make install``) installs the
registry's ``sal-detectron2`` wheel. See README.md.
"""
from setuptools import find_packages, setup

setup(
    name="dynnet_d2",
    version="0.1.0",
    description=("Dynamic neural networks "
                 "(SkipNet, DeepMoE, IDK, TAFE-Net, FSRW, TFA, ShapeProp) on Detectron2"),
    packages=find_packages(include=["dynnet_d2", "dynnet_d2.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "numpy>=1.24",
        "Pillow>=9",
        "opencv-python-headless>=4.8",
        "fvcore>=0.1.5.post20221221",
        "iopath>=0.1.9",
        "pycocotools>=2.0.7",
        # Compiled COCOeval (pycocotools' numbers) when Detectron2's own is not built.
        "faster-coco-eval==1.8.0",
        "omegaconf>=2.1,<2.4",
        "hydra-core>=1.1",
        "yacs>=0.1.8",
        "termcolor>=1.1",
        "tabulate",
        "cloudpickle",
        "tqdm>4.29.0",
        "matplotlib",
        "tensorboard",
        "packaging",
        "psutil",
        # Sweeps on Slurm clusters (tools/run_experiments.py --backend submitit).
        "submitit==1.5.4",
        # SkipNet's batch-1 RNN gates as one compiled function (modeling/skipnet/gates.py).
        "numba==0.68.1",
        # Small real image data for classification tests (sklearn.datasets.load_digits); AP,
        # logistic regression and t-SNE of TAFE-Net's benchmark.
        "scikit-learn==1.9.1",
        # One thread for t-SNE's OpenMP loops on a few hundred points (methods/tafe/analysis.py).
        "threadpoolctl>=3.1",
        # Student-t quantiles of the seed statistics' confidence intervals (utils/stats.py).
        "scipy>=1.10",
        # detectron2.model_zoo imports pkg_resources, removed in setuptools 81.
        "setuptools<81",
    ],
    extras_require={"dev": ["pytest>=7", "pytest-timeout", "ruff==0.17.5"]},
    license="Apache-2.0",
)
