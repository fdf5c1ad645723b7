"""Entry point in which ``generate_dataset`` generates the dataset in a fresh interpreter:

    python -m dynnet_d2.data.synthetic --root ROOT --workers N --spec '{"num_train": 8, ...}'

Multiprocessing never re-runs a package's ``__main__`` module in its workers, so this process's
worker pool imports none of the code of whoever started it.  The command line for people is
``tools/make_synthetic.py``.
"""
import argparse
import json

from .generate import generate_in_this_process
from .spec import SyntheticSpec


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Generate the synthetic shapes dataset.")
    p.add_argument("--root", required=True, help="the data goes to ROOT/shapes")
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--spec", required=True, help="SyntheticSpec fields as a JSON object")
    args = p.parse_args(argv)
    generate_in_this_process(args.root, SyntheticSpec(**json.loads(args.spec)), args.workers)


if __name__ == "__main__":
    main()
