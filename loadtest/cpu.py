"""Where the CPU goes during a load test: per-process CPU seconds, sampled once a second.

The load generator shares the machine with the service, so every step reports the cores used by
each process of the target, by locust, and by everything else on the machine.
"""

from __future__ import annotations

import threading
import time

import psutil

SAMPLE_INTERVAL_S = 1.0
MACHINE = "machine"
ROLE_MARKERS = (
    ("gunicorn", "gunicorn"),
    ("locust", "locust"),
    ("_bentoml_impl.worker", "service"),
    ("multiprocessing.resource_tracker", "mp_tracker"),
    ("multiprocessing.spawn", "profiler"),  # the whylogs writer's child process
    ("bentoml", "supervisor"),
)


def role(process: psutil.Process) -> str:
    """A short, stable name for a process of the target (worker roles are in its command line)."""
    try:
        command = " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    return next((name for marker, name in ROLE_MARKERS if marker in command), process.name())


class CpuSampler:
    """Samples cumulative CPU seconds of process trees in a background thread.

    ``samples`` holds ``(time, {label: cpu_seconds})``; labels are ``<group>/<role>`` per
    process, plus ``machine`` (all busy CPU time of the machine).
    """

    def __init__(self, groups: dict[str, int | None]) -> None:
        self.groups = {name: pid for name, pid in groups.items() if pid is not None}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cpu-sampler", daemon=True)
        self._processes: dict[int, tuple[str, psutil.Process]] = {}

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), self.sample()))
            self._stop.wait(SAMPLE_INTERVAL_S)

    def sample(self) -> dict[str, float]:
        machine = psutil.cpu_times()
        totals = {MACHINE: machine.user + machine.system + getattr(machine, "nice", 0.0)}
        for label, process in self._tree():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            totals[label] = totals.get(label, 0.0) + times.user + times.system
        return totals

    def _tree(self) -> list[tuple[str, psutil.Process]]:
        """Processes of each group, labelled once per pid (psutil keeps their CPU baselines)."""
        found = []
        for group, pid in self.groups.items():
            try:
                root = psutil.Process(pid)
                members = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in members:
                if process.pid not in self._processes:
                    self._processes[process.pid] = (f"{group}/{role(process)}", process)
                found.append(self._processes[process.pid])
        return found


def cores_between(
    samples: list[tuple[float, dict[str, float]]], start: float, end: float
) -> dict[str, float]:
    """Mean cores used per label between ``start`` and ``end``, plus ``other`` for the rest."""
    inside = [(t, values) for t, values in samples if start <= t <= end]
    if len(inside) < 2:
        return {}
    (t0, first), (t1, last) = inside[0], inside[-1]
    cores = {
        label: round((last[label] - first.get(label, 0.0)) / (t1 - t0), 3)
        for label in last
        if label in first
    }
    if MACHINE in cores:
        ours = sum(value for label, value in cores.items() if label != MACHINE)
        cores["other"] = round(max(cores[MACHINE] - ours, 0.0), 3)
    return cores
