"""The files a sweep run leaves in its folder, and when a run counts as finished: read by the
sweep (to skip and resume) and by :mod:`dynnet_d2.experiments.seed_stats` (to aggregate).

* ``results.json``: written atomically last by a finished run; finished exactly when it parses
  as a JSON object with status "finished" and has ``results``.
* ``failed.json``: the error, traceback and log of a run that raised.

A record file that exists but cannot be read as such a record (cut short, not a JSON object,
another status) is *unreadable*: the run counts as not finished, so the sweep runs it again and
the aggregation lists it (:func:`read_run`).
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

RECORD = "results.json"
FAILURE = "failed.json"
LOG = "log.txt"


def read_json_record(path: Path) -> Tuple[Optional[dict], Optional[str]]:
    """``(record, None)`` when ``path`` holds a JSON object, else ``(None, why)`` (``why`` is
    None when there is no file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, None
    except OSError as e:
        return None, f"cannot be read ({e.strerror or e})"
    try:
        record = json.loads(text)
    except ValueError as e:
        return None, f"is not valid JSON ({e}; cut short?)"
    if not isinstance(record, dict):
        return None, f"holds a JSON {type(record).__name__}, not an object"
    return record, None


def _finished(output_dir) -> Tuple[Optional[dict], Optional[str]]:
    record, why = read_json_record(Path(output_dir) / RECORD)
    if record is None:
        return None, why
    if record.get("status") != "finished" or not isinstance(record.get("results"), dict):
        return None, (f"has status {record.get('status')!r}" if record.get("status") != "finished"
                      else "has no 'results' object")
    return record, None


def finished_record(output_dir) -> Optional[dict]:
    """The run's ``results.json`` if it is complete (a JSON object, status "finished",
    results)."""
    return _finished(output_dir)[0]


@dataclass
class RunState:
    """What a run's folder says: ``finished`` / ``failed`` records, and ``unreadable``: each
    record file that exists but is not a complete record, as "path: why"."""

    finished: Optional[dict]
    failed: Optional[dict]
    unreadable: List[str]


def read_run(output_dir) -> RunState:
    """The run's records (a finished record wins over a failure one)."""
    finished, why_not_finished = _finished(output_dir)
    unreadable = [] if why_not_finished is None else [
        f"{Path(output_dir) / RECORD} {why_not_finished}"]
    if finished is not None:
        return RunState(finished, None, [])
    failed, why = read_json_record(Path(output_dir) / FAILURE)
    if why is not None:
        unreadable.append(f"{Path(output_dir) / FAILURE} {why}")
    return RunState(None, failed, unreadable)
