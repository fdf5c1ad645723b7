"""Helpers every layer may use: atomic writes (:mod:`.io`), logging, the datasets root
(:mod:`.env`), measuring commands and interleaved timings (:mod:`.measure`).

May import: nothing else of dynnet_d2.
"""
