"""Every table, imported in one place so Alembic and tests see the whole schema."""

from gristmill.accounts.models import Account
from gristmill.db import Base
from gristmill.jobs.models import DeadLetter, Job
from gristmill.metrics.models import DailyActivityRow, MetricSnapshot

metadata = Base.metadata

__all__ = ["Account", "DailyActivityRow", "DeadLetter", "Job", "MetricSnapshot", "metadata"]
