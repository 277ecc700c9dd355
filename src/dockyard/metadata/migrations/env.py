"""Alembic environment: the engine or connection comes from the caller, never an ini file."""

from alembic import context
from sqlalchemy.engine import Connection

from dockyard.metadata.schema import metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        run(connection)
        connection.commit()
