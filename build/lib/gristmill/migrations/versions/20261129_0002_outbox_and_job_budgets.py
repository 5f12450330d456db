"""outbox, retry budgets, parent counters, schedule runs, idempotency keys

Pending jobs that exist when this runs get enqueued_at NULL, so the relay sends them once
more: a job the old code left pending with no message (the bug this revision fixes) runs,
and a duplicate of one still queued is skipped by the claim.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 01:18:44.741087
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = (
    "retries",
    "worker_losses",
    "hard_timeouts",
    "children_succeeded",
    "children_failed",
    "children_cancelled",
)
_UNSENT = "status = 'pending' AND enqueued_at IS NULL"
_ACTIVE_DEDUPE = "dedupe_key IS NOT NULL AND status IN ('pending', 'running')"
_FINISHED_TOP_LEVEL = "parent_job_id IS NULL AND status IN ('completed', 'failed', 'cancelled')"


def upgrade() -> None:
    op.create_table(
        "broker_epoch",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("epoch", sa.String(length=64), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("id = 1", name="ck_broker_epoch_single_row"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("principal", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("response", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("principal", "key"),
    )
    op.create_index("ix_idempotency_keys_created", "idempotency_keys", ["created_at"])
    op.create_table(
        "schedule_runs",
        sa.Column("entry", sa.String(length=64), nullable=False),
        sa.Column("slot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.UUID(), nullable=True),
        sa.Column(
            "fired_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("entry", "slot_at"),
    )
    for column in _COUNTERS:
        op.add_column(
            "jobs",
            sa.Column(column, sa.Integer(), server_default=sa.text("0"), nullable=False),
        )
    op.add_column("jobs", sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("run_after", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("dedupe_key", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_jobs_finished_top_level",
        "jobs",
        ["completed_at"],
        postgresql_where=sa.text(_FINISHED_TOP_LEVEL),
    )
    op.create_index("ix_jobs_unsent", "jobs", ["created_at"], postgresql_where=sa.text(_UNSENT))
    op.create_index(
        "uq_jobs_active_dedupe",
        "jobs",
        ["dedupe_key"],
        unique=True,
        postgresql_where=sa.text(_ACTIVE_DEDUPE),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_active_dedupe", table_name="jobs")
    op.drop_index("ix_jobs_unsent", table_name="jobs")
    op.drop_index("ix_jobs_finished_top_level", table_name="jobs")
    for column in ("dedupe_key", "run_after", "enqueued_at", *reversed(_COUNTERS)):
        op.drop_column("jobs", column)
    op.drop_table("schedule_runs")
    op.drop_index("ix_idempotency_keys_created", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_table("broker_epoch")
