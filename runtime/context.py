"""What a door hands the command service and the read side: the project database and Temporal, each opened
on first use, so a command refused on its input never waits for a server it does not need."""
from __future__ import annotations

from temporalio.client import Client

from db.engine import Engine, make_engine, migrate
from runtime.client import connect
from runtime.config import Settings


class Context:
    def __init__(self, settings: Settings, *, engine: Engine | None = None, client: Client | None = None) -> None:
        self.settings = settings
        self._engine = engine
        self._client = client

    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.database_url)
            migrate(self._engine)  # every command that touches the database first brings its schema up to date
        return self._engine

    async def client(self) -> Client:
        if self._client is None:
            self._client = await connect(self.settings)
        return self._client
