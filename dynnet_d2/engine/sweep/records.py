"""The files a sweep run leaves in its folder, and when a run counts as finished: read by the
sweep (to skip and resume) and by :mod:`dynnet_d2.evaluation.seed_stats` (to aggregate).

* ``results.json``: written atomically last by a finished run; finished exactly when it parses
  with status "finished" and has ``results``.
* ``failed.json``: the error, traceback and log of a run that raised.
"""
import json
from pathlib import Path
from typing import Optional

RECORD = "results.json"
FAILURE = "failed.json"
LOG = "log.txt"


def read_json_record(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def finished_record(output_dir) -> Optional[dict]:
    """The run's ``results.json`` if it is complete (parses, status "finished", has results)."""
    record = read_json_record(Path(output_dir) / RECORD)
    if record and record.get("status") == "finished" and isinstance(record.get("results"), dict):
        return record
    return None


def failure_record(output_dir) -> Optional[dict]:
    return read_json_record(Path(output_dir) / FAILURE)
