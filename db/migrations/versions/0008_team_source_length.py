"""teams.source holds "unstaffed" (9 characters): String(8) refused every unstaffed dispatch on PostgreSQL

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.alter_column("source", existing_type=sa.String(length=8), type_=sa.String(length=16),
                              existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.alter_column("source", existing_type=sa.String(length=16), type_=sa.String(length=8),
                              existing_nullable=False)
