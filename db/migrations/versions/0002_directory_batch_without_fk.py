"""directory versions: batch_id without a foreign key (import speed)

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DIRECTORIES = ("units", "items", "entities", "inspectors")


def upgrade() -> None:
    for table in DIRECTORIES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"fk_{table}_batch_id_import_batches", type_="foreignkey")


def downgrade() -> None:
    for table in DIRECTORIES:
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(f"fk_{table}_batch_id_import_batches", "import_batches",
                                     ["batch_id"], ["batch_id"])
