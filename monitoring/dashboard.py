"""One self-contained HTML page of how the service is doing: traffic, latency, scores, drift, KPIs.

Charts are matplotlib SVG inlined in the page and the styles are inline too, so the page loads
with no network at all. Sources: the prediction log (newest ``LOG_LIMIT`` entries of the window,
read from the end of the files), BentoML's Prometheus text, the latest drift report JSON per model
and the feedback store. A source with nothing in it yet shows a ``class="empty"`` note.
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.json as pa_json
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from core.kinds import MODEL_KINDS
from core.settings import Settings
from monitoring.feedback import FeedbackStore
from monitoring.prediction_log import ENTRY_SCHEMA
from monitoring.release_verdict import latest_verdict
from monitoring.releases import ReleaseStore, tag_version
from monitoring.service_metrics import PROBE_ENDPOINTS, endpoint_counts, histogram_quantile

MODELS = tuple(kind.registered_name for kind in MODEL_KINDS.values())
DEFAULT_WINDOW = timedelta(hours=24)
LOG_LIMIT = 100_000
READ_BLOCK = 1 << 20
LATENCY_QUANTILES = (0.5, 0.95, 0.99)
SCORE_QUANTILES = (0.1, 0.5, 0.9)
SCORE_BUCKETS = 144  # time buckets of the score chart: 10 minutes over 24 h
MIN_SCORE_BUCKET = timedelta(minutes=10)
P_VALUE_FLOOR = 1e-10  # -log10(p) is capped at 10 so a p-value of 0 still draws
NARROW, WIDE = (7.0, 3.0), (14.0, 3.2)  # figure sizes in inches
RIGHT_MARGIN = 0.2
MODEL_COLORS = dict(zip(MODELS, ("#1f77b4", "#ff7f0e"), strict=True))
DRIFT_COLOR, STABLE_COLOR = "#d9534f", "#7f9fbf"
BAND_CMAP = "Blues"
MIN_LABELLED_SHARE = 0.08  # narrower band segments get no text label
LOG_COLUMNS = ("model", "model_version", "score", "band", "scored_at", "logged_at")
LOG_SCHEMA = pa.schema([ENTRY_SCHEMA.field(name) for name in LOG_COLUMNS])
RC = {
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f5f7; color: #222; }
header { padding: 16px 24px; background: #1f2d3d; color: #fff; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; font-size: 13px; color: #cfd8e3; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr));
       gap: 16px; padding: 16px 24px; }
figure.chart, figure.table { margin: 0; padding: 12px 16px; background: #fff;
               border: 1px solid #dde1e6; border-radius: 6px; min-width: 0; }
figure.chart.wide, figure.table.wide { grid-column: 1 / -1; }
figcaption { font-size: 13px; color: #555; margin-bottom: 8px; }
figcaption b { display: block; font-size: 16px; color: #222; margin-bottom: 2px; }
figure.chart svg { width: 100%; height: auto; display: block; }
p.empty { padding: 32px; text-align: center; color: #888; background: #fafafa;
          border: 1px dashed #ccc; border-radius: 4px; }
table { border-collapse: collapse; font-size: 13px; margin-top: 8px; width: 100%; }
td, th { border-bottom: 1px solid #e3e6ea; padding: 3px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
"""


@dataclass(frozen=True)
class EndpointStats:
    endpoint: str
    requests: int
    errors: int
    quantiles_ms: tuple[float | None, ...]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


def render_dashboard(
    settings: Settings,
    metrics_text: str | None = None,
    now: datetime | None = None,
    *,
    window: timedelta = DEFAULT_WINDOW,
) -> str:
    """The monitoring page for the last ``window`` before ``now``; ``metrics_text`` is the
    service's /metrics exposition (None: latency is shown as not available)."""
    now = _utc(now or datetime.now(UTC))
    since = now - window
    predictions, truncated = recent_predictions(settings.prediction_log_dir, since, now)
    bands = band_order(predictions)
    with matplotlib.rc_context(RC):
        charts = [
            requests_chart(predictions, since, now),
            latency_chart(endpoint_stats(metrics_text) if metrics_text else None, settings),
            scores_chart(predictions, since, now, bands),
            drift_chart(latest_drift_reports(settings.reports_dir / "drift")),
            kpi_chart(feedback_kpis(settings.feedback_db), bands),
            releases_table(settings),
        ]
    return _page(_header(predictions, truncated, since, now), charts)


def recent_predictions(
    directory: Path, since: datetime, until: datetime, limit: int = LOG_LIMIT
) -> tuple[pd.DataFrame, bool]:
    """Model, version, score, band and time of the newest ``limit`` predictions in
    [since, until], and whether the limit was reached (older ones may be left out)."""
    data, lines = _recent_lines(directory, since, limit)
    frame = _parse_log(data)
    frame = frame[(frame["at"] >= since) & (frame["at"] <= until)].sort_values("at")
    return frame.tail(limit).reset_index(drop=True), lines >= limit


def _recent_lines(directory: Path, since: datetime, limit: int) -> tuple[bytes, int]:
    """Up to ``limit`` complete lines from the end of the day folders that may hold entries
    after ``since`` (each worker's file is cut at ``limit``), and how many lines they are."""
    first_day = since.strftime("%Y-%m-%d")
    days = sorted(
        (path for path in directory.glob("*") if path.is_dir() and path.name >= first_day),
        reverse=True,
    )
    chunks: list[bytes] = []
    lines = 0
    for day in days:
        wanted = limit - lines
        if wanted <= 0:
            break
        for path in day.glob("*.jsonl"):
            chunk, count = _tail(path, wanted)
            chunks.append(chunk)
            lines += count
    return b"".join(chunks), lines


def _tail(path: Path, limit: int) -> tuple[bytes, int]:
    """The last ``limit`` complete lines of a file and their count, read backwards in blocks."""
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        blocks: list[bytes] = []
        newlines = 0
        while position > 0 and newlines <= limit:
            size = min(READ_BLOCK, position)
            position -= size
            handle.seek(position)
            blocks.append(handle.read(size))
            newlines += blocks[-1].count(b"\n")
    data = b"".join(reversed(blocks))
    first = data.find(b"\n") + 1 if position > 0 else 0  # a block may start mid-line
    data = data[first : data.rfind(b"\n") + 1]  # a torn last line is left out
    count = data.count(b"\n")
    if count > limit:
        data = data.split(b"\n", count - limit)[-1]
    return data, min(count, limit)


def _parse_log(data: bytes) -> pd.DataFrame:
    """JSON lines to a frame; Arrow parses fast, JSON per line is the fallback for odd types."""
    columns = ["model", "model_version", "score", "band", "at"]
    if not data:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in columns}).astype(
            {"score": "float64", "at": "datetime64[us, UTC]"}
        )
    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            parse_options=pa_json.ParseOptions(
                explicit_schema=LOG_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        frame = table.to_pandas()
    except pa.ArrowInvalid:
        frame = _parse_lines_slowly(data.splitlines())
    frame["at"] = frame["scored_at"].fillna(frame["logged_at"])
    return frame[columns].dropna(subset=["model", "at"])


def _parse_lines_slowly(lines: Iterable[bytes]) -> pd.DataFrame:
    """Per-line JSON for logs Arrow rejects (a numeric model version, a torn line mid-file)."""
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by a crash; the rest of the log is still worth showing
    frame = pd.DataFrame.from_records(entries, columns=LOG_SCHEMA.names)
    for name in ("scored_at", "logged_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
    frame["model_version"] = frame["model_version"].map(lambda v: None if pd.isna(v) else str(v))
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    return frame


def band_order(predictions: pd.DataFrame) -> list[str]:
    """Bands from lowest to highest median score, so charts stack them in a meaningful order."""
    medians = predictions.dropna(subset=["band"]).groupby("band")["score"].median()
    return [str(band) for band in medians.sort_values().index]


def endpoint_stats(metrics_text: str) -> list[EndpointStats]:
    """Requests, 5xx and latency quantiles per endpoint from BentoML's /metrics exposition."""
    counts = endpoint_counts(metrics_text)
    return [
        EndpointStats(
            endpoint=endpoint,
            requests=int(counts[endpoint].requests),
            errors=int(counts[endpoint].errors),
            quantiles_ms=tuple(
                _ms(histogram_quantile(q, counts[endpoint].buckets)) for q in LATENCY_QUANTILES
            ),
        )
        for endpoint in sorted(counts)
        if endpoint not in PROBE_ENDPOINTS
    ]


def latest_drift_reports(drift_dir: Path) -> dict[str, dict[str, Any]]:
    """The newest drift report JSON of each model (file names carry a sortable time stamp)."""
    reports = {}
    for model in MODELS:
        paths = sorted((drift_dir / model).glob("*.json"))
        if paths:
            reports[model] = json.loads(paths[-1].read_text())
    return reports


def feedback_kpis(feedback_db: Path) -> dict[str, dict[str, Any]]:
    """Live KPIs of models with feedback; no database yet means no KPIs (and none is created)."""
    if not feedback_db.exists():
        return {}
    store = FeedbackStore(feedback_db)
    kpis = {model: store.kpis(model) for model in MODELS}
    return {model: values for model, values in kpis.items() if values["count"]}


def requests_chart(predictions: pd.DataFrame, since: datetime, now: datetime) -> str:
    caption = (
        f"Predictions per minute and model, {_span(since, now)} "
        "(from the prediction log; a batch request counts each of its rows)."
    )
    if predictions.empty:
        return _chart("requests", "Request volume", caption, None, "no predictions logged yet")
    minutes = int(math.ceil((now - since).total_seconds() / 60))
    start = pd.Timestamp(since).floor("min")
    times = (start + pd.to_timedelta(np.arange(minutes), unit="min")).tz_localize(None)
    fig, (ax,) = _panels(NARROW, lefts=(0.6,))
    for model, group in predictions.groupby("model", sort=True):
        index = ((group["at"] - start).dt.total_seconds() // 60).astype(int).clip(0, minutes - 1)
        counts = np.bincount(index, minlength=minutes)
        ax.plot(times, counts, lw=1, color=MODEL_COLORS.get(str(model)), label=str(model))
    _time_axis(ax, since, now)
    ax.set_ylabel("predictions / min")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left")
    return _chart("requests", "Request volume", caption, _svg(fig))


def latency_chart(stats: list[EndpointStats] | None, settings: Settings) -> str:
    caption = (
        "Latency quantiles per endpoint from BentoML's request-duration histogram, cumulative "
        "since the service started; dashed: the p99 alert threshold."
    )
    timed = [s for s in stats or [] if s.quantiles_ms[0] is not None]
    if not timed:
        note = "no service metrics" if stats is None else "no requests measured yet"
        return _chart("latency", "Latency", caption, None, note)
    fig, (ax,) = _panels(NARROW, lefts=(0.6,), bottom=0.8)
    x, width = np.arange(len(timed)), 0.8 / len(LATENCY_QUANTILES)
    for i, q in enumerate(LATENCY_QUANTILES):
        values = [s.quantiles_ms[i] for s in timed]
        ax.bar(x + (i - 1) * width, values, width, label=f"p{round(q * 100)}")
    alert = settings.monitoring.p99_latency_ms_alert
    ax.axhline(alert, color=DRIFT_COLOR, ls="--", lw=1)
    ax.text(x[-1] + 0.45, alert, "p99 alert", color=DRIFT_COLOR, ha="right", va="bottom")
    ax.set_ylim(0, max(alert, *(s.quantiles_ms[-1] for s in timed)) * 1.2)
    ax.set_xticks(x, [s.endpoint for s in timed], rotation=15, ha="right")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper left", ncols=3)
    return _chart("latency", "Latency", caption, _svg(fig), table=_latency_table(stats or []))


def _latency_table(stats: list[EndpointStats]) -> str:
    header = ["endpoint", "requests", "5xx", "5xx rate"] + [
        f"p{round(q * 100)} ms" for q in LATENCY_QUANTILES
    ]
    rows = [
        [s.endpoint, f"{s.requests:,}", f"{s.errors:,}", f"{s.error_rate:.2%}"]
        + [_fmt(v, ".1f") for v in s.quantiles_ms]
        for s in stats
    ]
    return _table(header, rows)


def scores_chart(
    predictions: pd.DataFrame, since: datetime, now: datetime, bands: list[str]
) -> str:
    bucket = max(MIN_SCORE_BUCKET, (now - since) / SCORE_BUCKETS)
    caption = (
        f"Left: score p10-p90 (shaded) and median per {_duration(bucket)} bucket, "
        f"{_span(since, now)}. Right: share of predictions per band."
    )
    if predictions.empty:
        return _chart("scores", "Scores", caption, None, "no predictions logged yet", wide=True)
    fig, (over_time, shares) = _panels(WIDE, lefts=(0.6, 1.1), widths=(3, 1))
    buckets = predictions["at"].dt.floor(pd.Timedelta(bucket)).dt.tz_localize(None)
    quantiles = (
        predictions.groupby(["model", buckets])["score"].quantile(list(SCORE_QUANTILES)).unstack()
    )
    for model in quantiles.index.unique("model"):
        lines = quantiles.loc[model]
        color = MODEL_COLORS.get(str(model))
        low, mid, high = (lines[q] for q in SCORE_QUANTILES)
        over_time.fill_between(lines.index, low, high, color=color, alpha=0.2, lw=0)
        over_time.plot(lines.index, mid, color=color, lw=1.2, marker=".", ms=3, label=str(model))
    _time_axis(over_time, since, now)
    over_time.set_ylabel("score")
    over_time.set_ylim(0, 1)
    over_time.legend(loc="upper left")
    _band_shares(shares, predictions, bands)
    return _chart("scores", "Scores", caption, _svg(fig), wide=True)


def _band_shares(ax: Axes, predictions: pd.DataFrame, bands: list[str]) -> None:
    """One horizontal bar per model, stacked by band share, lowest band on the left."""
    models = sorted(predictions["model"].unique())
    shares = pd.crosstab(predictions["model"], predictions["band"], normalize="index")
    colors = matplotlib.colormaps[BAND_CMAP](np.linspace(0.25, 0.9, len(bands)))
    for row, model in enumerate(models):
        left = 0.0
        for i, band in enumerate(bands):
            share = float(shares.loc[model].get(band, 0.0))
            ax.barh(row, share, left=left, color=colors[i], edgecolor="white")
            if share >= MIN_LABELLED_SHARE:
                text_color = "white" if i >= len(bands) / 2 else "#222"
                label = f"{band}\n{share:.0%}"
                ax.text(left + share / 2, row, label, ha="center", va="center", color=text_color)
            left += share
    ax.set_yticks(range(len(models)), models)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of predictions")
    ax.grid(False)


def drift_chart(reports: dict[str, dict[str, Any]]) -> str:
    caption = (
        "Latest drift report per model: -log10 p-value of each feature's test against the "
        f"training reference (capped at {-math.log10(P_VALUE_FLOOR):.0f}); red: drifted, "
        "dashed: the per-feature threshold."
    )
    if not reports:
        return _chart("drift", "Feature drift", caption, None, "no drift report yet", wide=True)
    tested = {m: [f for f in r["features"] if f["p_value"] is not None] for m, r in reports.items()}
    rows = max(len(features) for features in tested.values())
    names = max((len(f["feature"]) for features in tested.values() for f in features), default=0)
    size = (WIDE[0], max(WIDE[1], 0.9 + 0.17 * rows))
    fig, axes = _panels(size, lefts=(0.3 + 0.055 * names,) * len(MODELS), top=0.3, bottom=0.5)
    for ax, model in zip(axes, MODELS, strict=True):
        if model in reports:
            _drift_panel(ax, model, reports[model], tested[model])
        else:
            _no_data(ax, f"{model}: no drift report yet")
    return _chart("drift", "Feature drift", caption, _svg(fig), wide=True)


def _drift_panel(ax: Axes, model: str, report: dict[str, Any], tested: list[dict]) -> None:
    tested = sorted(tested, key=lambda f: -f["p_value"])
    strength = [-math.log10(max(f["p_value"], P_VALUE_FLOOR)) for f in tested]
    colors = [DRIFT_COLOR if f["drifted"] else STABLE_COLOR for f in tested]
    ax.barh(range(len(tested)), strength, color=colors)
    ax.set_ylim(-0.6, len(tested) - 0.4)
    ax.set_yticks([])  # names as plain text: half the drawing time of one tick per feature
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for row, feature in enumerate(tested):
        ax.text(
            -0.01, row, feature["feature"], transform=beside, ha="right", va="center", fontsize=7
        )
    ax.axvline(-math.log10(report["p_value_threshold"]), color="#333", ls="--", lw=1)
    ax.set_xlim(0, -math.log10(P_VALUE_FLOOR) * 1.05)
    ax.set_xlabel("-log10 p-value")
    psi = report["prediction"].get("psi")
    created = datetime.fromisoformat(report["created_at"]).astimezone(UTC)
    ax.set_title(
        f"{model} · {created:%Y-%m-%d %H:%M} UTC · {len(report['drifted_features'])}/{len(tested)} "
        f"drifted · score PSI {_fmt(psi, '.3f')}",
        fontsize=9,
        loc="left",
    )


def kpi_chart(kpis: dict[str, dict[str, Any]], bands: list[str]) -> str:
    caption = (
        "Positive rate of labelled feedback per band (n above the bars), and live ROC-AUC, "
        "precision and recall at the listed threshold."
    )
    if not any(values["positive_rate_by_band"] for values in kpis.values()):
        table = _kpi_table(kpis) if kpis else ""
        return _chart(
            "kpis", "Outcome KPIs", caption, None, "no labelled feedback yet", table=table
        )
    fig, axes = _panels(NARROW, lefts=(0.6,) * len(MODELS), top=0.3, bottom=0.5)
    for ax, model in zip(axes, MODELS, strict=True):
        by_band = kpis.get(model, {}).get("positive_rate_by_band")
        if by_band:
            _kpi_panel(ax, model, by_band, bands)
        else:
            _no_data(ax, f"{model}:\nno labelled feedback yet")
    return _chart("kpis", "Outcome KPIs", caption, _svg(fig), table=_kpi_table(kpis))


def releases_table(settings: Settings) -> str:
    """Each model's release (champion, challenger, mode) and its last test's verdict."""
    caption = (
        "Champion and challenger served, the running test, its last event and the latest "
        "verdict (leadrisk release compare); see docs/releases.md."
    )
    url = settings.release_store_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return _section("releases", "Releases", caption, "nothing served yet")
    try:
        store = ReleaseStore(url)
        releases = store.all()
    except Exception as err:  # an unreachable table must not take the page down
        return _section("releases", "Releases", caption, f"release table unreachable: {err}")
    rows = []
    for model, release in sorted(releases.items()):
        events = store.events(model)
        last = f"{events[-1]['event']} {events[-1]['at'][:19]}" if events else ""
        share = f" {release.share:.0%}" if release.mode == "ab" else ""
        rows.append(
            [
                model,
                f"v{tag_version(release.champion)}",
                f"v{tag_version(release.challenger)}" if release.challenger else "-",
                release.mode + share,
                last,
                latest_verdict(settings, model),
            ]
        )
    header = ["model", "champion", "challenger", "test", "last event", "latest verdict"]
    return _section("releases", "Releases", caption, "", _table(header, rows))


def _section(section_id: str, title: str, caption: str, empty: str, table: str = "") -> str:
    """A table beside the charts: its caption, then the table or an ``empty`` note."""
    body = table or f'<p class="empty">{html.escape(empty)}</p>'
    return (
        f'<figure class="table wide" id="{section_id}"><figcaption><b>{html.escape(title)}</b>'
        f"{html.escape(caption)}</figcaption>{body}</figure>"
    )


def _kpi_panel(ax: Axes, model: str, by_band: dict[str, dict], bands: list[str]) -> None:
    order = [b for b in bands if b in by_band] + sorted(set(by_band) - set(bands))
    rates = [by_band[b]["rate"] for b in order]
    bars = ax.bar(order, rates, color=MODEL_COLORS.get(model))
    ax.bar_label(bars, [f"n={by_band[b]['count']}" for b in order], fontsize=7, padding=2)
    ax.set_ylim(0, 1.1)
    ax.set_title(model, fontsize=9)
    ax.set_xlabel("band")
    ax.set_ylabel("positive rate")


def _kpi_table(kpis: dict[str, dict[str, Any]]) -> str:
    header = ["model", "labelled / all", "positive", "ROC-AUC"]
    header += ["threshold", "precision", "recall", "rating"]
    rows = [
        [
            model,
            f"{values['labelled']:,} / {values['count']:,}",
            _fmt(values["positive_rate"], ".1%"),
            _fmt(values["roc_auc"], ".3f"),
            _fmt(values["threshold"], ".2f"),
            _fmt(values["precision"], ".3f"),
            _fmt(values["recall"], ".3f"),
            _fmt(values["mean_rating"], ".2f"),
        ]
        for model, values in kpis.items()
    ]
    return _table(header, rows)


def _header(predictions: pd.DataFrame, truncated: bool, since: datetime, now: datetime) -> str:
    counts = predictions.groupby(["model", "model_version"], dropna=False).size()
    versions = "; ".join(
        f"{model} " + ", ".join(f"v{v} ({counts[model, v]:,})" for v in counts.loc[model].index)
        for model in counts.index.unique("model")
    )
    read = f"{len(predictions):,} predictions" + (
        f" (the newest {LOG_LIMIT:,} only)" if truncated else ""
    )
    return (
        "<header><h1>leadrisk monitoring</h1>"
        f'<p id="generated">Generated {now.isoformat(timespec="seconds")} · window '
        f"{_span(since, now)} · {html.escape(read)}</p>"
        f'<p id="versions">Model versions in the log: {html.escape(versions or "none yet")}</p>'
        "</header>"
    )


def _page(header: str, charts: list[str]) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>leadrisk monitoring</title><style>{STYLE}</style></head>"
        f"<body>{header}<main>{''.join(charts)}</main></body></html>\n"
    )


def _chart(
    chart_id: str,
    title: str,
    caption: str,
    svg: str | None,
    empty: str = "",
    *,
    table: str = "",
    wide: bool = False,
) -> str:
    """A ``<figure class="chart">``: caption, then the SVG or an ``empty`` note, then a table."""
    body = svg if svg is not None else f'<p class="empty">{html.escape(empty)}</p>'
    classes = "chart wide" if wide else "chart"
    return (
        f'<figure class="{classes}" id="{chart_id}"><figcaption><b>{html.escape(title)}</b>'
        f"{html.escape(caption)}</figcaption>{body}{table}</figure>"
    )


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _panels(
    size: tuple[float, float],
    lefts: tuple[float, ...],
    widths: tuple[float, ...] | None = None,
    bottom: float = 0.6,
    top: float = 0.15,
) -> tuple[Figure, list[Axes]]:
    """A figure of side-by-side axes with margins in inches, each axes with its own left margin
    for tick labels: a fixed layout, several times faster to draw than a constrained one."""
    fig = Figure(figsize=size)
    fig_width, fig_height = size
    widths = widths or (1.0,) * len(lefts)
    usable = fig_width - sum(lefts) - RIGHT_MARGIN
    x, axes = 0.0, []
    for left, share in zip(lefts, widths, strict=True):
        x += left
        width = usable * share / sum(widths)
        rect = (x / fig_width, bottom / fig_height, width / fig_width)
        axes.append(fig.add_axes((*rect, (fig_height - bottom - top) / fig_height)))
        x += width
    return fig, axes


def _svg(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (the XML prolog and doctype dropped)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _time_axis(ax: Axes, since: datetime, now: datetime) -> None:
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlim(_naive(since), _naive(now))
    ax.set_xlabel("time (UTC)")


def _no_data(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color="#888", transform=ax.transAxes)
    ax.set_axis_off()


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _span(since: datetime, now: datetime) -> str:
    return f"the {_duration(now - since)} to {now:%Y-%m-%d %H:%M} UTC"


def _duration(length: timedelta) -> str:
    minutes = round(length.total_seconds() / 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 else f"{minutes} min"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _naive(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(tzinfo=None)
