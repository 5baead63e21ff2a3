from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from service.imports import import_examples
from tests.conftest import venv_binary
from workflows.common import SEARCH_ATTRIBUTES


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ts_env():
    """The Java time-skipping test server, with the project's search attributes registered.

    One per test module: time skipping is global to a server, and workflows a finished module leaves
    waiting on timers must not slow or jam the next module's skips."""
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=venv_binary("temporal-test-server", "TEMPORAL_TEST_SERVER_PATH"),
    ) as env:
        await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES},
        ))
        yield env


@pytest.fixture(scope="module")
def directories(pg_engine):
    """The example directories (units, items, entities, inspectors) on this run's PostgreSQL database."""
    import_examples(pg_engine, now=datetime.now(timezone.utc) - timedelta(days=1))
    return pg_engine
