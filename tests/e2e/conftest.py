"""Real-browser fixtures: a Streamlit server on loopback and Debian's Chromium via Playwright."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[2]
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer at {url}")


@contextlib.contextmanager
def serve_app(
    db: Path,
    home: Path,
    *,
    port: int | None = None,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Serve the app over ``db`` on a free loopback port, HOME isolated; yield its URL.

    ``port``: a port chosen beforehand (e.g. one already named in an ``[auth]`` redirect_uri);
    ``args``: more ``streamlit run`` options (``--secrets.files FILE``); ``env``: more
    environment variables (``DIVERSITY_USERS``, ...).
    """
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"DIVERSITY_DB": str(db), "HOME": str(home)} | dict(env or {})
    command = [
        sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
        "--server.address", "127.0.0.1", "--server.port", str(port),
        "--server.headless", "true", "--browser.gatherUsageStats", "false", *args,
    ]  # fmt: skip
    with (home / "streamlit.log").open("w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_health(url, proc)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # still busy with runs nobody waits for
                proc.kill()
                proc.wait()


@pytest.fixture(scope="session")
def app_url(demo_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served on a free loopback port over the demo index."""
    with serve_app(demo_db, tmp_path_factory.mktemp("home")) as url:
        yield url


def wait_idle(page: Page) -> None:
    """Wait until the script has finished its run and nothing is still spinning."""
    page.wait_for_selector(IDLE, timeout=30_000)
    page.wait_for_timeout(300)
    page.wait_for_selector(IDLE, timeout=30_000)


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Save a full-page screenshot in the test's tmp folder (and in $E2E_SCREENSHOTS if set)."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    if target := os.environ.get("E2E_SCREENSHOTS"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(target) / path.name)
    return path
