"""Validate a batch with a Great Expectations suite built from the config and the profile.

GX 1.24 is called directly (its Airflow provider cannot be installed with Airflow 3.3).
The suite has structural rules (rows, column set, dtypes, nulls, finite numbers), the
config's rules, and, once a champion exists, rules learned from its training data
(a ReferenceProfile): numeric ranges, categorical value sets and the label's classes.

Learned ranges are widened by ``LEARNED_RANGE_TOLERANCE`` (half the reference's span) on
each side, because a fresh sample of the same population has its own extremes. Columns
that were never negative (amounts, counts, ages) are widened on a log1p scale and stay
bounded at 0: such columns are usually right-skewed, and the maximum of a skewed sample
keeps growing with its size. Simulated with a 1000-row reference and 300- or 1000-row
batches of the same population, a 10 % linear margin rejected 14 % and 38 % of good
lognormal batches; this rule rejected none of 1000 for lognormal, exponential, Pareto,
normal, Poisson or uniform data, and under 0.5 % for skewed values below 1 (where log1p
is nearly linear). With a 100-row reference it rises to 1-3 %. What it still catches
is what a range check is for: sign flips, sentinel values (-1, 999999) and unit changes
(cents for euros); gradual shift is the drift report's job. A column that was constant
in the reference allows only that value. Label classes are exact. A categorical set is
exact when every reference category occurs at least twice; an open-ended column (the
reference holds categories seen once) allows a few unseen values, as many as Good-Turing
expects at the reference's singleton share (``unseen_allowance``): the model encodes them
in its "unknown" slot, and a column whose unseen share jumps still fails. On the panel's
ncbirths (HispMom: 3 of 705 batch values unseen in a 704-row reference) the exact rule
rejected 4 of 10 clean batches.

Column-level expectations are only added for columns that exist, and value rules for a
numeric column only when its dtype is numeric: otherwise GX raises inside the metric and
the report would show an exception instead of the plain rule that broke.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import uuid
from dataclasses import asdict, dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from aire.config import PipelineConfig
from aire.data.reference_profile import (  # noqa: F401  (re-exported: the profile is part of validation's API)
    LEARNED_RANGE_TOLERANCE,
    ColumnKind,
    ColumnProfile,
    ReferenceProfile,
    Scalar,
    json_safe,
    learn_profile,
)
from aire.errors import DataValidationError

if TYPE_CHECKING:
    import pandas as pd

# The unseen-category allowance's one-sided quantile (``unseen_allowance``).
UNSEEN_QUANTILE = 0.99
# "finite": GX has no such expectation; a between on the float range catches +-inf
# (NaN is a missing value to GX, which the "not null" rule catches).
_FLOAT_MAX = sys.float_info.max
NUMERIC_DTYPES = [
    *(f"int{bits}" for bits in (8, 16, 32, 64)),
    *(f"uint{bits}" for bits in (8, 16, 32, 64)),
    *(f"float{bits}" for bits in (16, 32, 64)),
    *(f"Int{bits}Dtype" for bits in (8, 16, 32, 64)),
    *(f"UInt{bits}Dtype" for bits in (8, 16, 32, 64)),
    *(f"Float{bits}Dtype" for bits in (32, 64)),
]
_EXAMPLES = 5  # how many offending values a check quotes


@dataclass(frozen=True)
class Check:
    """One rule applied to one column (None: the whole table)."""

    column: str | None
    rule: str
    success: bool
    detail: str
    observed: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidationReport:
    source: str
    success: bool
    checks: tuple[Check, ...]
    statistics: dict[str, Any]
    used_profile: bool

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.success)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "success": self.success,
            "used_profile": self.used_profile,
            "statistics": self.statistics,
            "checks": [c.to_dict() for c in self.checks],
        }

    def raise_for_failures(self) -> None:
        """DataValidationError listing every failed rule; the first one names column and rule."""
        failures = self.failures
        if not failures:
            return
        listed = "; ".join(
            f"{f'column {c.column!r}' if c.column else 'the table'} breaks {c.rule!r} ({c.detail})"
            for c in failures
        )
        first = failures[0]
        raise DataValidationError(
            self.source, first.column, first.rule, f"{len(failures)} rule(s) failed: {listed}"
        )


@dataclass(frozen=True)
class _Planned:
    expectation: Any
    column: str | None
    rule: str
    requirement: str  # what the rule asks for, in words, for the report


def validate_batch(
    df: pd.DataFrame, config: PipelineConfig, profile: ReferenceProfile | None, source: str
) -> ValidationReport:
    """Run the suite on ``df``; ``source`` (the batch's URI) names the file in every error."""
    plan = _plan(df, config, profile)
    results = _run_suite(df, plan)
    checks: list[Check] = []
    for index, planned in enumerate(plan):
        checks.extend(_checks_from_result(df, planned, results.get(index)))
    failed = sum(not c.success for c in checks)
    statistics = {
        "rows": len(df),
        "columns": len(df.columns),
        "checks": len(checks),
        "failed_checks": failed,
        "success_percent": round(100.0 * (len(checks) - failed) / len(checks), 2),
    }
    return ValidationReport(source, failed == 0, tuple(checks), statistics, profile is not None)


def _plan(
    df: pd.DataFrame, config: PipelineConfig, profile: ReferenceProfile | None
) -> list[_Planned]:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    # Typed as Any: GX's package does not re-export its expectation classes for mypy.
    gxe: Any = import_module("great_expectations.expectations")
    dataset, plan = config.dataset, []

    def add(expectation: Any, column: str | None, rule: str, requirement: str) -> None:
        plan.append(_Planned(expectation, column, rule, requirement))

    expected = dataset.columns
    add(gxe.ExpectTableRowCountToBeBetween(min_value=1), None, "row count >= 1", "a row")
    for column in expected:
        add(gxe.ExpectColumnToExist(column=column), column, "column exists", "present")
    add(
        gxe.ExpectTableColumnsToMatchSet(column_set=expected, exact_match=True),
        None,
        "no unexpected columns",
        "only the columns config.dataset.columns lists",
    )
    ranged = {c for c, r in dataset.rules.items() if r.min is not None or r.max is not None}
    for column in [c for c in expected if c in df.columns]:
        rule = dataset.rules.get(column)
        if rule is None or not rule.nullable:
            add(gxe.ExpectColumnValuesToNotBeNull(column=column), column, "not null", "no NaN/None")
        if column in ranged or column in dataset.features.numeric:
            typed = gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=NUMERIC_DTYPES)
            add(typed, column, "numeric dtype", "an integer or float dtype")
            dtype = df[column].dtype
            if is_numeric_dtype(dtype) and not is_bool_dtype(dtype):
                plan.extend(_numeric_value_rules(column, config, profile))
        if rule is not None and rule.values is not None:
            allowed = list(rule.values)
            in_set = gxe.ExpectColumnValuesToBeInSet(column=column, value_set=allowed)
            add(in_set, column, "values in set (config)", f"one of {allowed}")
        learned = profile.column(column) if profile else None
        if learned is not None and learned.values is not None:
            known = list(learned.values)
            present = int(df[column].notna().sum())
            unseen = unseen_allowance(learned.singleton_share, present)
            requirement = f"one of the reference's categories {known}"
            if unseen:  # GX's mostly counts non-missing values, like the allowance
                mostly = 1.0 - unseen / present
                in_set = gxe.ExpectColumnValuesToBeInSet(column=column, value_set=known, mostly=mostly)
                requirement += (f", all but at most {unseen} value(s) (the reference's singleton share "
                                f"{learned.singleton_share:.4f}, Good-Turing)")
            else:
                in_set = gxe.ExpectColumnValuesToBeInSet(column=column, value_set=known)
            add(in_set, column, "known categories", requirement)
        if profile is not None and column == dataset.label == profile.label:
            classes = list(profile.label_classes)
            in_set = gxe.ExpectColumnValuesToBeInSet(column=column, value_set=classes)
            add(in_set, column, "label in known classes", f"one of the classes {classes}")
    return plan


def unseen_allowance(singleton_share: float | None, rows: int) -> int:
    """How many of ``rows`` values may be categories the reference never held.

    Good-Turing: a fresh value is unseen with probability about the reference's share of
    categories seen exactly once. The allowance is the one-sided 99% Poisson bound on the
    count at that rate, so a clean batch of an open-ended column (towns, employers) passes
    99 times in 100, and a closed set (no singletons: sex, region) allows none, as before.
    """
    if not singleton_share or rows <= 0:
        return 0
    from scipy.stats import poisson

    return int(poisson.ppf(UNSEEN_QUANTILE, singleton_share * rows))


def _numeric_value_rules(
    column: str, config: PipelineConfig, profile: ReferenceProfile | None
) -> list[_Planned]:
    gxe: Any = import_module("great_expectations.expectations")

    def between(low: float | None, high: float | None) -> Any:
        return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)

    rules = [_Planned(between(-_FLOAT_MAX, _FLOAT_MAX), column, "finite", "no +inf or -inf")]
    configured = config.dataset.rules.get(column)
    if configured is not None and (configured.min is not None or configured.max is not None):
        low, high = configured.min, configured.max
        rules.append(
            _Planned(between(low, high), column, "range (config)", f"within [{low}, {high}]")
        )
    bounds = profile.learned_range(column) if profile else None
    if bounds is not None:
        low, high = bounds
        wording = f"within the reference's widened range [{low:g}, {high:g}]"
        rules.append(_Planned(between(low, high), column, "range (learned)", wording))
    return rules


def _run_suite(df: pd.DataFrame, plan: list[_Planned]) -> dict[int, Any]:
    """Validate ``df`` in a fresh ephemeral context; results keyed by plan index."""
    # GX phones home unless told not to; these machines have no internet.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX logs hundreds of info lines about its own docs registry on import.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars would otherwise fill every task log.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    name = f"aire-{uuid.uuid4().hex[:12]}"
    batch = (
        context.data_sources.add_pandas(name=name)
        .add_dataframe_asset(name="batch")
        .add_batch_definition_whole_dataframe(name="whole")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    # GX keeps one copy of equal expectations (a config rule and a learned rule can ask
    # the same thing): run each once and give its result to every rule that asked.
    first_of: dict[str, int] = {}
    same_as: dict[int, int] = {}
    for index, planned in enumerate(plan):
        key = _expectation_key(planned.expectation)
        if key in first_of:
            same_as[index] = first_of[key]
            continue
        first_of[key] = index
        # The meta index maps results back: GX does not return them in insertion order.
        planned.expectation.meta = {"aire_index": index}
        suite.add_expectation(planned.expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    by_index: dict[int, Any] = {}
    for result in outcome.results:
        meta = result.expectation_config.meta if result.expectation_config else None
        if meta and "aire_index" in meta:
            by_index[int(meta["aire_index"])] = result
    for index, first in same_as.items():
        if first in by_index:
            by_index[index] = by_index[first]
    return by_index


def _expectation_key(expectation: Any) -> str:
    kwargs = expectation.configuration.kwargs
    return f"{type(expectation).__name__}:{json.dumps(kwargs, sort_keys=True, default=str)}"


def _checks_from_result(df: pd.DataFrame, planned: _Planned, result: Any) -> list[Check]:
    if result is None:  # GX dropped the expectation: never count that as a pass
        return [Check(planned.column, planned.rule, False, "GX returned no result for this rule")]
    info = result.exception_info or {}
    raised = [v for v in info.values() if isinstance(v, dict) and v.get("raised_exception")]
    if info.get("raised_exception") or raised:
        message = info.get("exception_message") or (
            raised[0].get("exception_message") if raised else ""
        )
        return [Check(planned.column, planned.rule, False, f"could not be evaluated: {message}")]
    observed = _observed(dict(result.result or {}))
    if planned.rule == "no unexpected columns":
        # Missing columns have their own "column exists" check; this one is about extras.
        extras = observed.get("details", {}).get("mismatched", {}).get("unexpected", [])
        if not extras:
            return [Check(None, planned.rule, True, planned.requirement, observed)]
        return [
            Check(
                str(c), planned.rule, False, "the column is not in config.dataset.columns", observed
            )
            for c in extras
        ]
    success = bool(result.success)
    if planned.rule == "numeric dtype" and planned.column is not None and not success:
        # GX lists every value of an object column as unexpected; the stray strings are the news.
        series = df[planned.column]
        observed = {
            "observed_value": str(series.dtype),
            "non_numeric_values": _non_numeric_examples(series),
        }
    detail = planned.requirement if success else _failure_detail(df, planned, observed)
    return [Check(planned.column, planned.rule, success, detail, observed)]


def _failure_detail(df: pd.DataFrame, planned: _Planned, observed: dict[str, Any]) -> str:
    if planned.rule == "column exists":
        return "the column is missing from the batch"
    if planned.rule == "row count >= 1":
        return f"the batch has {observed.get('observed_value')} rows"
    if planned.rule == "numeric dtype":
        found = f"expected {planned.requirement}, got dtype {observed.get('observed_value')}"
        strays = observed.get("non_numeric_values")
        return f"{found}; non-numeric values e.g. {strays}" if strays else found
    count, total = observed.get("unexpected_count"), observed.get("element_count")
    examples = observed.get("partial_unexpected_list", [])[:_EXAMPLES]
    return f"{count} of {total} values break it; expected {planned.requirement}; e.g. {examples}"


def _non_numeric_examples(series: pd.Series) -> list[Any]:
    import pandas as pd

    coerced = pd.to_numeric(series, errors="coerce")
    offending = series[coerced.isna() & series.notna()].unique()[:_EXAMPLES]
    return [json_safe(v) for v in offending]


def _observed(result: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "observed_value",
        "element_count",
        "unexpected_count",
        "unexpected_percent",
        "missing_count",
        "partial_unexpected_list",
        "details",
    )
    return {k: json_safe(result[k]) for k in keep if k in result}
