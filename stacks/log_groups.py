"""Log groups of the app: the configured retention, and deleted with the stack (they hold no data worth keeping)."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_logs as logs
from constructs import Construct

from bincount.cloud.settings import LOG_RETENTION_DAYS

# CDK's RetentionDays members in the order of LOG_RETENTION_DAYS.
_RETENTION_NAMES: tuple[str, ...] = (
    "ONE_DAY",
    "THREE_DAYS",
    "FIVE_DAYS",
    "ONE_WEEK",
    "TWO_WEEKS",
    "ONE_MONTH",
    "TWO_MONTHS",
    "THREE_MONTHS",
    "FOUR_MONTHS",
    "FIVE_MONTHS",
    "SIX_MONTHS",
    "ONE_YEAR",
    "THIRTEEN_MONTHS",
    "EIGHTEEN_MONTHS",
    "TWO_YEARS",
    "THREE_YEARS",
    "FIVE_YEARS",
    "SIX_YEARS",
    "SEVEN_YEARS",
    "EIGHT_YEARS",
    "NINE_YEARS",
    "TEN_YEARS",
)
RETENTION_BY_DAYS: dict[int, logs.RetentionDays] = {
    days: logs.RetentionDays[name] for days, name in zip(LOG_RETENTION_DAYS, _RETENTION_NAMES, strict=True)
}


def log_group(scope: Construct, construct_id: str, *, retention_days: int, name: str | None = None) -> logs.LogGroup:
    """A log group kept ``retention_days`` and removed by ``cdk destroy``."""
    return logs.LogGroup(
        scope,
        construct_id,
        log_group_name=name,
        retention=RETENTION_BY_DAYS[retention_days],
        removal_policy=RemovalPolicy.DESTROY,
    )
