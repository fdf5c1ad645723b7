#!/usr/bin/env python
"""Few-shot seed sweeps (thesis §7.3): splits x shots x seeds x methods, one base model per
split, each run in its own folder with its config, log and results.json.

    python tools/run_experiments.py --sweep-dir output/sweeps/tfa_split1 --splits 1 \\
        --shots 1 2 3 5 10 --seeds 0-19 --methods cos fc base_only --workers 2

Methods: cos (TFA w/ cos), fc (TFA w/ fc), full (FRCN+ft-full), joint (FRCN+joint), base_only
(the surgery checkpoint with the FC head it was trained with), or your fine-tuning config as
NAME=CONFIG.yaml. TFA w/ cos and w/ fc fine-tune from feature caches (``FEWSHOT.CACHE``;
--no-cache for the full model).

Base model, per split (the log names it, and its iterations, before anything trains):
--base-weights 1=output/demo/base_split1/model_final.pth starts from a trained one; else the one
in --base-config's OUTPUT_DIR is reused, or trained there with --base-config's own schedule.

Schedules: --max-iter 1=400 5=2000 sets the TOTAL iterations of a shot's fine-tuning runs;
without it a per-shot config (<N>itxK) trains N x K, and a SOLVER.MAX_ITER in --opts is then per
shot too. --max-iter and --opts apply to the fine-tuning runs only, never to the base training.
The log states each (method, shot)'s iterations and which of these they are.

Resumable: finished runs are skipped, an interrupted one resumes from its last checkpoint,
recorded failures are skipped unless --retry-failed, a record that cannot be read is run again.
Exit code: 0, 1 when any run failed (summary.json and the printed list name each failure's
error and log), 2 for bad arguments (checked before any run: methods, seeds, keys, datasets,
--base-weights, a writable --sweep-dir), 130 when interrupted (Ctrl-C or SIGTERM; run it again
to resume).

On a Slurm cluster: --backend submitit [--cluster slurm] --slurm-partition P --timeout-min 60
--gpus-per-node 1 --cpus-per-task 8 (one job per run, jobs' files in <sweep-dir>/jobs).
Then: python tools/aggregate_seeds.py <sweep-dir>
"""
import argparse
import sys

from dynnet_d2.experiments.sweep.cli import INTERRUPTED, parse_and_check, run_from_args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    try:
        try:
            plan = parse_and_check(parser, sys.argv[1:])
        except (ValueError, FileNotFoundError, KeyError, PermissionError) as e:
            print(f"run_experiments: {e}", file=sys.stderr)
            return 2
        return run_from_args(plan)
    except KeyboardInterrupt:
        print(f"\nrun_experiments: {INTERRUPTED}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
