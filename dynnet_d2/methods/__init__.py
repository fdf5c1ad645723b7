"""The methods of the thesis, one package each: its modules (registered in Detectron2's
registries and ours), its config keys (``add_<method>_config``), its pipeline steps, analysis and
benchmark arms. Importing this package registers every method.

May import: every shared part of dynnet_d2 (utils, config, compat, data, evaluation, modeling,
engine); never another method, nor ``experiments`` (which sits above the methods). Nothing
outside a method's package imports it by name: the shared parts declare what a method plugs into
(meta-architecture needs, trainer choosers, few-shot sweep methods, the dynamic-compute protocol,
registries) and the method registers itself there.
"""
from . import deepmoe, fsrw, idk, shapeprop, skipnet, tafe, tfa  # noqa: F401  (registration)
