"""``leadrisk loadtest run`` and ``compare``: launch a target, drive it with locust, judge it.

Locust runs as its own process (it patches ``ssl`` through gevent, so it must never share a
process with the service or pytest). The runner writes a plan (steps, mix, entity ids) for it,
samples CPU per process while it runs, then turns locust's CSVs into a per-step summary JSON and
a chart in ``reports/loadtest/<timestamp>_<target>/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from core.settings import PROJECT_ROOT, LoadProfile, Settings
from features import tables
from loadtest import PLAN_ENV, TARGETS, chart, summary
from loadtest.cpu import CpuSampler
from loadtest.targets import Target, launched

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
RESULTS_DIR = Path(__file__).with_name("results")
LATEST_COMPARE = RESULTS_DIR / "latest_compare.json"
USER_CLASS = "MixUser"
CSV_PREFIX = "locust"
STEP_LOG = "steps.jsonl"
LOCUST_GRACE_S = 120
GENERATOR_CPU_WARNING = "CPU usage above"
QUIET_MACHINE_CORES = 0.25


class LoadTestError(RuntimeError):
    """Locust could not run the plan (see its log in the run folder)."""


@dataclass(frozen=True)
class RunResult:
    target: str
    out_dir: Path
    summary: dict[str, Any]

    @property
    def slo_met(self) -> bool:
        return self.summary["slo_met"]

    @property
    def summary_path(self) -> Path:
        return self.out_dir / "summary.json"


def _stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def hardware() -> dict[str, Any]:
    """The machine the numbers come from (the load generator runs on it too)."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "reference_loop_ms": reference_loop_ms(),
    }


def reference_loop_ms(iterations: int = 1_000_000) -> float:
    """Best of 3 timings of a plain Python loop: how fast one core runs Python right now. Virtual
    machines of the same kind differ by 2x or more, so runs are compared only alongside it."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(iterations):
            total += i
        timings.append(time.perf_counter() - started)
    return round(min(timings) * 1000, 1)


def entity_ids(settings: Settings) -> dict[str, list[int]]:
    """A fixed sample of the lead and customer ids in the canonical (materialized) tables."""
    sample = settings.loadtest.id_sample
    ids = {}
    for name, spec in (("lead", tables.LEADS), ("customer", tables.CUSTOMERS)):
        keys = tables.read_table(spec, settings.tables_dir)[spec.key]
        ids[name] = keys.sample(min(sample, len(keys)), random_state=0).astype(int).tolist()
    return ids


def build_plan(settings: Settings, profile: LoadProfile, out_dir: Path) -> dict[str, Any]:
    """Everything the locustfile needs, so it imports nothing from leadrisk."""
    cfg = settings.loadtest
    return {
        "warmup": {
            "offered_rps": profile.nominal_rps * profile.multiples[0],
            "seconds": profile.warmup_seconds,
        },
        "steps": [
            {"offered_rps": profile.nominal_rps * multiple, "seconds": profile.step_seconds}
            for multiple in profile.multiples
        ],
        "user_rps": cfg.user_rps,
        "mix": {
            "score_lead": cfg.lead_share,
            "score_customer": cfg.customer_share,
            "batch_score": cfg.batch_share,
            "feedback": cfg.feedback_share,
        },
        "batch_ids": cfg.batch_ids,
        "timeout_s": cfg.request_timeout_s,
        "step_log": str(out_dir / STEP_LOG),
        "ids": entity_ids(settings),
    }


def locust_command(url: str, out_dir: Path, user_class: str = USER_CLASS) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        url,
        "--csv",
        str(out_dir / CSV_PREFIX),
        "--csv-full-history",
        "--only-summary",
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
        "--logfile",
        str(out_dir / "locust.log"),
        user_class,
    ]


def drive(target: Target, plan: dict[str, Any], out_dir: Path) -> list:
    """Run locust against ``target`` until the shape ends; returns the CPU samples."""
    plan_path = out_dir / "plan.json"
    plan_path.write_text(json.dumps(plan))
    timeout = plan["warmup"]["seconds"] + sum(step["seconds"] for step in plan["steps"])
    timeout += LOCUST_GRACE_S
    with open(out_dir / "locust.out", "w") as output:
        process = subprocess.Popen(
            locust_command(target.url, out_dir),
            cwd=PROJECT_ROOT,
            env={**os.environ, PLAN_ENV: str(plan_path)},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        with CpuSampler({"target": target.pid, "locust": process.pid}) as sampler:
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired as err:
                process.kill()
                process.wait()
                raise LoadTestError(f"locust still running after {timeout}s; killed") from err
    if code != 0:
        raise LoadTestError(f"locust exited with {code}; see {out_dir / 'locust.out'}")
    return sampler.samples


def run(
    settings: Settings,
    profile_name: str,
    target_name: str,
    url: str | None = None,
    env: dict[str, str] | None = None,
    feedback: bool | None = None,
) -> RunResult:
    """One staircase against one target; writes CSVs, summary.json and chart.png.

    ``env``: variables the started target needs beyond ``os.environ`` (see ``targets``).
    ``feedback``: whether the mix posts /feedback; by default only to a target started here,
    whose stores are the run's folder (``targets.scratch_stores``), never to an external ``url``.
    """
    profile = settings.loadtest.profile(profile_name)
    started = _stamp()
    out_dir = settings.reports_dir / "loadtest" / f"{started}_{target_name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = build_plan(settings, profile, out_dir)
    if not (url is None if feedback is None else feedback):
        plan["mix"]["feedback"] = 0.0
    with launched(settings, target_name, out_dir, url, env) as target:
        samples = drive(target, plan, out_dir)
        target_url = target.url
    history_path = out_dir / f"{CSV_PREFIX}_stats_history.csv"
    history = summary.read_history(history_path)
    if history.empty:
        raise LoadTestError(f"locust recorded no history; see {out_dir / 'locust.out'}")
    steps = summary.read_steps(out_dir / STEP_LOG, float(history[summary.TIME].max()))
    result = summary.summarise(history, steps, profile.ramp_seconds, settings.loadtest, samples)
    log_text = (out_dir / "locust.log").read_text(errors="replace")
    result = {
        "target": target_name,
        "profile": profile_name,
        "url": target_url,
        "started": started,
        "user_class": USER_CLASS,
        "mix": plan["mix"],
        "scoring_workers": settings.service.workers,
        "service_settings": service_settings(settings),
        "hardware": hardware(),
        "generator_cpu_warning": GENERATOR_CPU_WARNING in log_text,
        "other_cores_max": max(
            (s["cpu_cores"].get("other", 0.0) for s in result["steps"]), default=0
        ),
        **result,
        "files": {
            "stats": str(out_dir / f"{CSV_PREFIX}_stats.csv"),
            "history": str(history_path),
            "failures": str(out_dir / f"{CSV_PREFIX}_failures.csv"),
            "chart": str(out_dir / "chart.png"),
        },
    }
    title = chart.title(target_name, profile_name, result)
    chart.draw(history, steps, settings.loadtest, title, out_dir / "chart.png")
    run_result = RunResult(target_name, out_dir, result)
    run_result.summary_path.write_text(json.dumps(result, indent=2))
    return run_result


def service_settings(settings: Settings) -> dict[str, Any]:
    """The service settings a run was made with (tokens only as set or not, client tokens by
    name and scopes), so a summary says which trade-offs its numbers were measured under."""
    values = settings.service.model_dump(mode="json")
    values["auth_token"] = "set" if values["auth_token"] else None
    values["auth_tokens"] = {name: g["scopes"] for name, g in values["auth_tokens"].items()}
    return values


def caveats(summary: dict[str, Any]) -> list[str]:
    """Reasons not to trust a run's numbers: a starved load generator or a busy machine."""
    found = []
    if summary["generator_cpu_warning"]:
        found.append("locust warned that its own CPU was saturated (see locust.log)")
    if summary["other_cores_max"] > QUIET_MACHINE_CORES:
        found.append(
            f"other processes used up to {summary['other_cores_max']:.2f} cores during a step"
        )
    return found


def compare(settings: Settings, profile_name: str) -> tuple[dict[str, Any], Path]:
    """The same staircase against the baseline, leadrisk unbatched and leadrisk batched."""
    started = _stamp()
    runs = {name: run(settings, profile_name, name) for name in TARGETS}
    best = {name: r.summary["max_sustainable_rps"] for name, r in runs.items()}
    peak = {name: max(s["achieved_rps"] for s in r.summary["steps"]) for name, r in runs.items()}
    combined = {
        "profile": profile_name,
        "started": started,
        "hardware": hardware(),
        "scoring_workers": settings.service.workers,
        "service_settings": service_settings(settings),
        "slo": runs["leadrisk"].summary["slo"],
        "max_sustainable_rps": best,
        "peak_achieved_rps": peak,
        "ratios": {
            "leadrisk_over_baseline": _ratio(best["leadrisk"], best["baseline"]),
            "batched_over_unbatched": _ratio(best["leadrisk"], best["leadrisk_unbatched"]),
            "peak_leadrisk_over_baseline": _ratio(peak["leadrisk"], peak["baseline"]),
            "peak_batched_over_unbatched": _ratio(peak["leadrisk"], peak["leadrisk_unbatched"]),
        },
        "runs": {name: r.summary | {"out_dir": str(r.out_dir)} for name, r in runs.items()},
    }
    path = settings.reports_dir / "loadtest" / f"compare_{started}.json"
    path.write_text(json.dumps(combined, indent=2))
    RESULTS_DIR.mkdir(exist_ok=True)
    shutil.copyfile(path, LATEST_COMPARE)
    return combined, path


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def format_compare(combined: dict[str, Any]) -> str:
    """Max sustainable and peak throughput per target, then the ratios."""
    lines = [f"{'target':<20}{'max sustainable req/s':>23}{'peak achieved req/s':>21}"]
    for name in TARGETS:
        best = combined["max_sustainable_rps"][name]
        lines.append(
            f"{name:<20}{'none' if best is None else f'{best:.0f}':>23}"
            f"{combined['peak_achieved_rps'][name]:>21.1f}"
        )
    for name, value in combined["ratios"].items():
        lines.append(f"{name}: {'n/a' if value is None else f'{value:.2f}x'}")
    return "\n".join(lines)
