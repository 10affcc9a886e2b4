"""The operations room on the worker's HTTP server: the wallboard at `/`, the agent board at `/agents`, their data
at `/api/wallboard` and `/api/agents` (JSON, polled by the pages every second), and the pages' own script and
style sheet. Everything ships in the package (`pipeline/runtime/static/`): nothing is fetched from the internet.

The figures are built on each request from the state this worker owns (`pipeline.exposition.boards`), so the
pages say so: with several workers each page shows that worker's partitions only (Grafana's wallboard is the
whole center). Registered by `add_boards`, apart from the other pages (`pipeline.runtime.http`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import orjson

from pipeline.core.settings import QueueConfig, Settings
from pipeline.exposition.boards import agent_board, wallboard
from pipeline.processing.processor import AgentProcessor, ContactProcessor
from pipeline.runtime.health import Throughput
from pipeline.runtime.transport import App

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
        last = self.throughput.last_batch_monotonic
        return {
            **built[1],
            "generated_at": time.time(),
            "last_batch_seconds_ago": round(time.monotonic() - last, 3) if last else None,  # 0.0: no batch yet
            "source": source(self.settings, self.contacts, self.agents),
        }


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
            return web.bytes(orjson.dumps(boards.data(kind)), headers={"Content-Type": JSON, **NO_CACHE})

        return page

    app.page("/api/wallboard", name="board-data-wallboard")(data("wallboard"))
    app.page("/api/agents", name="board-data-agents")(data("agents"))
