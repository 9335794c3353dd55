"""Synthetic leads, customers and transactions with a known signal, as the canonical tables.

The real sources are small; load tests, drift drills and scale runs need data of any size whose
signal we know and can shift on purpose.

Leads use the X Education vocabularies. Conversion (base rate about 38%) is Bernoulli with the
logistic of, coefficients in the LEAD_LOGIT_* constants:

    -1.12                                            intercept
    +1.8 * (total_time_on_website - 405) / 505       standardised with fixed population constants
    +1.3 * [last_activity == "SMS Sent"]
    -1.6 * [last_activity == "Email Bounced"]
    -1.2 * [last_activity == "Unreachable"]
    +2.2 * [occupation == "Working Professional"]
    +2.0 * [lead_origin == "Lead Add Form"]
    -1.0 * do_not_email
    + Normal(0, 0.8)                                 noise

The sales columns (tags, lead_quality, lead_profile) are drawn from the outcome, as in the real
data: they leak the label and must never be used for scoring.

Customers: a latent "risky" flag (RISKY_SHARE) decides suspension (base rate about 9%, see
SUSPENDED_IF_RISKY / SUSPENDED_IF_CLEAN) and a behaviour intensity in [0, 1] (Beta, high for the
risky). Every behavioural rate is ``base + slope * intensity`` (the ``(base, slope)`` constants
below): night-time hours, peer counterparties, cross-border counterparties, failed status, larger
and round amounts, pass-through (money in, then quickly out) and activity.

Drift is applied after outcomes are drawn, from its own random stream: labels and latent risk do
not follow it, and without it the same seed gives the same data. Each chunk draws from a
generator seeded by (seed, stream, chunk index), so the output depends only on the arguments.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from features.tables import (
    CUSTOMER_CATEGORICAL,
    CUSTOMER_LABELS,
    CUSTOMER_NUMERIC,
    CUSTOMERS,
    DIRECTIONS,
    FAILED_STATUS,
    LABELED,
    LEAD_ENGAGEMENT_NUMERIC,
    LEAD_FLAGS,
    LEAD_LABELS,
    LEAD_SALES_NUMERIC,
    LEADS,
    TRANSACTIONS,
    TS,
    UNLABELED,
    TableSpec,
    write_arrow,
)

DAY_S = 86_400
HOUR_S = 3_600
US_PER_S = 1_000_000


def _cdf(weights: np.ndarray) -> np.ndarray:
    return np.cumsum(weights / weights.sum())


def _draw(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), cdf.size - 1)


class _Vocab:
    """Categorical values with one weight column per group (e.g. clean and risky customers).

    Values are drawn as integer codes and turned into strings only when a table is built. The
    first group is the baseline population; its rarest value is the column's drifted value.
    """

    def __init__(self, weights: dict[str | None, float | tuple[float, ...]]) -> None:
        self.values = tuple(weights)
        table = np.array([np.atleast_1d(w) for w in weights.values()], dtype=float)
        self._cdfs = [_cdf(column) for column in table.T]
        self._dictionary = pa.array(self.values, type=pa.string())
        baseline = {v: w for v, w in zip(self.values, table[:, 0], strict=True) if v and w > 0}
        self.rarest: str = min(baseline, key=baseline.__getitem__)

    def code(self, value: str | None) -> int:
        return self.values.index(value)

    def draw(self, rng: np.random.Generator, n: int, group: np.ndarray | None = None) -> np.ndarray:
        if group is None:
            return _draw(rng, self._cdfs[0], n)
        u = rng.random(n)
        codes = np.empty(n, dtype=np.int64)
        for g, cdf in enumerate(self._cdfs):
            rows = group == g
            codes[rows] = np.searchsorted(cdf, u[rows], side="right")
        return np.minimum(codes, len(self.values) - 1)

    def strings(self, codes: np.ndarray) -> pa.Array:
        return self._dictionary.take(pa.array(codes, type=pa.int64()))

    def lookup(self, mapping: dict[str, float], default: float = 0.0) -> np.ndarray:
        """Per-code array of `mapping` values, for vectorised effects of a category."""
        return np.array([mapping.get(v, default) if v else default for v in self.values])


# --- Leads (X Education) ------------------------------------------------------------------------

LEAD_ORIGIN = _Vocab(
    {"Landing Page Submission": 0.53, "API": 0.39, "Lead Add Form": 0.077, "Lead Import": 0.006}
)
# lead_source weights per origin group: (web origins, Lead Add Form, Lead Import)
LEAD_SOURCE = _Vocab(
    {
        "Google": (0.33, 0.03, 0.25),
        "Direct Traffic": (0.30, 0.0, 0.0),
        "Olark Chat": (0.21, 0.0, 0.0),
        "Organic Search": (0.135, 0.0, 0.05),
        "Reference": (0.0, 0.75, 0.0),
        "Welingak Website": (0.0, 0.22, 0.0),
        "Referral Sites": (0.014, 0.0, 0.0),
        "Facebook": (0.011, 0.0, 0.70),
    }
)
_SOURCE_GROUP = np.array(
    [{"Lead Add Form": 1, "Lead Import": 2}.get(v, 0) for v in LEAD_ORIGIN.values]
)
_WEB_ORIGIN = _SOURCE_GROUP == 0
LEAD_COUNTRY = _Vocab(
    {
        "India": 0.70,
        None: 0.266,
        "United States": 0.0075,
        "United Arab Emirates": 0.0057,
        "Singapore": 0.0026,
        "Saudi Arabia": 0.0023,
        "United Kingdom": 0.0016,
        "Australia": 0.0014,
        "Qatar": 0.001,
    }
)
SPECIALIZATION = _Vocab(
    {
        None: 0.37,
        "Finance Management": 0.106,
        "Human Resource Management": 0.092,
        "Marketing Management": 0.091,
        "Operations Management": 0.054,
        "Business Administration": 0.044,
        "IT Projects Management": 0.040,
        "Supply Chain Management": 0.038,
        "Banking, Investment And Insurance": 0.037,
        "Media and Advertising": 0.022,
        "Travel and Tourism": 0.021,
        "International Business": 0.019,
        "Healthcare Management": 0.017,
        "Hospitality Management": 0.0125,
        "E-COMMERCE": 0.012,
        "Retail Management": 0.011,
        "Rural and Agribusiness": 0.008,
        "E-Business": 0.006,
        "Services Excellence": 0.004,
    }
)
HOW_DID_YOU_HEAR = _Vocab(
    {
        None: 0.78,
        "Online Search": 0.087,
        "Word Of Mouth": 0.038,
        "Student of SomeSchool": 0.034,
        "Other": 0.02,
        "Multiple Sources": 0.016,
        "Advertisements": 0.008,
        "Social Media": 0.007,
        "Email": 0.003,
        "SMS": 0.0006,
    }
)
OCCUPATION = _Vocab(
    {
        "Unemployed": 0.61,
        "Working Professional": 0.076,
        "Student": 0.023,
        "Other": 0.0017,
        "Housewife": 0.0011,
        "Businessman": 0.0009,
        None: 0.29,
    }
)
WHAT_MATTERS_MOST = _Vocab(
    {
        "Better Career Prospects": 0.705,
        None: 0.2928,
        "Other": 0.0012,
        "Flexibility & Convenience": 0.001,
    }
)
CITY = _Vocab(
    {
        None: 0.397,
        "Mumbai": 0.349,
        "Thane & Outskirts": 0.081,
        "Other Cities": 0.074,
        "Other Cities of Maharashtra": 0.049,
        "Other Metro Cities": 0.041,
        "Tier II Cities": 0.008,
    }
)
LAST_ACTIVITY = _Vocab(
    {
        "Email Opened": 0.372,
        "SMS Sent": 0.297,
        "Olark Chat Conversation": 0.105,
        "Page Visited on Website": 0.069,
        "Converted to Lead": 0.046,
        "Email Bounced": 0.035,
        "Email Link Clicked": 0.029,
        "Form Submitted on Website": 0.013,
        "Modified": 0.011,
        "Unreachable": 0.010,
        "Unsubscribed": 0.0066,
    }
)
# Probability that last_notable_activity repeats last_activity; otherwise it is "Modified".
NOTABLE_KEEP = {
    "Email Opened": 0.80,
    "SMS Sent": 0.78,
    "Olark Chat Conversation": 0.2,
    "Page Visited on Website": 0.45,
    "Email Bounced": 0.2,
    "Email Link Clicked": 0.6,
    "Unreachable": 0.35,
    "Unsubscribed": 0.7,
    "Modified": 1.0,
}
LEAD_FLAG_RATES = {
    "do_not_email": 0.079,
    "do_not_call": 0.0003,
    "search": 0.0015,
    "newspaper_article": 0.0003,
    "x_education_forums": 0.0002,
    "newspaper": 0.0002,
    "digital_advertisement": 0.0004,
    "through_recommendations": 0.0008,
    "free_copy_of_interview": 0.31,
}
# Sales columns, weights per outcome: (not converted, converted).
TAGS = _Vocab(
    {
        None: (0.42, 0.15),
        "Will revert after reading the email": (0.06, 0.62),
        "Ringing": (0.20, 0.005),
        "Interested in other courses": (0.085, 0.003),
        "Already a student": (0.08, 0.002),
        "Closed by Horizzon": (0.002, 0.10),
        "switched off": (0.04, 0.002),
        "Busy": (0.02, 0.03),
        "Lost to EINS": (0.0025, 0.06),
        "Not doing further education": (0.025, 0.001),
        "Interested in full time MBA": (0.021, 0.002),
        "Graduation in progress": (0.019, 0.008),
        "Diploma holder (Not Eligible)": (0.01, 0.0005),
        "invalid number": (0.014, 0.0005),
        "wrong number given": (0.008, 0.0005),
    }
)
LEAD_QUALITY = _Vocab(
    {
        None: (0.58, 0.40),
        "Might be": (0.15, 0.22),
        "Not Sure": (0.14, 0.08),
        "High in Relevance": (0.02, 0.18),
        "Low in Relevance": (0.055, 0.09),
        "Worst": (0.1, 0.005),
    }
)
LEAD_PROFILE = _Vocab(
    {
        None: (0.78, 0.66),
        "Potential Lead": (0.10, 0.30),
        "Other Leads": (0.06, 0.03),
        "Student of SomeSchool": (0.05, 0.003),
        "Lateral Student": (0.0025, 0.004),
        "Dual Specialization Student": (0.002, 0.003),
    }
)
ACTIVITY_INDEX = _Vocab({"01.High": 0.09, "02.Medium": 0.415, "03.Low": 0.04, None: 0.455})
PROFILE_INDEX = _Vocab({"01.High": 0.24, "02.Medium": 0.30, "03.Low": 0.003, None: 0.455})
ASYMMETRIQUE_MISSING = 0.455
# Scores: (mean, sd, min, max, lowest "01.High" score, lowest "02.Medium" score)
ACTIVITY_SCORE = (14.3, 1.4, 7.0, 18.0, 16.0, 13.0)
PROFILE_SCORE = (16.3, 1.8, 11.0, 20.0, 17.0, 13.0)

LEAD_VOCABS = {
    "lead_origin": LEAD_ORIGIN,
    "lead_source": LEAD_SOURCE,
    "country": LEAD_COUNTRY,
    "specialization": SPECIALIZATION,
    "how_did_you_hear": HOW_DID_YOU_HEAR,
    "occupation": OCCUPATION,
    "what_matters_most": WHAT_MATTERS_MOST,
    "city": CITY,
    "last_activity": LAST_ACTIVITY,
    "last_notable_activity": LAST_ACTIVITY,
    "tags": TAGS,
    "lead_quality": LEAD_QUALITY,
    "lead_profile": LEAD_PROFILE,
    "asymmetrique_activity_index": ACTIVITY_INDEX,
    "asymmetrique_profile_index": PROFILE_INDEX,
}

TOTAL_VISITS_NEGBIN = (1.5, 3.5)  # (shape, mean) of visits for web origins
MAX_VISITS = 30.0
TIME_ON_WEBSITE_LOGNORMAL = (350.0, 0.95)  # (median s, log-sd) when the lead visited
MAX_TIME_ON_WEBSITE = 2_500.0
MAX_PAGE_VIEWS = 10.0
ENGAGEMENT_MISSING = 0.015

TIME_ON_WEBSITE_MEAN = 405.0
TIME_ON_WEBSITE_STD = 505.0
LEAD_LOGIT_INTERCEPT = -1.12
LEAD_LOGIT_TIME = 1.8
LEAD_LOGIT_ACTIVITY = {"SMS Sent": 1.3, "Email Bounced": -1.6, "Unreachable": -1.2}
LEAD_LOGIT_OCCUPATION = {"Working Professional": 2.2}
LEAD_LOGIT_ORIGIN = {"Lead Add Form": 2.0}
LEAD_LOGIT_DO_NOT_EMAIL = -1.0
LEAD_LOGIT_NOISE = 0.8

# --- Customers -----------------------------------------------------------------------------------

RISKY_SHARE = 0.085
SUSPENDED_IF_RISKY = 0.85
SUSPENDED_IF_CLEAN = 0.018
INTENSITY_BETA = ((1.0, 15.0), (4.0, 3.0))  # (clean, risky) Beta parameters
TENURE_MEAN_MONTHS = (20.0, 5.0)  # (clean, risky), exponential
INIT_BALANCE_LOGNORMAL = ((1_500.0, 1.2), (300.0, 1.5))  # (clean, risky): (median, log-sd)

CUSTOMER_COUNTRY = _Vocab(
    {
        "GB": 0.30,
        "DE": 0.15,
        "FR": 0.12,
        "NL": 0.08,
        "ES": 0.08,
        "IT": 0.08,
        "US": 0.07,
        "NG": 0.045,
        "PK": 0.04,
        "AE": 0.035,
    }
)
# Weights per customer group: (clean, risky).
AGE_BAND = _Vocab(
    {
        "18-24": (0.17, 0.36),
        "25-34": (0.31, 0.34),
        "35-44": (0.24, 0.15),
        "45-54": (0.16, 0.09),
        "55+": (0.12, 0.06),
    }
)
KYC_LEVEL = _Vocab({"basic": (0.30, 0.66), "standard": (0.55, 0.30), "enhanced": (0.15, 0.04)})
PRODUCT = _Vocab(
    {
        "current_account": (0.55, 0.38),
        "savings": (0.20, 0.05),
        "business": (0.17, 0.20),
        "crypto_wallet": (0.08, 0.37),
    }
)
ACQUISITION_CHANNEL = _Vocab(
    {
        "organic": (0.35, 0.14),
        "paid_search": (0.25, 0.20),
        "referral": (0.20, 0.14),
        "affiliate": (0.10, 0.42),
        "partner": (0.11, 0.10),
    }
)
CUSTOMER_VOCABS = {
    "country": CUSTOMER_COUNTRY,
    "age_band": AGE_BAND,
    "kyc_level": KYC_LEVEL,
    "product": PRODUCT,
    "acquisition_channel": ACQUISITION_CHANNEL,
}

# --- Transactions ---------------------------------------------------------------------------------

# Behaviour = base + slope * intensity.
ACTIVITY = (1.0, 1.5)
NIGHT_SHARE = (0.03, 0.40)
CROSS_BORDER_SHARE = (0.05, 0.45)
FAILED_SHARE = (0.015, 0.12)
ROUND_AMOUNT_SHARE = (0.03, 0.55)
AMOUNT_LOG_SCALE = (0.0, 0.9)
PASS_THROUGH_SHARE = (0.02, 0.60)
PEER_POOL = (3.0, 45.0)
MULE_SHARE = (0.0, 0.30)

ACTIVITY_GAMMA_SHAPE = 2.0  # customer-to-customer spread of activity (mean 1)
MERCHANT_FAVOURITES = 8.0  # Poisson mean of a customer's usual merchants, plus 3
PASS_THROUGH_DELAY_S = 4 * HOUR_S
NIGHT_HOURS = 6  # hours 0-5 UTC
DAYTIME_HOUR_WEIGHTS = np.array(  # hours 6-23
    [1, 2, 4, 6, 7, 8, 9, 9, 8, 8, 8, 9, 9, 8, 7, 6, 4, 2], dtype=float
)

# Mixture weights per transaction: (customer's usual pattern, risky pattern).
TX_TYPE = _Vocab(
    {
        "card": (0.64, 0.22),
        "transfer": (0.22, 0.40),
        "cash_withdrawal": (0.07, 0.08),
        "cash_deposit": (0.04, 0.12),
        "crypto": (0.03, 0.18),
    }
)
IN_SHARE = {
    "card": 0.03,
    "transfer": 0.45,
    "cash_withdrawal": 0.0,
    "cash_deposit": 1.0,
    "crypto": 0.4,
}
AMOUNT_LOGNORMAL = {  # (median, log-sd) per type
    "card": (28.0, 1.0),
    "transfer": (180.0, 1.2),
    "cash_withdrawal": (90.0, 0.7),
    "cash_deposit": (250.0, 0.9),
    "crypto": (220.0, 1.3),
}
PASS_THROUGH_FROM = ("transfer", "cash_deposit", "crypto")
COUNTERPARTY_COUNTRY = _Vocab(  # where a cross-border counterparty sits
    {
        "GB": 0.14,
        "DE": 0.12,
        "FR": 0.10,
        "NL": 0.08,
        "ES": 0.07,
        "IT": 0.07,
        "US": 0.12,
        "NG": 0.05,
        "PK": 0.05,
        "AE": 0.07,
        "CH": 0.04,
        "HK": 0.03,
        "TR": 0.03,
        "CY": 0.015,
        "KY": 0.01,
    }
)
# Only their codes are used: direction follows the type, status the intensity.
DIRECTION = _Vocab({DIRECTIONS[0]: 0.5, DIRECTIONS[1]: 0.5})
STATUS = _Vocab({"completed": 0.97, FAILED_STATUS: 0.03})

# Counterparty id spaces: shared pools, then peers private to each customer.
MERCHANT_BASE, MERCHANTS = 1_000_000_000, 200_000
ATM_BASE, ATMS = 2_000_000_000, 20_000
EXCHANGE_BASE, EXCHANGES = 3_000_000_000, 25
MULE_BASE, MULES = 4_000_000_000, 2_000
PEER_BASE, PEER_SLOTS = 10_000_000_000, 1_000

TRANSACTION_VOCABS = {
    "direction": DIRECTION,
    "type": TX_TYPE,
    "counterparty_country": COUNTERPARTY_COUNTRY,
    "customer_country": CUSTOMER_COUNTRY,
    "status": STATUS,
}

_IN_SHARE = TX_TYPE.lookup(IN_SHARE)
_AMOUNT_MEDIAN = TX_TYPE.lookup({t: m for t, (m, _) in AMOUNT_LOGNORMAL.items()})
_AMOUNT_SIGMA = TX_TYPE.lookup({t: s for t, (_, s) in AMOUNT_LOGNORMAL.items()})
_PASS_THROUGH_FROM = TX_TYPE.lookup(dict.fromkeys(PASS_THROUGH_FROM, 1.0)).astype(bool)
_HOME_COUNTERPARTY = np.array([COUNTERPARTY_COUNTRY.code(c) for c in CUSTOMER_COUNTRY.values])
_DAYTIME_HOUR_CDF = _cdf(DAYTIME_HOUR_WEIGHTS)
_MEAN_INTENSITY = sum(
    share * a / (a + b)
    for share, (a, b) in zip((1 - RISKY_SHARE, RISKY_SHARE), INTENSITY_BETA, strict=True)
)

# --- Drift ----------------------------------------------------------------------------------------

NUMERIC_COLUMNS = frozenset(
    [*LEAD_ENGAGEMENT_NUMERIC, *LEAD_SALES_NUMERIC, *CUSTOMER_NUMERIC, "amount"]
)
DRIFTABLE = {
    LEADS.name: [c for c in LEADS.columns if c not in (LEADS.key, LEADS.timestamp)],
    CUSTOMERS.name: [*CUSTOMER_CATEGORICAL, *CUSTOMER_NUMERIC],
    TRANSACTIONS.name: ["amount", "type", "counterparty_country"],
}
VOCABS = {
    LEADS.name: LEAD_VOCABS,
    CUSTOMERS.name: CUSTOMER_VOCABS,
    TRANSACTIONS.name: TRANSACTION_VOCABS,
}
DRIFTED_VALUES = {
    table: {c: VOCABS[table][c].rarest for c in columns if c in VOCABS[table]}
    for table, columns in DRIFTABLE.items()
}


@dataclass(frozen=True)
class DriftSpec:
    """Shift named features for entities/events on or after `start` (UTC if naive).

    A numeric feature is multiplied by ``1 + shift``. For a categorical feature ``shift`` is the
    probability that a value becomes the column's drifted value (``DRIFTED_VALUES``: the rarest
    value of its vocabulary); for a 0/1 lead flag, that it becomes 1. A bare column name shifts
    every table that has it (``country`` is in leads and customers); ``"table.column"`` targets
    one. Leads drift by created_at, customers by profile_at, transactions by event_timestamp.
    """

    start: datetime
    shifts: dict[str, float]

    def __post_init__(self) -> None:
        for name, shift in self.shifts.items():
            targets = [(t, c) for t in DRIFTABLE if (c := self._column(t, name))]
            if not targets:
                choices = sorted({c for cols in DRIFTABLE.values() for c in cols})
                raise ValueError(f"drift: unknown feature {name!r}; choose from {choices}")
            numeric = all(c in NUMERIC_COLUMNS for _, c in targets)
            if numeric and shift <= -1:
                raise ValueError(f"drift: {name!r} shift {shift} must be > -1 (a factor 1+shift)")
            if not numeric and not 0 <= shift <= 1:
                raise ValueError(f"drift: {name!r} shift {shift} is a probability, within [0, 1]")

    @staticmethod
    def _column(table: str, name: str) -> str | None:
        prefix, _, column = name.rpartition(".")
        if prefix and prefix != table:
            return None
        return column if column in DRIFTABLE[table] else None

    @property
    def start_s(self) -> int:
        """First drifted second since the epoch (timestamps have second resolution)."""
        start = self.start if self.start.tzinfo else self.start.replace(tzinfo=UTC)
        return math.ceil(start.timestamp())

    def targets(self, table: str) -> dict[str, float]:
        return {c: s for name, s in self.shifts.items() if (c := self._column(table, name))}


def _apply_drift(
    columns: dict[str, np.ndarray],
    table: str,
    when_s: np.ndarray,
    drift: DriftSpec | None,
    rng: np.random.Generator,
) -> None:
    """Shift the targeted columns in place; categorical columns are held as vocabulary codes."""
    if drift is None:
        return
    after = when_s >= drift.start_s
    for column, shift in drift.targets(table).items():
        values = columns[column]
        if column in NUMERIC_COLUMNS:
            columns[column] = np.where(after, values * (1 + shift), values)
            continue
        hit = after & (rng.random(after.size) < shift)
        if column in LEAD_FLAGS:
            columns[column] = np.where(hit, 1, values)
        else:
            vocab = VOCABS[table][column]
            columns[column] = np.where(hit, vocab.code(vocab.rarest), values)


# --- Generation -----------------------------------------------------------------------------------

_STREAMS = ("leads", "customers", "leads_drift", "customers_drift", "transactions_drift")


def _rng(seed: int, stream: str, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _STREAMS.index(stream), chunk]))


def _effect(base_slope: tuple[float, float], intensity: np.ndarray) -> np.ndarray:
    base, slope = base_slope
    return base + slope * intensity


def _chunks(total: int, size: int) -> Iterator[tuple[int, int, int]]:
    for index, lo in enumerate(range(0, total, size)):
        yield index, lo, min(lo + size, total)


def _spread(
    rng: np.random.Generator, lo: int, hi: int, total: int, t0: int, span: int
) -> np.ndarray:
    """Sorted seconds for rows [lo, hi) of `total`, stratified over [t0, t0 + span).

    Each chunk covers its share of the period, so ids increase with time across chunks.
    """
    first = t0 + lo * span // total
    last = max(t0 + hi * span // total, first + 1)
    return np.sort(rng.integers(first, last, hi - lo))


def _arrow(
    spec: TableSpec, columns: dict[str, np.ndarray | pa.Array], vocabs: dict[str, _Vocab]
) -> pa.Table:
    arrays = []
    for field in spec.schema:
        values = columns[field.name]
        if isinstance(values, pa.Array):
            arrays.append(values)
        elif field.name in vocabs:
            arrays.append(vocabs[field.name].strings(values))
        elif field.type == TS:
            arrays.append(pa.array(values * US_PER_S, type=field.type))
        else:
            arrays.append(pa.array(values, type=field.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def _leads(
    rng: np.random.Generator, ids: np.ndarray, created_s: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Lead columns (categoricals as codes) and the conversion outcome."""
    n = ids.size
    origin = LEAD_ORIGIN.draw(rng, n)
    activity = LAST_ACTIVITY.draw(rng, n)
    occupation = OCCUPATION.draw(rng, n)
    flags = {f: (rng.random(n) < LEAD_FLAG_RATES[f]).astype(np.int64) for f in LEAD_FLAGS}

    shape, mean = TOTAL_VISITS_NEGBIN
    visits = rng.negative_binomial(shape, shape / (shape + mean), n).clip(max=MAX_VISITS)
    visits = np.where(_WEB_ORIGIN[origin], visits, 0).astype(float)
    median, sigma = TIME_ON_WEBSITE_LOGNORMAL
    time = np.round(rng.lognormal(np.log(median), sigma, n)).clip(max=MAX_TIME_ON_WEBSITE)
    time = np.where(visits > 0, time, 0.0)
    page_views = np.round(1 + rng.gamma(1.6, 0.9, n), 2).clip(max=MAX_PAGE_VIEWS)
    page_views = np.where(visits > 0, page_views, 0.0)
    missing = rng.random(n) < ENGAGEMENT_MISSING
    visits[missing] = np.nan
    page_views[missing] = np.nan

    logit = (
        LEAD_LOGIT_INTERCEPT
        + LEAD_LOGIT_TIME * (time - TIME_ON_WEBSITE_MEAN) / TIME_ON_WEBSITE_STD
        + LAST_ACTIVITY.lookup(LEAD_LOGIT_ACTIVITY)[activity]
        + OCCUPATION.lookup(LEAD_LOGIT_OCCUPATION)[occupation]
        + LEAD_ORIGIN.lookup(LEAD_LOGIT_ORIGIN)[origin]
        + LEAD_LOGIT_DO_NOT_EMAIL * flags["do_not_email"]
        + rng.normal(0.0, LEAD_LOGIT_NOISE, n)
    )
    converted = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)

    keep = rng.random(n) < LAST_ACTIVITY.lookup(NOTABLE_KEEP)[activity]
    notable = np.where(keep, activity, LAST_ACTIVITY.code("Modified"))
    asym_missing = rng.random(n) < ASYMMETRIQUE_MISSING
    activity_score, activity_index = _asymmetrique(
        rng, ACTIVITY_SCORE, ACTIVITY_INDEX, asym_missing
    )
    profile_score, profile_index = _asymmetrique(rng, PROFILE_SCORE, PROFILE_INDEX, asym_missing)
    columns = {
        "lead_id": ids,
        "created_at": created_s,
        "lead_origin": origin,
        "lead_source": LEAD_SOURCE.draw(rng, n, _SOURCE_GROUP[origin]),
        "country": LEAD_COUNTRY.draw(rng, n),
        "specialization": SPECIALIZATION.draw(rng, n),
        "how_did_you_hear": HOW_DID_YOU_HEAR.draw(rng, n),
        "occupation": occupation,
        "what_matters_most": WHAT_MATTERS_MOST.draw(rng, n),
        "city": CITY.draw(rng, n),
        **flags,
        "total_visits": visits,
        "total_time_on_website": time,
        "page_views_per_visit": page_views,
        "last_activity": activity,
        "last_notable_activity": notable,
        "tags": TAGS.draw(rng, n, converted),
        "lead_quality": LEAD_QUALITY.draw(rng, n, converted),
        "lead_profile": LEAD_PROFILE.draw(rng, n, converted),
        "asymmetrique_activity_index": activity_index,
        "asymmetrique_profile_index": profile_index,
        "asymmetrique_activity_score": activity_score,
        "asymmetrique_profile_score": profile_score,
    }
    return columns, converted


def _asymmetrique(
    rng: np.random.Generator,
    score_spec: tuple[float, ...],
    index: _Vocab,
    missing: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    mean, sd, low, high, high_from, medium_from = score_spec
    score = np.round(rng.normal(mean, sd, missing.size)).clip(low, high)
    codes = np.select(
        [missing, score >= high_from, score >= medium_from],
        [index.code(None), index.code("01.High"), index.code("02.Medium")],
        index.code("03.Low"),
    )
    return np.where(missing, np.nan, score), codes


def _customers(
    rng: np.random.Generator, ids: np.ndarray, profile_s: np.ndarray, unlabeled_share: float
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Customer columns (categoricals as codes), behaviour intensity, suspended, unlabeled."""
    n = ids.size
    risky = rng.random(n) < RISKY_SHARE
    group = risky.astype(np.int64)
    (clean_a, clean_b), (risky_a, risky_b) = INTENSITY_BETA
    intensity = np.where(risky, rng.beta(risky_a, risky_b, n), rng.beta(clean_a, clean_b, n))
    balance_median, balance_sigma = np.array(INIT_BALANCE_LOGNORMAL)[group].T
    columns = {
        "customer_id": ids,
        "profile_at": profile_s,
        "country": CUSTOMER_COUNTRY.draw(rng, n),
        **{c: v.draw(rng, n, group) for c, v in CUSTOMER_VOCABS.items() if c != "country"},
        "tenure_months": np.round(rng.exponential(np.array(TENURE_MEAN_MONTHS)[group]), 1),
        "init_balance": np.round(rng.lognormal(np.log(balance_median), balance_sigma), 2),
    }
    suspended = rng.random(n) < np.where(risky, SUSPENDED_IF_RISKY, SUSPENDED_IF_CLEAN)
    unlabeled = np.zeros(n, dtype=bool)
    unlabeled[rng.choice(n, size=round(unlabeled_share * n), replace=False)] = True
    return columns, intensity, suspended, unlabeled


def _customer_labels(
    ids: np.ndarray, end_s: int, suspended: np.ndarray, unlabeled: np.ndarray
) -> dict[str, np.ndarray | pa.Array]:
    cohort = pa.array(np.where(unlabeled, UNLABELED, LABELED), type=pa.string())
    return {
        "customer_id": ids,
        "label_at": np.full(ids.size, end_s),
        "suspended": pa.array(suspended.astype(np.int64), type=pa.int64(), mask=unlabeled),
        "cohort": cohort,
    }


def _transactions(
    rng: np.random.Generator,
    customers: dict[str, np.ndarray],
    intensity: np.ndarray,
    per_customer: float,
    end_s: int,
) -> dict[str, np.ndarray]:
    """Transactions of one chunk of customers, sorted by customer then time (ids not yet set)."""
    m = intensity.size
    activity = rng.gamma(ACTIVITY_GAMMA_SHAPE, 1 / ACTIVITY_GAMMA_SHAPE, m)
    rate = (
        per_customer * activity * _effect(ACTIVITY, intensity) / _effect(ACTIVITY, _MEAN_INTENSITY)
    )
    owner = np.repeat(np.arange(m), rng.poisson(rate))
    n = owner.size
    tx_type = TX_TYPE.draw(rng, n, (rng.random(n) < intensity[owner]).astype(np.int64))
    inflow = rng.random(n) < _IN_SHARE[tx_type]
    when = _event_times(rng, customers["profile_at"][owner], end_s, intensity[owner])
    amount = _amounts(rng, tx_type, intensity[owner])

    # Pass-through: part of the inflow leaves again within hours, to a peer or an exchange.
    passes = inflow & _PASS_THROUGH_FROM[tx_type]
    passes &= rng.random(n) < _effect(PASS_THROUGH_SHARE, intensity[owner])
    src = np.flatnonzero(passes)
    crypto = TX_TYPE.code("crypto")
    delay = 60 + rng.exponential(PASS_THROUGH_DELAY_S, src.size).astype(np.int64)
    owner = np.concatenate([owner, owner[src]])
    tx_type = np.concatenate(
        [tx_type, np.where(tx_type[src] == crypto, crypto, TX_TYPE.code("transfer"))]
    )
    inflow = np.concatenate([inflow, np.zeros(src.size, dtype=bool)])
    when = np.concatenate([when, np.minimum(when[src] + delay, end_s - 1)])
    amount = np.concatenate([amount, np.round(amount[src] * rng.uniform(0.85, 0.99, src.size), 2)])

    order = np.argsort((owner << 32) | (when - customers["profile_at"].min()), kind="stable")
    owner, tx_type, inflow, when, amount = (
        a[order] for a in (owner, tx_type, inflow, when, amount)
    )
    row_intensity = intensity[owner]
    home = customers["country"][owner]
    return {
        "customer_id": customers["customer_id"][owner],
        "counterparty_id": _counterparties(
            rng, customers["customer_id"], owner, tx_type, intensity
        ),
        "amount": np.maximum(amount, 0.01),
        "direction": np.where(inflow, DIRECTION.code(DIRECTIONS[0]), DIRECTION.code(DIRECTIONS[1])),
        "type": tx_type,
        "counterparty_country": _counterparty_countries(rng, home, row_intensity),
        "customer_country": home,
        "status": np.where(
            rng.random(owner.size) < _effect(FAILED_SHARE, row_intensity),
            STATUS.code(FAILED_STATUS),
            STATUS.code("completed"),
        ),
        "event_timestamp": when,
    }


def _event_times(
    rng: np.random.Generator, profile_s: np.ndarray, end_s: int, intensity: np.ndarray
) -> np.ndarray:
    """Seconds in [profile_s, end_s): a uniform day, a diurnal hour, more night hours if risky."""
    n = profile_s.size
    first_day = profile_s // DAY_S
    day = first_day + (rng.random(n) * ((end_s - 1) // DAY_S - first_day + 1)).astype(np.int64)
    night = rng.random(n) < _effect(NIGHT_SHARE, intensity)
    daytime = NIGHT_HOURS + _draw(rng, _DAYTIME_HOUR_CDF, n)
    hour = np.where(night, rng.integers(0, NIGHT_HOURS, n), daytime)
    when = day * DAY_S + hour * HOUR_S + rng.integers(0, HOUR_S, n)
    return profile_s + (when - profile_s) % (end_s - profile_s)


def _amounts(rng: np.random.Generator, tx_type: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """Lognormal per type, larger and more often round hundreds with intensity; ATM cash in tens."""
    n = tx_type.size
    log_amount = _AMOUNT_SIGMA[tx_type] * rng.standard_normal(n) + _effect(
        AMOUNT_LOG_SCALE, intensity
    )
    amount = _AMOUNT_MEDIAN[tx_type] * np.exp(log_amount)
    round_hundreds = rng.random(n) < _effect(ROUND_AMOUNT_SHARE, intensity)
    cash = tx_type == TX_TYPE.code("cash_withdrawal")
    return np.select(
        [round_hundreds, cash],
        [np.maximum(np.round(amount, -2), 100.0), np.maximum(np.round(amount, -1), 10.0)],
        np.round(amount, 2),
    )


def _counterparties(
    rng: np.random.Generator,
    customer_ids: np.ndarray,
    owner: np.ndarray,
    tx_type: np.ndarray,
    intensity: np.ndarray,
) -> np.ndarray:
    """Usual merchants, nearby ATMs, a few exchanges, private peers and a shared mule pool."""
    m, n = customer_ids.size, owner.size
    favourites = (3 + rng.poisson(MERCHANT_FAVOURITES, m))[owner]
    peers = np.minimum(1 + rng.poisson(_effect(PEER_POOL, intensity)), PEER_SLOTS)[owner]
    cid = customer_ids[owner]
    u = rng.random(n)
    merchant = (
        MERCHANT_BASE
        + (cid * 2_654_435_761 + (favourites * u * u).astype(np.int64) * 40_503) % MERCHANTS
    )
    atm = ATM_BASE + (cid * 2_654_435_761 + (3 * u).astype(np.int64) * 40_503) % ATMS
    exchange = EXCHANGE_BASE + (EXCHANGES * u * u).astype(np.int64)
    peer = PEER_BASE + cid * PEER_SLOTS + (peers * u**1.5).astype(np.int64)
    mule = MULE_BASE + rng.integers(0, MULES, n)
    to_mule = rng.random(n) < _effect(MULE_SHARE, intensity[owner])
    code = TX_TYPE.code
    return np.select(
        [
            tx_type == code("card"),
            (tx_type == code("cash_withdrawal")) | (tx_type == code("cash_deposit")),
            tx_type == code("crypto"),
            to_mule,
        ],
        [merchant, atm, exchange, mule],
        peer,
    )


def _counterparty_countries(
    rng: np.random.Generator, home: np.ndarray, intensity: np.ndarray
) -> np.ndarray:
    """Counterparty country codes: the customer's own, or with some probability another one."""
    n = home.size
    home = _HOME_COUNTERPARTY[home]
    foreign = COUNTERPARTY_COUNTRY.draw(rng, n)
    foreign = np.where(foreign == home, (foreign + 1) % len(COUNTERPARTY_COUNTRY.values), foreign)
    return np.where(rng.random(n) < _effect(CROSS_BORDER_SHARE, intensity), foreign, home)


def generate(
    out_dir: Path,
    *,
    customers: int,
    leads: int,
    transactions_per_customer: float,
    start: date,
    days: int,
    seed: int,
    unlabeled_share: float = 0.1,
    drift: DriftSpec | None = None,
    chunk_customers: int = 50_000,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write the five canonical tables into `out_dir`; returns {table name: path}.

    Leads and customers are generated `chunk_customers` rows at a time (`progress` is called once
    per chunk of either), so memory is bounded by the chunk, not the totals.
    """
    _check(
        customers, leads, transactions_per_customer, days, seed, unlabeled_share, chunk_customers
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    start_s = int(datetime(start.year, start.month, start.day, tzinfo=UTC).timestamp())
    end_s = start_s + days * DAY_S
    report = progress or (lambda _: None)
    paths = _write_leads(out_dir, leads, start_s, end_s, seed, drift, chunk_customers, report)
    paths |= _write_customers(
        out_dir,
        customers,
        transactions_per_customer,
        start_s,
        end_s,
        seed,
        unlabeled_share,
        drift,
        chunk_customers,
        report,
    )
    return paths


def _check(
    customers: int,
    leads: int,
    transactions_per_customer: float,
    days: int,
    seed: int,
    unlabeled_share: float,
    chunk_customers: int,
) -> None:
    problems = [
        f"{name} must be {rule}, got {value}"
        for name, value, rule, ok in [
            ("customers", customers, ">= 0", customers >= 0),
            ("leads", leads, ">= 0", leads >= 0),
            (
                "transactions_per_customer",
                transactions_per_customer,
                ">= 0",
                transactions_per_customer >= 0,
            ),
            ("days", days, ">= 1", days >= 1),
            ("seed", seed, ">= 0", seed >= 0),
            ("unlabeled_share", unlabeled_share, "within [0, 1]", 0 <= unlabeled_share <= 1),
            ("chunk_customers", chunk_customers, ">= 1", chunk_customers >= 1),
        ]
        if not ok
    ]
    if problems:
        raise ValueError("synthetic data: " + "; ".join(problems))


def _write_leads(
    out_dir: Path,
    total: int,
    start_s: int,
    end_s: int,
    seed: int,
    drift: DriftSpec | None,
    chunk: int,
    report: Callable[[str], None],
) -> dict[str, Path]:
    leads, labels = [], []
    for index, lo, hi in _chunks(total, chunk):
        rng = _rng(seed, "leads", index)
        created = _spread(rng, lo, hi, total, start_s, end_s - start_s)
        columns, converted = _leads(rng, np.arange(lo + 1, hi + 1, dtype=np.int64), created)
        _apply_drift(columns, LEADS.name, created, drift, _rng(seed, "leads_drift", index))
        leads.append(_arrow(LEADS, columns, LEAD_VOCABS))
        label = {"lead_id": columns["lead_id"], "created_at": created, "converted": converted}
        labels.append(_arrow(LEAD_LABELS, label, {}))
        report(f"leads {hi:,}/{total:,}")
    return {
        LEADS.name: write_arrow(_concat(leads, LEADS), LEADS, out_dir),
        LEAD_LABELS.name: write_arrow(_concat(labels, LEAD_LABELS), LEAD_LABELS, out_dir),
    }


def _write_customers(
    out_dir: Path,
    total: int,
    per_customer: float,
    start_s: int,
    end_s: int,
    seed: int,
    unlabeled_share: float,
    drift: DriftSpec | None,
    chunk: int,
    report: Callable[[str], None],
) -> dict[str, Path]:
    """Customers and labels are gathered in memory; transactions stream, a row group per chunk."""
    customers, labels = [], []
    target = out_dir / TRANSACTIONS.filename
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{TRANSACTIONS.name}.", suffix=".tmp")
    os.close(fd)
    written = 0
    try:
        with pq.ParquetWriter(tmp, TRANSACTIONS.schema) as writer:
            for index, lo, hi in _chunks(total, chunk):
                rng = _rng(seed, "customers", index)
                profile = _spread(rng, lo, hi, total, start_s, (end_s - start_s) // 4)
                ids = np.arange(lo + 1, hi + 1, dtype=np.int64)
                columns, intensity, suspended, unlabeled = _customers(
                    rng, ids, profile, unlabeled_share
                )
                drift_rng = _rng(seed, "customers_drift", index)
                _apply_drift(columns, CUSTOMERS.name, profile, drift, drift_rng)
                customers.append(_arrow(CUSTOMERS, columns, CUSTOMER_VOCABS))
                labels.append(
                    _arrow(CUSTOMER_LABELS, _customer_labels(ids, end_s, suspended, unlabeled), {})
                )

                tx = _transactions(rng, columns, intensity, per_customer, end_s)
                drift_rng = _rng(seed, "transactions_drift", index)
                _apply_drift(tx, TRANSACTIONS.name, tx["event_timestamp"], drift, drift_rng)
                tx["amount"] = np.maximum(np.round(tx["amount"], 2), 0.01)
                tx["transaction_id"] = np.arange(written + 1, written + tx["amount"].size + 1)
                table = _arrow(TRANSACTIONS, tx, TRANSACTION_VOCABS)
                if table.num_rows:
                    writer.write_table(table, row_group_size=table.num_rows)
                written += table.num_rows
                report(f"customers {hi:,}/{total:,}, transactions {written:,}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {
        CUSTOMERS.name: write_arrow(_concat(customers, CUSTOMERS), CUSTOMERS, out_dir),
        CUSTOMER_LABELS.name: write_arrow(
            _concat(labels, CUSTOMER_LABELS), CUSTOMER_LABELS, out_dir
        ),
        TRANSACTIONS.name: target,
    }


def _concat(tables: list[pa.Table], spec: TableSpec) -> pa.Table:
    return pa.concat_tables(tables) if tables else spec.schema.empty_table()
