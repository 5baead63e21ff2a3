"""Add event histories of real runs to the replay corpus; never overwrites a file.

    python tests/histories/capture.py WORKFLOW_ID [WORKFLOW_ID …]   (every run of each one's latest chain)

Connects like the CLI (TEMPORAL_ADDRESS or the embedded server's server.json). Each history goes to
tests/histories/<WorkflowType>/<version>-<n>.json, n the next free number, and its sha256 is appended
to MANIFEST.sha256, so the corpus only grows: every deploy must replay every history ever committed.
"""
from __future__ import annotations

import asyncio
import hashlib
import sys
from importlib.metadata import version
from pathlib import Path

from temporalio.client import WorkflowHistory

from runtime import config
from runtime.client import connect
from runtime.codec import codec_for, decrypt_in_place
from read.timeline import execution_chain

CORPUS = Path(__file__).resolve().parent
MANIFEST = CORPUS / "MANIFEST.sha256"  # one line per history: the replay test fails if any file changed


def next_free(folder: Path, release: str) -> Path:
    n = 1
    while (folder / f"{release}-{n}.json").exists():
        n += 1
    return folder / f"{release}-{n}.json"


async def capture(workflow_ids: list[str]) -> None:
    settings = config.load()
    client = await connect(settings)
    codec = codec_for(settings)  # the corpus is kept in plain form: replayable without keys
    release = version("spotcheck")
    for workflow_id in workflow_ids:
        kind = (await client.get_workflow_handle(workflow_id).describe()).workflow_type
        # Every run of its chain: a target continues as new at its waits, a task every few hundred children.
        for events in await execution_chain(client, workflow_id):
            history = WorkflowHistory(workflow_id, list(events))
            if codec is not None:
                for event in history.events:
                    decrypt_in_place(event, codec)
            folder = CORPUS / kind
            folder.mkdir(exist_ok=True)
            target = next_free(folder, release)
            target.write_text(history.to_json())
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
            with MANIFEST.open("a") as manifest:
                manifest.write(f"{digest}  {target.relative_to(CORPUS)}\n")
            print(f"{workflow_id} → {target.relative_to(CORPUS.parent.parent)} ({len(history.events)} events)")


if __name__ == "__main__":
    asyncio.run(capture(sys.argv[1:]))
