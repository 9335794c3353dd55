"""One place for every path, URL, threshold and batch size.

Values come from, in increasing priority: the defaults below, a YAML file (``leadrisk.yaml`` at the
project root, or the file named by ``LEADRISK_CONFIG``), and ``LEADRISK_*`` environment variables.
Nested fields use a double underscore: ``LEADRISK_SERVICE__MAX_BATCH_SIZE=64``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "LEADRISK_"


class DataSettings(BaseModel):
    shared_dir: Path = PROJECT_ROOT.parent / "shared" / "data"
    x_education_csv: str = "x_education_leads/Leads.csv"
    amlsim_dir: str = "amlsim_20k"
    amlsim_anchor_date: str = "2025-01-01"
    x_education_anchor_date: str = "2025-01-01"
    x_education_span_days: int = 365
    unlabeled_share: float = 0.1
    seed: int = 42


class SyntheticSettings(BaseModel):
    customers: int = 10_000
    leads: int = 10_000
    transactions_per_customer: float = 30.0
    start_date: str = "2025-01-01"
    days: int = 365
    chunk_customers: int = 50_000


class FeatureStoreSettings(BaseModel):
    project: str = "leadrisk"
    redis_url: str = "127.0.0.1:6379"
    postgres_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    windows_days: list[int] = [7, 30, 90, 180]
    night_hours: list[int] = [0, 1, 2, 3, 4, 5]


class TrainingSettings(BaseModel):
    seed: int = 42
    test_size: float = 0.2
    cv_folds: int = 5
    search_iterations: int = 6
    lead_threshold_rule: Literal["max_f1", "recall_at_least"] = "max_f1"
    lead_min_recall: float = 0.82
    risk_segment_thresholds: list[float] = [0.2, 0.6]
    champion_margin: float = 0.002
    # Model choice: the simplest servable candidate whose CV gate metric is within this many
    # standard errors of the best (the one-standard-error rule); 0 takes the best mean
    selection_std_errors: float = 1.0
    gate_metric_lead: str = "roc_auc"
    gate_metric_risk: str = "pr_auc"
    mlflow_tracking_uri: str | None = None
    mlflow_postgres_uri: str = "postgresql://postgres@127.0.0.1:5432/leadrisk_mlflow"
    offboard_top_reasons: int = 3
    # numeric features this correlated (|Spearman|) on the training set are one reason
    reason_group_correlation: float = 0.9
    lead_targets: dict[str, float] = {"roc_auc": 0.93, "precision": 0.82, "recall": 0.82}
    risk_targets: dict[str, float] = {"pr_auc": 0.85}


Scope = Literal["score", "feedback", "admin", "metrics"]


class TokenGrant(BaseModel):
    """One client's bearer token and what it may call."""

    token: str = Field(min_length=16)
    scopes: list[Scope]


class ServiceSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 3000
    # Where the service keeps what it accepts (default: feedback.db and predictions/ in the data
    # folder). A load test points a service it starts at its own run folder.
    feedback_db: Path | None = None
    prediction_log_dir: Path | None = None
    # Releases (docs/releases.md): the shared release table (a SQLAlchemy URL; default: SQLite in
    # the data folder, or the Feast registry's PostgreSQL database in the production profile),
    # how often each serving process polls it, and how many rows may wait for shadow scoring.
    release_store: str | None = None
    registry_poll_s: float = 2.0
    shadow_queue_rows: int = 10_000
    workers: int = 2  # serving processes (one per core); each holds both models and batches
    max_batch_size: int = 64
    max_latency_ms: int = 2000  # a request still queued after this is shed with a 503
    max_wait_ms: float = 0.0  # hold a lone request this long to let its batch grow
    # Rows of a /batch_score call per batch: they join batches after every queued single
    # request, so a single request behind a bulk call waits for one small batch, not all of it
    bulk_rows_per_batch: int = 8
    model_threads: int = 1  # threads per model call in each serving process
    # How long a Python thread may hold the GIL while another waits (Python's default is 5 ms).
    # Shorter lets the event loop answer between a scoring thread's Python steps.
    gil_switch_interval_ms: float = 1.0
    # with several workers, ask a keep-alive client to reconnect after this many requests so
    # connections spread over the processes (0: never)
    max_requests_per_connection: int = 50
    batching: bool = True
    # 0: the prediction log is fsynced after each batch, before its answers (an answered
    # prediction survives a machine crash). > 0: a background thread fsyncs at most this often
    # and the scoring threads do not wait for the disk; a machine crash (not a process crash)
    # may lose that much of the log's tail (docs/service.md).
    prediction_log_sync_interval_ms: float = 0.0
    # BentoML's tracing configuration (exporter_type, sample_rate, otlp/zipkin/jaeger options),
    # passed as is. None: no OpenTelemetry span per request; BentoML otherwise opens one for every
    # request even with no exporter, a measurable CPU cost per request (docs/service.md).
    tracing: dict[str, Any] | None = None
    # Bearer tokens (service/http.py): auth_token holds every scope; auth_tokens names each
    # client's token and scopes: score, feedback, admin (/models, /dashboard), metrics.
    # With either set, every path but health needs a token: /metrics too unless metrics_open.
    auth_token: str | None = None
    auth_tokens: dict[str, TokenGrant] = {}
    metrics_open: bool = True
    # BentoML's model and bento store. None: BentoML's own default ($BENTOML_HOME, else
    # ~/bentoml), so plain `bentoml serve|build|models list` see what leadrisk imported
    bentoml_home: Path | None = None
    # Largest accepted value of each numeric field of a raw lead (/score_lead, uploads): generous
    # bounds around the plausible range, so a typo cannot reach the model or the monitoring
    raw_lead_max: dict[str, float] = {
        "total_visits": 10_000.0,
        "total_time_on_website": 1_000_000.0,
        "page_views_per_visit": 1_000.0,
    }
    timeout_s: int = 60
    batch_upload_max_rows: int = 100_000


class MonitoringSettings(BaseModel):
    profiling: bool = True
    window_minutes: float = 60.0
    profile_store: str | None = None
    queue_max: int = 100_000
    # How often the writer profiles what has queued: each whylogs call has a large fixed CPU
    # cost whatever its size. Windows are written when they close and at shutdown, whatever this is.
    flush_interval_s: float = 30.0
    # How often a serving process hands the rows it scored to its profile writer (one queue item
    # per model and window, instead of one per scored batch)
    handoff_interval_s: float = 0.5
    # The profile writer's CPU priority below the serving processes' (Unix nice increment): its
    # whylogs calls are background work and must not take a core from a request
    profiler_niceness: int = 10
    drift_p_value: float = 0.05
    drifted_share_alert: float = 0.0  # any drifted feature (tests are Bonferroni-corrected)
    psi_alert: float = 0.2
    missing_rate_alert: float = 0.05
    p99_latency_ms_alert: float = 150.0
    error_rate_alert: float = 0.01
    freshness_hours_alert: float = 36.0
    kpi_drop_alert: float = 0.1
    webhook_url: str | None = None
    # A/B guardrails (docs/releases.md): `monitor check` stops a test whose challenger, against
    # the champion on the same test's traffic, is past one of these
    guardrail_error_rate: float = 0.01  # share of the challenger's rows it failed to score
    guardrail_p99_ratio: float = 2.0  # challenger's model-call p99 over the champion's
    guardrail_psi: float = 0.25  # the challenger's score distribution against the champion's
    guardrail_min_rows: int = 200  # rows per variant before the PSI is judged
    guardrail_conversion_drop: float = 0.10  # champion's minus challenger's rate, in a band
    guardrail_min_labels: int = 30  # labels per variant and band before conversion is judged


class LoadProfile(BaseModel):
    """A staircase of offered request rates, ``nominal_rps`` times each multiple, held in turn."""

    nominal_rps: float = 50.0
    multiples: list[float] = [1, 2, 3, 4, 6, 8, 10]
    step_seconds: float = 30.0
    ramp_seconds: float = 5.0
    # Load at the first step's rate before the first step, not judged: a target's first requests
    # pay for first connections and lazy imports, and locust's percentiles span a rolling ~10 s
    # window, so without it they would count against the first step.
    warmup_seconds: float = 15.0


class SmokeProfile(LoadProfile):
    nominal_rps: float = 5.0
    multiples: list[float] = [1, 2]
    step_seconds: float = 5.0
    ramp_seconds: float = 1.0
    warmup_seconds: float = 2.0


class LoadTestSettings(BaseModel):
    """Load-test profiles, traffic mix and the SLO every step is judged on."""

    ten_x: LoadProfile = Field(default_factory=LoadProfile)
    smoke: SmokeProfile = Field(default_factory=SmokeProfile)
    # Each locust user is paced at this rate; users = offered rate / user_rps. Low enough that a
    # slowed-down service (up to 1/user_rps s per request) still receives the offered rate.
    user_rps: float = 2.0
    lead_share: float = 0.47
    customer_share: float = 0.47
    batch_share: float = 0.04
    # POST /feedback with random labels. A target the load test starts keeps them (and its
    # predictions and profiles) in the run's folder; against --url they go to that service, so
    # its share is then 0 unless --feedback is given.
    feedback_share: float = 0.02
    batch_ids: int = 20
    id_sample: int = 5_000
    slo_p95_ms: float = 50.0
    slo_p99_ms: float = 150.0
    slo_max_failures: int = 0
    # A step only counts as sustained if locust actually delivered this share of its offered rate.
    min_achieved_ratio: float = 0.9
    baseline_threads: int = 4
    request_timeout_s: float = 30.0

    @classmethod
    def profile_names(cls) -> list[str]:
        return [
            name
            for name, field in cls.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, LoadProfile)
        ]

    def profile(self, name: str) -> LoadProfile:
        if name not in self.profile_names():
            raise ValueError(f"unknown load profile {name!r}; choose {self.profile_names()}")
        return getattr(self, name)


class Settings(BaseSettings):
    """Every setting: defaults, then the YAML file, then ``LEADRISK_*`` (``load_settings``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_parse_none_str=""
    )

    profile: Literal["embedded", "production"] = "embedded"
    data_dir: Path = PROJECT_ROOT / "data"
    data: DataSettings = Field(default_factory=DataSettings)
    synthetic: SyntheticSettings = Field(default_factory=SyntheticSettings)
    feature_store: FeatureStoreSettings = Field(default_factory=FeatureStoreSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    loadtest: LoadTestSettings = Field(default_factory=LoadTestSettings)

    @property
    def tables_dir(self) -> Path:
        return self.data_dir / "tables"

    @property
    def feast_dir(self) -> Path:
        return self.data_dir / "feast"

    @property
    def mlflow_uri(self) -> str:
        if self.training.mlflow_tracking_uri:
            return self.training.mlflow_tracking_uri
        if self.profile == "production":
            return self.training.mlflow_postgres_uri
        return f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.data_dir / "mlflow-artifacts"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def prediction_log_dir(self) -> Path:
        return self.service.prediction_log_dir or self.data_dir / "predictions"

    @property
    def feedback_db(self) -> Path:
        return self.service.feedback_db or self.data_dir / "feedback.db"

    @property
    def release_store_url(self) -> str:
        if self.service.release_store:
            return self.service.release_store
        if self.profile == "production":
            return self.feature_store.postgres_url
        return f"sqlite:///{self.data_dir / 'releases.db'}"

    @property
    def profiles_url(self) -> str:
        return self.monitoring.profile_store or str(self.data_dir / "profiles")


class _EnvironSource(EnvSettingsSource):
    """``LEADRISK_*`` variables of a given environment (``os.environ`` unless one is passed)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self.environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self.environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from defaults, the YAML file and the environment (highest priority)."""
    environ = dict(os.environ if environ is None else environ)
    config_path = Path(environ.get(f"{ENV_PREFIX}CONFIG", PROJECT_ROOT / "leadrisk.yaml"))

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, **_defaults):
            return (
                _EnvironSource(settings_cls, environ),
                YamlConfigSettingsSource(settings_cls, yaml_file=config_path),
            )

    # validated as plain ``Settings``: a BaseModel validation reads no environment again
    return Settings.model_validate(_Loaded().model_dump())


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
