"""Per-step results of a staircase run, from locust's ``_stats_history.csv``, judged on the SLO.

Locust writes one history row per second and request name (plus ``Aggregated``): cumulative
request and failure counts, and percentiles over a rolling ~10 s window. For each step:
- achieved req/s: growth of the cumulative count of successful requests over the held part of
  the step (the first ``ramp_seconds`` of each step are skipped while users spawn); fast errors
  do not count as throughput;
- p50/p95/p99: the worst rolling-window value locust reported during the held part, so a step
  passes only if no 10 s stretch of it broke the SLO;
- failures: every failed request of the step, ramp included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from core.settings import LoadTestSettings
from loadtest.cpu import cores_between

AGGREGATED = "Aggregated"
PERCENTILES = {"p50_ms": "50%", "p95_ms": "95%", "p99_ms": "99%"}
TIME, COUNT, FAILURES = "Timestamp", "Total Request Count", "Total Failure Count"


@dataclass(frozen=True)
class StepWindow:
    """A step as the load shape ran it: offered rate, users and wall-clock bounds."""

    index: int
    offered_rps: float
    users: int
    start: float
    end: float


def read_steps(step_log: Path, last_time: float) -> list[StepWindow]:
    """Step windows from the shape's log; a step without a recorded end ends at ``last_time``."""
    entries = [json.loads(line) for line in step_log.read_text().splitlines() if line.strip()]
    starts = [e for e in entries if e["event"] == "step"]
    end = next((e["at"] for e in entries if e["event"] == "end"), last_time)
    bounds = [s["at"] for s in starts[1:]] + [end]
    return [
        StepWindow(s["step"], s["offered_rps"], s["users"], s["at"], stop)
        for s, stop in zip(starts, bounds, strict=True)
    ]


def read_history(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, na_values=["N/A"])


def _count_at(rows: pd.DataFrame, column: str, t: float) -> float:
    """A cumulative counter as of time ``t`` (0 before the first row)."""
    before = rows[rows[TIME] <= t]
    return float(before[column].iloc[-1]) if len(before) else 0.0


def window_stats(rows: pd.DataFrame, step: StepWindow, ramp_s: float) -> dict[str, Any]:
    """Achieved rate, worst rolling percentiles and failures of one request name in one step."""
    held = rows[(rows[TIME] >= step.start + ramp_s) & (rows[TIME] <= step.end)]
    span = float(held[TIME].iloc[-1] - held[TIME].iloc[0]) if len(held) >= 2 else 0.0
    succeeded = held[COUNT] - held[FAILURES]
    achieved = float(succeeded.iloc[-1] - succeeded.iloc[0]) / span if span else 0.0
    stats: dict[str, Any] = {"achieved_rps": round(achieved, 2)}
    for key, column in PERCENTILES.items():
        worst = held[column].max() if len(held) else float("nan")
        stats[key] = None if pd.isna(worst) else float(worst)
    stats["requests"] = int(_count_at(rows, COUNT, step.end) - _count_at(rows, COUNT, step.start))
    stats["failures"] = int(
        _count_at(rows, FAILURES, step.end) - _count_at(rows, FAILURES, step.start)
    )
    return stats


def holds_slo(stats: dict[str, Any], slo: LoadTestSettings) -> bool:
    return (
        stats["p95_ms"] is not None
        and stats["p95_ms"] <= slo.slo_p95_ms
        and stats["p99_ms"] <= slo.slo_p99_ms
        and stats["failures"] <= slo.slo_max_failures
    )


def summarise(
    history: pd.DataFrame,
    steps: list[StepWindow],
    ramp_s: float,
    slo: LoadTestSettings,
    cpu_samples: list[tuple[float, dict[str, float]]] | None = None,
) -> dict[str, Any]:
    """Per step: offered vs achieved, percentiles, failures, SLO verdict, CPU; then the verdicts.

    ``max_sustainable_rps`` is the highest offered rate such that it and every lower step held
    the SLO and actually carried at least ``min_achieved_ratio`` of the offered rate.
    """
    aggregated = history[history["Name"] == AGGREGATED]
    endpoints = sorted(set(history["Name"]) - {AGGREGATED})
    results, sustainable, climbing = [], None, True
    for step in steps:
        stats = window_stats(aggregated, step, ramp_s)
        delivered = stats["achieved_rps"] >= slo.min_achieved_ratio * step.offered_rps
        holds = holds_slo(stats, slo)
        climbing = climbing and holds and delivered
        if climbing:
            sustainable = step.offered_rps
        results.append(
            {
                "step": step.index,
                "offered_rps": step.offered_rps,
                "users": step.users,
                **stats,
                "holds_slo": holds,
                "delivered": delivered,
                "seconds": round(step.end - step.start, 1),
                "endpoints": {
                    name: window_stats(history[history["Name"] == name], step, ramp_s)
                    for name in endpoints
                },
                "cpu_cores": cores_between(cpu_samples or [], step.start + ramp_s, step.end),
            }
        )
    return {
        "slo": {
            "p95_ms": slo.slo_p95_ms,
            "p99_ms": slo.slo_p99_ms,
            "max_failures": slo.slo_max_failures,
            "min_achieved_ratio": slo.min_achieved_ratio,
        },
        "steps": results,
        "slo_met": bool(results) and all(r["holds_slo"] for r in results),
        "max_sustainable_rps": sustainable,
    }


def format_steps(summary: dict[str, Any]) -> str:
    """The per-step table printed after a run."""
    lines = [
        f"{'step':>4} {'offered':>8} {'achieved':>9} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'failures':>8}  verdict"
    ]
    for s in summary["steps"]:
        verdict = "ok" if s["holds_slo"] else "SLO missed"
        if not s["delivered"]:
            verdict += " (offered rate not delivered)"
        lines.append(
            f"{s['step']:>4} {s['offered_rps']:>8.0f} {s['achieved_rps']:>9.1f} "
            f"{_ms(s['p50_ms']):>7} {_ms(s['p95_ms']):>7} {_ms(s['p99_ms']):>7} "
            f"{s['failures']:>8}  {verdict}"
        )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
