"""Benchmark: many concurrent sessions against one running app, as a programme review would.

Each simulated viewer is a Streamlit websocket client speaking the app's own protocol (the
protobuf messages Streamlit's frontend sends): it opens a session, asks for each page in turn
(a rerun with that page's hash, as a browser following a link does) and times the run from the
request to Streamlit's "script finished". A run counts as an error when it does not finish
successfully, shows an exception element, or exceeds the timeout. No browser is needed, so the
client's own cost stays small beside the server's on a 2-core machine.

    python benchmarks/load.py [--db var/bench/demo_10000000.duckdb] [--sessions 20]
                              [--rounds 2] [--timeout 60] [--think 2-5] [--warm]

It starts the app on a free loopback port over --db (building nothing), runs --sessions
viewers at once, each visiting every page --rounds times in its own shuffled order, and prints
p50/p95/max page times per page and overall, the same for first visits (the first time any
viewer asks for that page under that link: cold caches) and repeat visits, the error count,
the server's CPU seconds per page run (robust to other load on the machine, unlike the
times) and its peak memory.

By default the model is closed-loop with no think time: each viewer asks for its next page
the moment the previous one has finished, the harshest load 20 viewers can make. With
``--think A-B`` each viewer reads every page for a random A to B seconds before the next (a
review's participants reading the page); page times never include the think time. With
``--warm`` one viewer first opens every page without filters (the presenter, before the review
starts), so the unfiltered view is warm when the viewers arrive; by default nothing is warmed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.util import calc_hash

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dashboard.views.pages import PAGES  # noqa: E402  (the app's own page table)
from tests.e2e.conftest import serve_app  # noqa: E402

PAGE_PATHS: tuple[str, ...] = tuple(page.url_path for page in PAGES)
LINKS: tuple[str, ...] = ("", "state=Kerala", "unit=studies", "state=Bihar&sex=Female")
"""The shared links the viewers open: half the programme unfiltered, the rest filtered."""


@dataclass
class Visit:
    """One page run as one viewer saw it."""

    page: str
    seconds: float
    error: str | None = None
    first: bool = False
    """The first time any viewer asked for this page under this link (cold caches)."""


@dataclass
class LoadResult:
    """Every visit of a load run."""

    visits: list[Visit] = field(default_factory=list)
    asked: set[tuple[str, str]] = field(default_factory=set)
    """(page, link) pairs some viewer has asked for already."""

    @property
    def errors(self) -> list[Visit]:
        return [v for v in self.visits if v.error is not None]

    def percentile(self, q: float, page: str | None = None, first: bool | None = None) -> float:
        """The q-th percentile (0–100) of page times, over one page or all; ``first``: over
        first visits only (True) or repeat visits only (False)."""
        times = sorted(
            v.seconds for v in self.visits if page in (None, v.page) and first in (None, v.first)
        )
        if not times:
            return float("nan")
        if len(times) == 1:
            return times[0]
        return statistics.quantiles(times, n=100, method="inclusive")[round(q) - 1]


def _rerun(page: str, query: str) -> bytes:
    message = BackMsg()
    message.rerun_script.page_script_hash = calc_hash(page)
    message.rerun_script.query_string = query
    return message.SerializeToString()


async def _visit(
    socket: websockets.ClientConnection, page: str, query: str, timeout: float
) -> Visit:
    """Ask for ``page`` (with the link's ``query``) and read messages until its run finishes."""
    start = time.perf_counter()
    await socket.send(_rerun(page, query))
    error: str | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = ForwardMsg()
                message.ParseFromString(await socket.recv())
                kind = message.WhichOneof("type")
                if kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                    if message.delta.new_element.WhichOneof("type") == "exception":
                        exception = message.delta.new_element.exception
                        where = " | ".join(exception.stack_trace[-3:])
                        error = error or f"{exception.type}: {exception.message} at {where}"
                elif kind == "page_not_found":
                    error = "page not found"
                elif kind == "script_finished":
                    status = message.script_finished
                    if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                        continue
                    if status != ForwardMsg.FINISHED_SUCCESSFULLY:
                        error = error or f"script finished with status {status}"
                    break
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    return Visit(page, time.perf_counter() - start, error)


async def _viewer(
    url: str,
    pages: list[str],
    query: str,
    timeout: float,
    result: LoadResult,
    think: tuple[float, float] = (0.0, 0.0),
    rng: random.Random | None = None,
) -> None:
    """One viewer: a session of its own that visits ``pages`` in order, with ``query``,
    reading each for a random ``think`` seconds (low, high) before asking for the next."""
    rng = rng or random.Random(0)
    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    # No keepalive pings: a busy server answers them late and the client would drop the whole
    # session for it; a slow page is what this measures, per visit.
    try:
        async with websockets.connect(
            ws_url,
            subprotocols=["streamlit"],
            origin=url,
            max_size=None,
            ping_interval=None,
        ) as socket:
            for number, page in enumerate(pages):
                if number and think[1] > 0:
                    await asyncio.sleep(rng.uniform(*think))
                first = (page, query) not in result.asked
                result.asked.add((page, query))
                visit = await _visit(socket, page, query, timeout)
                visit.first = first
                result.visits.append(visit)
    except (OSError, websockets.WebSocketException) as exc:
        result.visits.append(Visit("(connect)", 0.0, f"{type(exc).__name__}: {exc}"))


async def drive(
    url: str,
    *,
    sessions: int,
    rounds: int = 1,
    pages: tuple[str, ...] = PAGE_PATHS,
    queries: tuple[str, ...] = ("",),
    timeout: float = 60,
    seed: int = 1,
    think: tuple[float, float] = (0.0, 0.0),
    warmed: frozenset[tuple[str, str]] = frozenset(),
) -> LoadResult:
    """Run ``sessions`` viewers at once against the app at ``url``; each visits every page
    ``rounds`` times in its own shuffled order, under one of ``queries`` (shared links'
    filters, e.g. ``state=Kerala``), taken in turn, reading each page ``think`` seconds (a
    random time between the two bounds; none by default: closed loop). ``warmed``: (page,
    link) pairs visited before, whose first visit here is not counted as a first visit."""
    rng = random.Random(seed)
    result = LoadResult(asked=set(warmed))
    viewers = []
    for number in range(sessions):
        plan = [page for _ in range(rounds) for page in rng.sample(pages, len(pages))]
        query = queries[number % len(queries)]
        reader = random.Random(rng.random())
        viewers.append(_viewer(url, plan, query, timeout, result, think, reader))
    await asyncio.gather(*viewers)
    return result


def run_load(url: str, **options: Any) -> LoadResult:
    """:func:`drive` from synchronous code, in a thread of its own: the caller's thread may
    already run an event loop (Playwright's sync API does, in the browser tests' worker)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, drive(url, **options)).result()


def server_pid(url: str) -> int | None:
    """The id of the Streamlit process serving ``url`` (Linux /proc), or None."""
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"streamlit" in b" ".join(argv) and port.encode() in argv:
            return int(proc.name)
    return None


def server_peak_rss_mib(url: str) -> float | None:
    """Peak resident memory of the Streamlit process serving ``url`` (Linux /proc)."""
    pid = server_pid(url)
    try:
        status = Path(f"/proc/{pid}/status").read_text() if pid else ""
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds the process ``pid`` has used so far (every thread of it:
    the script runs, the event loop, DuckDB's and polars' workers), or None off Linux.

    Unlike the page times, this does not grow when other work shares the machine's cores."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split() if pid else []
    except OSError:
        return None
    if len(fields) < 13:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(result: LoadResult, sessions: int, elapsed: float) -> str:
    """The printed table: per page and overall p50 / p95 / max, and errors."""
    lines = [
        f"{sessions} concurrent sessions, {len(result.visits)} page runs in {elapsed:.1f} s",
        f"{'page':<18}{'runs':>6}{'p50 s':>9}{'p95 s':>9}{'max s':>9}{'errors':>8}",
    ]
    for page in sorted({v.page for v in result.visits}):
        runs = [v for v in result.visits if v.page == page]
        lines.append(
            f"{page:<18}{len(runs):>6}{result.percentile(50, page):>9.2f}"
            f"{result.percentile(95, page):>9.2f}{max(v.seconds for v in runs):>9.2f}"
            f"{sum(v.error is not None for v in runs):>8}"
        )
    for label, first in (("all", None), ("first visits", True), ("repeat visits", False)):
        runs = [v for v in result.visits if first in (None, v.first)]
        if runs:
            lines.append(
                f"{label:<18}{len(runs):>6}{result.percentile(50, first=first):>9.2f}"
                f"{result.percentile(95, first=first):>9.2f}"
                f"{max(v.seconds for v in runs):>9.2f}{sum(v.error is not None for v in runs):>8}"
            )
    lines += [f"error: {v.page}: {v.error}" for v in result.errors[:10]]
    return "\n".join(lines)


def think_range(text: str) -> tuple[float, float]:
    """``"2-5"`` → (2.0, 5.0); ``"3"`` → (3.0, 3.0)."""
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a range of seconds: {text!r}") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"not a range of seconds: {text!r}")
    return bounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, default=REPO / "var/bench/demo_10000000.duckdb")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument(
        "--think",
        type=think_range,
        default=(0.0, 0.0),
        metavar="A-B",
        help="seconds each viewer reads a page before the next, e.g. 2-5 (default: none)",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="one viewer opens every page unfiltered before the sessions arrive (default: cold)",
    )
    args = parser.parse_args()
    if not args.db.exists():
        sys.exit(f"{args.db} does not exist: run benchmarks/dashboard.py --sizes 10000000 first")
    with serve_app(args.db, REPO / "var/bench/load_home") as url:
        pid = server_pid(url)
        warmed: frozenset[tuple[str, str]] = frozenset()
        if args.warm:
            start = time.perf_counter()
            warm = run_load(url, sessions=1, timeout=args.timeout)
            print(f"warm-up: every page once, unfiltered, in {time.perf_counter() - start:.1f} s")
            warmed = frozenset(warm.asked)
        # unless --warm, nothing is warmed up: the first viewers meet cold caches
        cpu_before = cpu_seconds(pid)
        start = time.perf_counter()
        result = run_load(
            url,
            sessions=args.sessions,
            rounds=args.rounds,
            queries=LINKS,
            timeout=args.timeout,
            think=args.think,
            warmed=warmed,
        )
        elapsed = time.perf_counter() - start
        cpu_after = cpu_seconds(pid)
        model = (
            f"think time {args.think[0]:g}-{args.think[1]:g} s between pages"
            if args.think[1] > 0
            else "closed loop, no think time"
        )
        print(f"{model}; links: {', '.join(q or '(none)' for q in LINKS)}")
        print(report(result, args.sessions, elapsed))
        if cpu_before is not None and cpu_after is not None and result.visits:
            used = cpu_after - cpu_before
            print(
                f"server CPU {used:.1f} s: {1000 * used / len(result.visits):.0f} ms per page run"
            )
        if (rss := server_peak_rss_mib(url)) is not None:
            print(f"server peak RSS {rss:,.0f} MiB")
        print(
            "load average (1, 5, 15 min) at the end: "
            + ", ".join(f"{v:.2f}" for v in os.getloadavg())
        )


if __name__ == "__main__":
    main()
