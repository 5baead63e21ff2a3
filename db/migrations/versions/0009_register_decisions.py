"""corrections and stop-publication applications (register_decisions; issue 17)

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _byte_order(length: int) -> sa.String:
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "register_decisions",
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("task_id", _byte_order(64), nullable=False),
        sa.Column("uscc", _byte_order(18), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=True),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("eligible_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", sa.String(length=200), nullable=False),
        sa.Column("step", sa.String(length=100), nullable=False),
        sa.UniqueConstraint("workflow_id", "step", name=op.f("uq_register_decisions_workflow_id_step")),
    )


def downgrade() -> None:
    op.drop_table("register_decisions")
