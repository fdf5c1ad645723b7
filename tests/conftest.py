"""Test session set-up: a tiny synthetic dataset in a temporary $DYNNET_DATASETS.

The environment variable is set before dynnet_d2 is imported, so the registered dataset
names (and any subprocess a test starts) use the tiny data, never the default-size set.
"""
import os
import shutil
import tempfile

import pytest

_ROOT = tempfile.mkdtemp(prefix="dynnet_test_datasets_")
os.environ["DYNNET_DATASETS"] = _ROOT
os.environ.setdefault("OMP_NUM_THREADS", "2")

from dynnet_d2.data.synthetic import SyntheticSpec, generate_dataset  # noqa: E402

TINY_SPEC = SyntheticSpec(num_train=24, num_val=6, num_test=12, num_lvis_train=40, seed=0)


@pytest.fixture(scope="session", autouse=True)
def shapes_root():
    """The tiny dataset all registered ``shapes_*`` names point to during the tests."""
    generate_dataset(_ROOT, TINY_SPEC)
    yield _ROOT
    shutil.rmtree(_ROOT, ignore_errors=True)
