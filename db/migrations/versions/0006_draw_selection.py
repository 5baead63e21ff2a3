"""draws keep their selection, not their population (issue 14)

A draw's population is determined by the directory's history as of its frozen_at and the year's
earlier selections (store.draws.eligible_population): from now on it is recomputed, not stored.
What a draw keeps of its own is its selection, in draw_selection. Draws frozen before this
migration keep their stored populations (draws.population_stored), read as before: they stay
verifiable against exactly the rows they were drawn from. Their selections move to draw_selection.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _byte_order(length: int) -> sa.String:
    return sa.String(length=length).with_variant(sa.String(length=length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "draw_selection",
        sa.Column("task_id", _byte_order(64), nullable=False),
        sa.Column("draw_seq", sa.Integer(), nullable=False),
        sa.Column("uscc", _byte_order(18), nullable=False),
        sa.Column("stratum", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "draw_seq", "uscc", name=op.f("pk_draw_selection")),
    )
    op.execute("INSERT INTO draw_selection (task_id, draw_seq, uscc, stratum) "
               "SELECT task_id, draw_seq, uscc, stratum FROM draw_population WHERE selected")
    with op.batch_alter_table("draws") as batch:
        batch.add_column(sa.Column("population_stored", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE draws SET population_stored = true WHERE EXISTS (SELECT 1 FROM draw_population p "
               "WHERE p.task_id = draws.task_id AND p.draw_seq = draws.draw_seq)")
    with op.batch_alter_table("draw_population") as batch:
        batch.drop_column("selected")


def downgrade() -> None:
    with op.batch_alter_table("draw_population") as batch:
        batch.add_column(sa.Column("selected", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("UPDATE draw_population SET selected = true WHERE EXISTS (SELECT 1 FROM draw_selection s "
               "WHERE s.task_id = draw_population.task_id AND s.draw_seq = draw_population.draw_seq "
               "AND s.uscc = draw_population.uscc)")
    with op.batch_alter_table("draws") as batch:
        batch.drop_column("population_stored")
    op.drop_table("draw_selection")
