"""Release state, shared by the CLI and every serving process: per model, the champion and the
challenger being served (BentoML tags) and how live traffic reaches the challenger.

Modes: ``off`` (the champion answers everything), ``shadow`` (the challenger also scores every
request, off the request's path, and only the prediction log sees it) and ``ab`` (a sticky share
of entities is answered by the challenger). The state lives in one SQL table (SQLite in the data
folder by default, PostgreSQL by URL), with a revision that serving processes poll; every change
is also appended to an event table, the release's audit trail.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

Mode = Literal["off", "shadow", "ab"]
MODES: tuple[Mode, ...] = ("off", "shadow", "ab")
CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"  # prediction-log variants

METADATA = sa.MetaData()
RELEASES = sa.Table(
    "releases",
    METADATA,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("champion", sa.String(400), nullable=False),
    sa.Column("challenger", sa.String(400)),
    sa.Column("mode", sa.String(10), nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("started_at", sa.String(40)),
    sa.Column("stopped_reason", sa.Text),
    sa.Column("revision", sa.Integer, nullable=False),
)
EVENTS = sa.Table(
    "release_events",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("at", sa.String(40), nullable=False),
    sa.Column("event", sa.String(40), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)


def tag_version(tag: str) -> str:
    """The MLflow version in a served model's BentoML tag (``name:v<version>-<run>``)."""
    return tag.partition(":v")[2].partition("-")[0]


class ReleaseError(ValueError):
    """A release change that cannot be made (no challenger, an unknown mode, a bad share)."""


@dataclass(frozen=True)
class Release:
    """One model's release: what is served and how the challenger gets traffic."""

    model: str  # registered model name
    champion: str  # BentoML tag
    challenger: str | None = None
    mode: Mode = "off"
    share: float = 0.0  # ab: the share of entities the challenger answers
    salt: str = ""  # ab: makes the assignment of this test independent of earlier ones
    started_at: str | None = None
    stopped_reason: str | None = None
    revision: int = 0

    def variant(self, entity_id: int | None) -> str:
        """Who answers ``entity_id``: the challenger for a sticky ``share`` of entities during an
        A/B test (a salted hash of the id), else the champion. A raw lead (no id) gets the
        champion."""
        if self.mode != "ab" or self.challenger is None or entity_id is None:
            return CHAMPION
        digest = hashlib.blake2b(f"{self.salt}:{entity_id}".encode(), digest_size=8).digest()
        return CHALLENGER if int.from_bytes(digest, "big") < self.share * 2**64 else CHAMPION

    @property
    def shadowing(self) -> bool:
        return self.mode == "shadow" and self.challenger is not None


class ReleaseStore:
    """The release table at ``url`` (created on first use)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, pool_pre_ping=True)
        METADATA.create_all(self.engine)

    def revision(self) -> int:
        """The highest revision of any model: what serving processes poll."""
        with self.engine.connect() as db:
            return int(db.execute(sa.select(sa.func.max(RELEASES.c.revision))).scalar() or 0)

    def all(self) -> dict[str, Release]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(RELEASES)).mappings().all()
        return {row["model"]: Release(**row) for row in rows}

    def get(self, model: str) -> Release | None:
        return self.all().get(model)

    def set_models(self, model: str, champion: str, challenger: str | None) -> Release:
        """Record the versions the registry names. A running test whose challenger changed, or
        that lost it, is stopped (a test compares exactly two versions)."""
        current = self.get(model)
        if current is None:
            return self._write(Release(model, champion, challenger), "registered", {})
        if (current.champion, current.challenger) == (champion, challenger):
            return current
        updated = replace(current, champion=champion, challenger=challenger)
        if current.mode != "off" and challenger != current.challenger:
            updated = replace(updated, mode="off", stopped_reason="the challenger changed")
        detail = {"champion": champion, "challenger": challenger, "was": asdict(current)}
        return self._write(updated, "models changed", detail)

    def start(self, model: str, mode: Mode, share: float = 0.0) -> Release:
        current = self._require(model)
        if mode not in ("shadow", "ab"):
            raise ReleaseError(f"a test is shadow or ab, not {mode!r}")
        if current.challenger is None:
            raise ReleaseError(f"{model} has no challenger: train one or set the alias first")
        if mode == "ab" and not 0 < share < 1:
            raise ReleaseError(f"an A/B share is between 0 and 1, not {share}")
        started = replace(
            current,
            mode=mode,
            share=share if mode == "ab" else 0.0,
            salt=secrets.token_hex(8),
            started_at=datetime.now(UTC).isoformat(),
            stopped_reason=None,
        )
        return self._write(started, "started", {"mode": mode, "share": started.share})

    def stop(self, model: str, reason: str, event: str = "stopped") -> Release:
        """All traffic back to the champion at once (the kill switch)."""
        current = self._require(model)
        stopped = replace(current, mode="off", stopped_reason=reason)
        return self._write(stopped, event, {"reason": reason, "was": current.mode})

    def events(self, model: str) -> list[dict[str, Any]]:
        with self.engine.connect() as db:
            rows = db.execute(
                sa.select(EVENTS).where(EVENTS.c.model == model).order_by(EVENTS.c.id)
            ).mappings()
            return [{**row, "detail": json.loads(row["detail"])} for row in rows]

    def _require(self, model: str) -> Release:
        current = self.get(model)
        if current is None:
            raise ReleaseError(f"{model} is not served yet: run `leadrisk serve` or `release sync`")
        return current

    def _write(self, release: Release, event: str, detail: dict[str, Any]) -> Release:
        """Store ``release`` under the next revision and log the event, in one transaction."""
        with self.engine.begin() as db:
            top = db.execute(sa.select(sa.func.max(RELEASES.c.revision))).scalar() or 0
            release = replace(release, revision=int(top) + 1)
            row = asdict(release)
            updated = db.execute(
                RELEASES.update().where(RELEASES.c.model == release.model).values(**row)
            ).rowcount
            if not updated:
                db.execute(RELEASES.insert().values(**row))
            db.execute(
                EVENTS.insert().values(
                    model=release.model,
                    at=datetime.now(UTC).isoformat(),
                    event=event,
                    detail=json.dumps(detail, default=str),
                )
            )
        return release
