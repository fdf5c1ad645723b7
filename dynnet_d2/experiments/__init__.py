"""Experiments above the methods: few-shot seed sweeps (:mod:`.sweep`, tools/run_experiments.py)
and statistics over seeds (:mod:`.seed_stats`, tools/aggregate_seeds.py). (The benchmark arm
runner is :mod:`dynnet_d2.engine.arms`, below the methods, whose benchmarks use it.)

May import: the shared parts of dynnet_d2 (utils, config, compat, data, evaluation, modeling,
engine); never a method by name: methods hand over what the experiments need (e.g. TFA's few-shot
sweep methods and its checkpoint surgery) through the declarations in :mod:`dynnet_d2.engine`.
"""
