#!/usr/bin/env python
"""Few-shot seed sweeps (thesis §7.3): splits x shots x seeds x methods, one base model per
split, each run in its own folder with its config, log and results.json.

    python tools/run_experiments.py --sweep-dir output/sweeps/tfa_split1 --splits 1 \\
        --shots 1 2 3 5 10 --seeds 0-19 --methods cos fc base_only --workers 2

Methods: cos (TFA w/ cos), fc (TFA w/ fc), full (FRCN+ft-full), joint (FRCN+joint), base_only,
or your fine-tuning config as NAME=CONFIG.yaml. TFA w/ cos and w/ fc fine-tune from feature
caches (``FEWSHOT.CACHE``; --no-cache for the full model). Schedules are the configs' (per shot,
scaled by K); --max-iter 1=400 5=2000 sets the total iterations of a shot.

Resumable: finished runs are skipped, an interrupted one resumes from its last checkpoint,
recorded failures are skipped unless --retry-failed. The exit code is 1 when any run failed
(summary.json and the printed list name each failure's error and log), 2 for bad arguments.

On a Slurm cluster: --backend submitit [--cluster slurm] --slurm-partition P --timeout-min 60
--gpus-per-node 1 --cpus-per-task 8 (one job per run, jobs' files in <sweep-dir>/jobs).
Then: python tools/aggregate_seeds.py <sweep-dir>
"""
import argparse
import sys

from dynnet_d2.engine.sweep.cli import parse_and_check, run_from_args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        plan = parse_and_check(parser, sys.argv[1:])
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"run_experiments: {e}", file=sys.stderr)
        return 2
    return run_from_args(plan)


if __name__ == "__main__":
    sys.exit(main())
