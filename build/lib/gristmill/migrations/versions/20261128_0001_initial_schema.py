# ruff: noqa: E501  (generated constraint text)
"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 15:25:17.329387
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("handle", sa.String(length=255), nullable=False),
        sa.Column("base_url", sa.String(length=2048), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    op.create_index(op.f("ix_accounts_platform"), "accounts", ["platform"], unique=False)
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("job_type", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.SmallInteger(), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("account_key", sa.String(length=64), nullable=True),
        sa.Column("parent_job_id", sa.UUID(), nullable=True),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("queue", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("children_total", sa.Integer(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_of_job_id", sa.UUID(), nullable=True),
        sa.CheckConstraint(
            "job_type IN ('scrape_all', 'scrape_account', 'scrape_platform', 'backfill_account', 'daily_scrape_all', 'cleanup_old_jobs', 'health_check', 'backfill_check')",
            name="ck_jobs_job_type",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
            name="ck_jobs_status",
        ),
        sa.CheckConstraint("progress BETWEEN 0 AND 100", name="ck_jobs_progress"),
        sa.ForeignKeyConstraint(["parent_job_id"], ["jobs.job_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index(
        "ix_jobs_account_created", "jobs", ["account_key", "created_at", "job_id"], unique=False
    )
    op.create_index("ix_jobs_created", "jobs", ["created_at", "job_id"], unique=False)
    op.create_index("ix_jobs_parent_status", "jobs", ["parent_job_id", "status"], unique=False)
    op.create_index(
        "ix_jobs_running_heartbeat",
        "jobs",
        ["heartbeat_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "ix_jobs_status_created", "jobs", ["status", "created_at", "job_id"], unique=False
    )
    op.create_index(
        "ix_jobs_type_created", "jobs", ["job_type", "created_at", "job_id"], unique=False
    )
    op.create_table(
        "daily_activity",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("posts", sa.BigInteger(), nullable=False),
        sa.Column("likes", sa.BigInteger(), nullable=False),
        sa.Column("reposts", sa.BigInteger(), nullable=False),
        sa.Column("replies", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "date"),
    )
    op.create_table(
        "dead_letters",
        sa.Column("job_id", sa.UUID(), nullable=False),
        sa.Column("job_type", sa.String(length=32), nullable=False),
        sa.Column("account_key", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("requeued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requeued_job_id", sa.UUID(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.job_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id"),
    )
    op.create_index(
        "ix_dead_letters_open",
        "dead_letters",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("requeued_at IS NULL"),
    )
    op.create_table(
        "metric_snapshots",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("followers", sa.BigInteger(), nullable=False),
        sa.Column("following", sa.BigInteger(), nullable=False),
        sa.Column("posts", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "date"),
    )


def downgrade() -> None:
    op.drop_table("metric_snapshots")
    op.drop_index(
        "ix_dead_letters_open",
        table_name="dead_letters",
        postgresql_where=sa.text("requeued_at IS NULL"),
    )
    op.drop_table("dead_letters")
    op.drop_table("daily_activity")
    op.drop_index("ix_jobs_type_created", table_name="jobs")
    op.drop_index("ix_jobs_status_created", table_name="jobs")
    op.drop_index(
        "ix_jobs_running_heartbeat",
        table_name="jobs",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index("ix_jobs_parent_status", table_name="jobs")
    op.drop_index("ix_jobs_created", table_name="jobs")
    op.drop_index("ix_jobs_account_created", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index(op.f("ix_accounts_platform"), table_name="accounts")
    op.drop_table("accounts")
