"""The public site under /public of `spotcheck api`: a live server (the command in a process of its own) on the
published year of tests/public/year.py answers every page of `public build`, byte for byte, to anyone without a
login, and each page passes the never-public scan of test_site. Nothing else is reachable under /public.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from api import observe, problems, public_site
from cli import main
from db.engine import make_engine, migrate
from tests.public.test_site import CHECKERS, files, leaks, never_public
from tests.public.year import T1, Year, populate

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    base: str  # the live server's address
    built: dict[str, str]  # what `public build` wrote from the same database, but its own mark
    year: Year


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A published year, the site `public build` makes of it, and `spotcheck api` on a free port over it."""
    where = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{where / 'spotcheck.db'}"
    engine = make_engine(url)
    migrate(engine)
    year = populate(engine)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOTCHECK_NOTICE_")}
    env.update(DATABASE_URL=url, SPOTCHECK_DATA_DIR=str(where / "data"),
               TEMPORAL_ADDRESS="127.0.0.1:1")  # the public pages need no Temporal
    with pytest.MonkeyPatch.context() as patch:  # the build sees what the server sees
        for key in os.environ.keys() - env.keys():
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        assert main(["public", "build", "--out", str(where / "site")]) == 0
    built = {name: text for name, text in files(where / "site").items() if name != ".spotcheck-public"}

    port = _free_port()
    log = (where / "api.log").open("w")
    process = subprocess.Popen([sys.executable, str(ROOT / "starter.py"), "api", "--port", str(port)],
                               env=env, cwd=where, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (where / "api.log").read_text()
            time.sleep(0.1)
        yield Served(base, built, year)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_the_api_serves_every_page_of_the_built_site_to_anyone_and_nothing_internal(served):
    forbidden, built = never_public(served.year), served.built
    assert {"index.html", f"tasks/t-{T1}.html", *CHECKERS} <= set(built)
    with httpx.Client(base_url=served.base) as http:  # no Authorization header: no login
        for name, text in built.items():
            answer = http.get(f"/public/{name}")
            assert answer.status_code == 200, name
            assert answer.text == text, name
            assert not leaks(answer.text, forbidden, checker=name in CHECKERS), name
            if name.endswith(".html"):
                assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert http.get("/public/").text == built["index.html"]
        assert http.get("/public").headers["location"] == "/public/"


@pytest.mark.parametrize("name", [".spotcheck-public", "tasks", "tasks/", "%2e%2e/healthz", "..%2fstarter.py",
                                  "entities/none.html", "index.html/"])
def test_nothing_but_the_sites_pages_is_under_public(served, name):
    answer = httpx.get(f"{served.base}/public/{name}")
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("max_age, shows_the_new_year", [(0, True), (3600, False)])
async def test_the_served_pages_are_made_again_once_older_than_their_max_age(sqlite_engine, max_age,
                                                                             shows_the_new_year):
    app = FastAPI()
    app.state.ctx = SimpleNamespace(engine=lambda: sqlite_engine)
    app.state.metrics = observe.metrics()
    problems.install(app)  # as api.app.create_app does: a missing page is a problem document
    observe.install(app)
    public_site.mount(app, max_age=max_age)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://site") as http:
        assert (await http.get(f"/public/tasks/t-{T1}.html")).status_code == 404  # an empty register
        populate(sqlite_engine)
        answer = await http.get(f"/public/tasks/t-{T1}.html")
    assert (answer.status_code == 200) is shows_the_new_year
