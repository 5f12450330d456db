"""Every table, imported in one place so Alembic and tests see the whole schema."""

from gristmill.accounts.models import Account
from gristmill.db import Base
from gristmill.jobs.models import BrokerEpoch, DeadLetter, IdempotencyKey, Job, ScheduleRun
from gristmill.metrics.models import DailyActivityRow, MetricSnapshot

metadata = Base.metadata

__all__ = [
    "Account",
    "BrokerEpoch",
    "DailyActivityRow",
    "DeadLetter",
    "IdempotencyKey",
    "Job",
    "MetricSnapshot",
    "ScheduleRun",
    "metadata",
]
