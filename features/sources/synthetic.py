"""Synthetic leads, customers and transactions with a known signal, as the canonical tables.

The real sources are small; load tests, drift drills and scale runs need data of any size whose
signal we know and can shift on purpose.

Leads use the X Education vocabularies. Conversion (base rate about 38%) is logistic in
    LEAD_LOGIT_INTERCEPT                                            -0.55
    + LEAD_LOGIT_TIME * z(total_time_on_website)                    +1.1 per standard deviation
    + LEAD_LOGIT_ACTIVITY[last_activity]      "SMS Sent" +1.3, "Email Bounced" -1.6, "Unreachable" -1.2
    + LEAD_LOGIT_OCCUPATION[occupation]       "Working Professional" +2.2
    + LEAD_LOGIT_ORIGIN[lead_origin]          "Lead Add Form" +2.4
    + LEAD_LOGIT_DO_NOT_EMAIL * do_not_email                        -1.0
    + Normal(0, LEAD_LOGIT_NOISE)                                    0.8
where z uses the fixed population constants TIME_ON_WEBSITE_MEAN and TIME_ON_WEBSITE_STD. The
sales columns (tags, lead_quality, lead_profile) are drawn from the outcome, as in the real data:
they leak the label and must never be used for scoring.

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

    def draw(
        self, rng: np.random.Generator, n: int, group: np.ndarray | None = None
    ) -> np.ndarray:
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
_SOURCE_GROUP = np.array([{"Lead Add Form": 1, "Lead Import": 2}.get(v, 0) for v in LEAD_ORIGIN.values])
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

TIME_ON_WEBSITE_MEAN = 420.0
TIME_ON_WEBSITE_STD = 560.0
LEAD_LOGIT_INTERCEPT = -0.55
LEAD_LOGIT_TIME = 1.1
LEAD_LOGIT_ACTIVITY = {"SMS Sent": 1.3, "Email Bounced": -1.6, "Unreachable": -1.2}
LEAD_LOGIT_OCCUPATION = {"Working Professional": 2.2}
LEAD_LOGIT_ORIGIN = {"Lead Add Form": 2.4}
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
IN_SHARE = {"card": 0.03, "transfer": 0.45, "cash_withdrawal": 0.0, "cash_deposit": 1.0, "crypto": 0.4}
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
