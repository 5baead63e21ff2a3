"""the history archive: every closed workflow's history as JSON, hash-chained (activities/archive.py)

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_archive",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workflow_id", sa.String(length=1000), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_type", sa.String(length=1000), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("history_sha256", sa.String(length=64), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_history_archive")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_history_archive_prev_hash")),
        sa.UniqueConstraint("workflow_id", "run_id", name=op.f("uq_history_archive_workflow_id_run_id")),
    )
    op.create_index(op.f("ix_history_archive_closed_at"), "history_archive", ["closed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_history_archive_closed_at"), table_name="history_archive")
    op.drop_table("history_archive")
