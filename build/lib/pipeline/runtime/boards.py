"""The operations room on the worker's HTTP server: the wallboard at `/`, the agent board at `/agents`, their data
at `/api/wallboard` and `/api/agents` (JSON, polled by the pages every second), and the pages' own script and
style sheet. Everything ships in the package (`pipeline/runtime/static/`): nothing is fetched from the internet.

The figures are built on each request from the state this worker owns (`pipeline.exposition.boards`), so the
pages say so: with several workers each page shows that worker's partitions only (Grafana's wallboard is the
whole center). Registered by `add_boards`, apart from the other pages (`pipeline.runtime.http`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import aiohttp
import orjson

from pipeline.core.settings import QueueConfig, Settings
from pipeline.exposition.boards import PROMETHEUS_QUERIES, agent_board, prometheus_wallboard, wallboard
from pipeline.processing.processor import AgentProcessor, ContactProcessor
from pipeline.runtime.health import Throughput
from pipeline.runtime.transport import App

log = logging.getLogger(__name__)
STATIC = resources.files("pipeline.runtime") / "static"
ASSETS = {  # path -> (file, content type)
    "/": ("wallboard.html", "text/html; charset=utf-8"),
    "/agents": ("agents.html", "text/html; charset=utf-8"),
    "/static/board.js": ("board.js", "text/javascript; charset=utf-8"),
    "/static/board.css": ("board.css", "text/css; charset=utf-8"),
}
JSON = "application/json"
NO_CACHE = {"Cache-Control": "no-store"}


def source(settings: Settings, contacts: ContactProcessor, agents: AgentProcessor) -> dict[str, Any]:
    """Where the figures come from, for the page to say: this worker's partitions, of how many."""
    held_queues, held_agents = len(contacts.partitions), len(agents.partitions)
    note = (
        f"This worker only: {held_queues} of {settings.partitions} queue partitions and "
        f"{held_agents} of {settings.partitions} agent partitions."
    )
    if held_queues == held_agents == settings.partitions:
        note = "This worker holds every partition: the whole center."
    return {"kind": "local", "note": note}


class Boards:
    """The two boards' data, built once per state: a board is rebuilt only when a partition applied a message
    since (or changed hands), so any number of open pages cost one build per batch, not one per poll."""

    def __init__(
        self,
        settings: Settings,
        queues: QueueConfig,
        contacts: ContactProcessor,
        agents: AgentProcessor,
        throughput: Throughput,
    ) -> None:
        self.settings = settings
        self.queues = queues
        self.contacts = contacts
        self.agents = agents
        self.throughput = throughput
        self._built: dict[str, tuple[object, dict[str, Any]]] = {}

    def _version(self) -> object:
        """Changes whenever any partition applies a message (heartbeats too) or is taken or given up."""
        return (
            tuple((p, s.offset) for p, s in self.contacts.partitions.items()),
            tuple((p, s.offset) for p, s in self.agents.partitions.items()),
        )

    def data(self, kind: str) -> dict[str, Any]:
        version = self._version()
        built = self._built.get(kind)
        if built is None or built[0] != version:
            build = wallboard if kind == "wallboard" else agent_board
            qs, ags = list(self.contacts.partitions.values()), list(self.agents.partitions.values())
            built = self._built[kind] = (version, build(qs, ags, self.queues))
        return {**built[1], **self.fresh(), "source": source(self.settings, self.contacts, self.agents)}

    def fresh(self) -> dict[str, Any]:
        """When the answer was made, and how long ago this worker last took a batch of events."""
        last = self.throughput.last_batch_monotonic
        return {
            "generated_at": time.time(),
            "last_batch_seconds_ago": round(time.monotonic() - last, 3) if last else None,  # 0.0: no batch yet
        }


class PrometheusWallboard:
    """The wallboard from Prometheus (`PIPELINE_PROMETHEUS_URL`): `PROMETHEUS_QUERIES` evaluated at one instant,
    at most once a second whatever the number of open pages."""

    TIMEOUT_SECONDS = 2.0

    def __init__(self, url: str, queues: QueueConfig) -> None:
        self.url = url
        self.queues = queues
        self._built: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def data(self) -> dict[str, Any]:
        """Raises `PrometheusUnavailable` when Prometheus does not answer or a query fails."""
        async with self._lock:  # pages polling at once share one evaluation
            if self._built is None or time.monotonic() - self._built[0] >= 1.0:
                at = round(time.time(), 3)
                timeout = aiohttp.ClientTimeout(total=self.TIMEOUT_SECONDS)
                try:
                    async with aiohttp.ClientSession(timeout=timeout) as session:
                        names = list(PROMETHEUS_QUERIES)
                        vectors = await asyncio.gather(
                            *(self._query(session, PROMETHEUS_QUERIES[n], at) for n in names)
                        )
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    raise PrometheusUnavailable(f"Prometheus at {self.url}: {exc or type(exc).__name__}") from exc
                self._built = (
                    time.monotonic(),
                    prometheus_wallboard(dict(zip(names, vectors, strict=True)), self.queues, at),
                )
            return self._built[1]

    async def _query(self, session: aiohttp.ClientSession, expr: str, at: float) -> list[dict]:
        async with session.get(f"{self.url}/api/v1/query", params={"query": expr, "time": str(at)}) as resp:
            body = await resp.json(content_type=None)
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('error', body)}")
        return body["data"]["result"]


class PrometheusUnavailable(Exception):
    pass


def add_boards(
    app: App,
    settings: Settings,
    queues: QueueConfig,
    contacts: ContactProcessor,
    agents: AgentProcessor,
    throughput: Throughput,
) -> None:
    """Register the board pages, their data and assets on the worker's web server."""
    boards = Boards(settings, queues, contacts, agents, throughput)
    prometheus = PrometheusWallboard(settings.prometheus_url, queues) if settings.prometheus_url else None
    assets = {path: ((STATIC / name).read_bytes(), kind) for path, (name, kind) in ASSETS.items()}

    def asset(path: str) -> Callable:
        body, kind = assets[path]

        async def page(web, request):  # noqa: ANN001
            return web.bytes(
                body, headers={"Content-Type": kind, **NO_CACHE}
            )  # aiohttp refuses a charset in content_type

        return page

    for path in assets:
        app.page(path, name=f"board-asset{path}")(asset(path))

    def data(kind: str) -> Callable:
        async def page(web, request):  # noqa: ANN001
            if kind == "wallboard" and prometheus is not None:
                try:
                    body = await prometheus.data()
                except PrometheusUnavailable as exc:
                    log.warning("wallboard: %s", exc)
                    return web.bytes(
                        orjson.dumps({"error": str(exc)}), status=503, headers={"Content-Type": JSON, **NO_CACHE}
                    )
                body = {
                    **body,
                    **boards.fresh(),
                    "source": {
                        "kind": "prometheus",
                        "note": f"Whole center, from Prometheus at {prometheus.url} (the Grafana wallboard's series and cc_queue_today_*).",
                    },
                }
            else:
                body = boards.data(kind)
            return web.bytes(orjson.dumps(body), headers={"Content-Type": JSON, **NO_CACHE})

        return page

    app.page("/api/wallboard", name="board-data-wallboard")(data("wallboard"))
    app.page("/api/agents", name="board-data-agents")(data("agents"))
