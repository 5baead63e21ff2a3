"""the legal basis of a targeted entity the frequency cap would exclude (R12's exception; issue 18)

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("targeted", sa.Column("legal_basis", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("targeted", "legal_basis")
