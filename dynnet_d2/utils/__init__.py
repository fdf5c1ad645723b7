"""Helpers every layer may use: atomic writes (:mod:`.io`), logging, the datasets root
(:mod:`.env`), measuring commands and interleaved timings (:mod:`.measure`), SIGTERM handled
as Ctrl-C while supervising other processes (:mod:`.signals`).

May import: nothing else of dynnet_d2.
"""
