"""requests waiting for a second person's approval (approval_requests; issue 15)

Revision ID: 0014
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0010"
branch_labels = None
depends_on = None


def _byte_order(length: int) -> sa.String:
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "approval_requests",
        sa.Column("request_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", _byte_order(64), nullable=False),
        sa.Column("owner_unit", _byte_order(32), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("requested_by", _byte_order(32), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("approved_by", _byte_order(32), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_approval_requests")),
    )


def downgrade() -> None:
    op.drop_table("approval_requests")
