"""The project's exception types.

Input errors (bad data, bad config, a signature that does not verify) are
deterministic: retrying the task cannot fix them, so the DAG fails them at once.
Everything else may be transient and is retried.
"""

from __future__ import annotations


class AireError(Exception):
    """Base class of every error AIRE raises on purpose."""


class InputError(AireError):
    """Deterministic failure caused by what the user gave us; never retried."""


class ConfigError(InputError):
    """A pipeline config that does not match the schema; the message names the key."""


class DataValidationError(InputError):
    """A batch that breaks a rule. Names the file, the column and the rule."""

    def __init__(self, file: str, column: str | None, rule: str, detail: str = "") -> None:
        self.file = file
        self.column = column
        self.rule = rule
        self.detail = detail
        where = f"column '{column}'" if column else "the table"
        message = f"{file}: {where} breaks rule '{rule}'"
        super().__init__(f"{message}: {detail}" if detail else message)


class VerificationError(InputError):
    """A model whose signature or recorded digest does not match; never loaded."""


class NoChampionError(AireError):
    """The registry has no champion for this pipeline yet."""
