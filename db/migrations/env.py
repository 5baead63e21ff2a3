from alembic import context

from db.schema import metadata

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    # On PostgreSQL, concurrent migrators (a worker and a CLI starting together) take turns.
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7233001)")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
