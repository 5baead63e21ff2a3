"""Files (issue 13): the data dir is 0700 and what spotcheck creates in it 0600."""
from __future__ import annotations

import stat

from activities.handoff import JsonlReceiver
from db.engine import make_engine
from runtime.config import open_private, private_dir
from runtime.server import _write_atomically


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_and_its_files_are_private(tmp_path):
    data = private_dir(tmp_path / "data")
    assert mode(data) == 0o700
    make_engine(f"sqlite:///{data / 'spotcheck.db'}").dispose()
    JsonlReceiver(data / "outbox.jsonl").send("k", "notification", {"x": 1})
    _write_atomically(data / "server.json", {"pid": 1})
    with open_private(data / "temporal.log") as log:
        log.write(b"x")
    for name in ("spotcheck.db", "outbox.jsonl", "server.json", "temporal.log"):
        assert mode(data / name) == 0o600, name


def test_an_existing_data_dir_is_made_private(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    assert mode(private_dir(folder)) == 0o700
