"""Interleaved measurement: every function once per round, in order, results kept per round;
a measured command does not outlive its supervisor."""
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from dynnet_d2.utils.measure import interleaved_median_s, interleaved_rounds

REPO = Path(__file__).resolve().parents[2]


def test_interleaved_rounds_call_each_function_once_per_round_in_order():
    calls = []

    def fn(name):
        def call():
            calls.append(name)
            return len(calls)
        return call

    results = interleaved_rounds({"a": fn("a"), "b": fn("b")}, rounds=3)
    assert calls == ["a", "b"] * 3
    assert results == {"a": [1, 3, 5], "b": [2, 4, 6]}


def test_interleaved_median_s_times_every_call():
    calls = []
    runs = interleaved_median_s({"a": lambda: calls.append("a"),
                                 "b": lambda: calls.append("b")}, rounds=3)
    assert calls == ["a", "b"] * 3
    assert all(len(r["runs_s"]) == 3 and r["median_s"] in r["runs_s"]
               and all(t >= 0 for t in r["runs_s"]) for r in runs.values())


def test_a_measured_command_ends_with_its_supervisor_on_sigterm(tmp_path):
    # the supervisor runs a command that starts a grandchild; both write their pids and sleep
    pids = tmp_path / "pids"
    command = [sys.executable, "-c",
               "import os, subprocess, sys, time\n"
               f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
               f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
               "time.sleep(120)\n"]
    supervisor = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; from pathlib import Path\n"
         "from dynnet_d2.utils.measure import run_measured\n"
         "try:\n"
         f"    run_measured({command!r}, Path({str(tmp_path / 'log.txt')!r}))\n"
         "except KeyboardInterrupt:\n"
         "    sys.exit(130)\n"], cwd=REPO)
    deadline = time.monotonic() + 120
    while not (pids.is_file() and pids.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    command_pid, grandchild_pid = map(int, pids.read_text().split())
    supervisor.send_signal(signal.SIGTERM)  # `kill PID`: the supervisor alone
    assert supervisor.wait(timeout=60) == 130
    alive = psutil.wait_procs([psutil.Process(p) for p in (command_pid, grandchild_pid)
                              if psutil.pid_exists(p)], timeout=30)[1]
    assert not alive, "the measured command outlived its supervisor"
