"""plan templates in the database (were files under DATA_DIR/templates)

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plan_templates",
        sa.Column("name", sa.String(length=64).with_variant(sa.String(length=64, collation="C"), "postgresql"),
                  nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("document_sha256", sa.String(length=64), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_plan_templates")),
    )


def downgrade() -> None:
    op.drop_table("plan_templates")
