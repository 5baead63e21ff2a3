"""Add event histories of real runs to the replay corpus; never overwrites a file.

    python tests/histories/capture.py WORKFLOW_ID [WORKFLOW_ID …]

Connects like the CLI (TEMPORAL_ADDRESS or the embedded server's server.json). Each history goes to
tests/histories/<WorkflowType>/<version>-<n>.json, n the next free number, so the corpus only grows:
every deploy must replay every history that was ever committed.
"""
from __future__ import annotations

import asyncio
import sys
from importlib.metadata import version
from pathlib import Path

from runtime import config
from runtime.client import connect

CORPUS = Path(__file__).resolve().parent


def next_free(folder: Path, release: str) -> Path:
    n = 1
    while (folder / f"{release}-{n}.json").exists():
        n += 1
    return folder / f"{release}-{n}.json"


async def capture(workflow_ids: list[str]) -> None:
    client = await connect(config.load())
    release = version("spotcheck")
    for workflow_id in workflow_ids:
        handle = client.get_workflow_handle(workflow_id)
        kind = (await handle.describe()).workflow_type
        history = await handle.fetch_history()
        folder = CORPUS / kind
        folder.mkdir(exist_ok=True)
        target = next_free(folder, release)
        target.write_text(history.to_json())
        print(f"{workflow_id} → {target.relative_to(CORPUS.parent.parent)} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(capture(sys.argv[1:]))
