"""The history archiver workflow's messages (HistoryArchiverWorkflow, the Schedule history-archive)."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ArchiveBatch(BaseModel):
    """One archiving pass: the input of the activity, of HistoryArchiverWorkflow and of `archive run`."""

    model_config = ConfigDict(frozen=True)

    # Only runs closed after this instant. None: after the archive's newest entry minus
    # activities/archive.py's CATCH_UP_MARGIN (everything when the archive is empty).
    after_close_time: datetime | None = None
    limit: int = Field(default=500, ge=1)  # at most this many new entries per pass; `more` says if some are left
    full: bool = False  # list every closed run the server still has (ignores the archive's newest entry)


class ArchiveSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    listed: int = 0  # closed runs listed by visibility
    archived: int = 0  # appended by this pass
    already: int = 0  # listed and already in the archive
    gone: int = 0  # listed, but the server no longer had the history (deleted, or past retention meanwhile)
    more: bool = False  # runs left for another pass (over `limit`)
    head_seq: int | None = None  # the chain's newest entry after the pass
    head_hash: str | None = None

    def plus(self, later: ArchiveSummary) -> ArchiveSummary:
        """Two passes in a row, as one (the first pass's listing is the backlog)."""
        return ArchiveSummary(
            listed=self.listed, archived=self.archived + later.archived,
            already=self.already, gone=self.gone + later.gone, more=later.more,
            head_seq=later.head_seq if later.head_seq is not None else self.head_seq,
            head_hash=later.head_hash if later.head_hash is not None else self.head_hash)
