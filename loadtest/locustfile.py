"""Locust users and the staircase load shape, for leadrisk and the Flask baseline alike.

Locust patches the standard library through gevent, so this file runs only in locust's own
process (``leadrisk loadtest run`` starts it from the project root) and imports nothing heavy:
everything it needs (ids, steps, mix, pacing) is in the plan JSON named by ``LOADTEST_PLAN``.

User classes: ``LeadUser`` and ``CustomerUser`` score single entities; ``MixUser`` is the
realistic mix (mostly single scoring, a small share of ``/batch_score`` calls, feedback posts
when enabled). Each user is paced with ``constant_throughput``; the shape sets how many users and
at what per-user rate, so the offered rate of each step is exactly ``users * per-user rate``.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import uuid
from pathlib import Path

from locust import FastHttpUser, LoadTestShape, constant_throughput, task

from loadtest import PLAN_ENV

PLAN = json.loads(Path(os.environ[PLAN_ENV]).read_text())
IDS: dict[str, list[int]] = PLAN["ids"]
PACE = {"per_user_rps": PLAN["user_rps"]}
MODEL_IDS = {"lead": "lead", "risk": "customer"}
WARMUP = -1  # the step index logged for the warm-up


def paced(user: FastHttpUser) -> float:
    """``constant_throughput`` at the rate the current step asks of each user."""
    return constant_throughput(PACE["per_user_rps"])(user)


def score_lead(user: FastHttpUser) -> None:
    user.client.post("/score_lead", json={"lead_id": random.choice(IDS["lead"])})


def score_customer(user: FastHttpUser) -> None:
    user.client.post("/score_customer", json={"customer_id": random.choice(IDS["customer"])})


def batch_score(user: FastHttpUser) -> None:
    model = random.choice(list(MODEL_IDS))
    ids = random.sample(IDS[MODEL_IDS[model]], PLAN["batch_ids"])
    with user.client.post(
        "/batch_score", json={"model": model, "ids": ids}, catch_response=True
    ) as response:
        failed = response.json()["failed"] if response.status_code == 200 else 0
        if failed:
            response.failure(f"{failed} of {len(ids)} rows failed")


def feedback(user: FastHttpUser) -> None:
    model = random.choice(list(MODEL_IDS))
    body = {
        "feedback_id": f"loadtest-{uuid.uuid4().hex}",
        "model": model,
        "entity_id": random.choice(IDS[MODEL_IDS[model]]),
        "label": random.randint(0, 1),
    }
    user.client.post("/feedback", json=body)


MIX_TASKS = {
    "score_lead": score_lead,
    "score_customer": score_customer,
    "batch_score": batch_score,
    "feedback": feedback,
}


class ScoringUser(FastHttpUser):
    abstract = True
    wait_time = paced
    network_timeout = PLAN["timeout_s"]
    connection_timeout = PLAN["timeout_s"]

    def on_start(self) -> None:
        """Start at a random phase of the pacing interval: users spawned together would
        otherwise stay in step and offer the load as one burst per interval.

        ``constant_pacing`` (behind ``constant_throughput``) counts from ``_cp_last_run``, set
        when the user was created: left alone it would subtract this delay from the first wait
        and put every user back in step, so the pacing clock restarts after it."""
        time.sleep(random.uniform(0, 1 / PACE["per_user_rps"]))
        self._cp_last_run = time.perf_counter()


class LeadUser(ScoringUser):
    @task
    def lead(self) -> None:
        score_lead(self)


class CustomerUser(ScoringUser):
    @task
    def customer(self) -> None:
        score_customer(self)


class MixUser(ScoringUser):
    tasks = {
        MIX_TASKS[name]: round(share * 1000) for name, share in PLAN["mix"].items() if share > 0
    }


class Staircase(LoadTestShape):
    """A warm-up, then the offered rate steps from the plan, each held for its duration; logs when
    each starts (the summary judges the steps only)."""

    def __init__(self) -> None:
        super().__init__()
        self.step = -1
        self.log = Path(PLAN["step_log"])

    def tick(self) -> tuple[int, float] | None:
        run_time, end = self.get_run_time(), PLAN["warmup"]["seconds"]
        if run_time < end:
            return self.enter(WARMUP, PLAN["warmup"]["offered_rps"])
        for index, step in enumerate(PLAN["steps"]):
            end += step["seconds"]
            if run_time < end:
                return self.enter(index, step["offered_rps"])
        self.record({"event": "end", "at": time.time()})
        return None

    def enter(self, index: int, offered_rps: float) -> tuple[int, float]:
        users = math.ceil(offered_rps / PLAN["user_rps"])
        if index != self.step:
            self.step = index
            PACE["per_user_rps"] = offered_rps / users
            self.record(
                {
                    "event": "warmup" if index == WARMUP else "step",
                    "step": index,
                    "offered_rps": offered_rps,
                    "users": users,
                    "at": time.time(),
                }
            )
        return users, users

    def record(self, entry: dict) -> None:
        with self.log.open("a") as handle:
            handle.write(json.dumps(entry) + "\n")
