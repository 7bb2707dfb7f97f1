"""What each mode runs: the publish scenarios (POST /event: idle, fan-out, chat rate), the
chat scenario (the page's own requests), the durable-answer scenario and the
hostile-neighbours table, at the quick or the full sizes."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.chat import ChatSettings
from bench.durable import DurableSettings
from bench.hostile import ATTACKS, HostileSettings
from bench.scenarios import Settings
from bench.servers import Server

#: the scenarios ``--only`` chooses from, in the order they run
SCENARIOS = ("publish", "chat", "durable", "hostile")

# The transport each server is compared on first: SSE where it has it, else WebSocket.
PRIMARY = [("cherrychat", "sse"), ("cherrychat", "websocket"), ("nchan", "sse"), ("sockjs", "sse"),
           ("socketio", "websocket")]


@dataclass
class Plan:
    """Which runs a mode makes."""

    mode: str
    settings: Settings
    #: publish scenarios: (server, transport, subscribers), plus idle-only capacity runs
    runs: list[tuple[str, str, int]] = field(default_factory=list)
    capacity: list[tuple[str, str, int]] = field(default_factory=list)
    profile_n: int = 0
    chat: ChatSettings = field(default_factory=ChatSettings)
    #: chat scenario: (server, transport, members); the peers' figures beside it come
    #: from their publish runs of the same size and transport
    chat_runs: list[tuple[str, str, int]] = field(default_factory=list)
    durable: DurableSettings = field(default_factory=DurableSettings)
    hostile: HostileSettings = field(default_factory=HostileSettings)
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))


def quick() -> Plan:
    """Small sizes, a few minutes in all."""
    p = Plan("quick", Settings(heartbeat=2.0, idle_s=3.0, chat_s=3.0, chat_rate=5.0, quiet_s=5.0))
    p.runs = [(s, t, n) for n in (500, 1500) for s, t in PRIMARY]
    # Two daemons sharing Redis once, beside the single daemon at the same size.
    p.runs.append(("cherrychat-redis", "sse", 1500))
    p.profile_n = 1500
    p.chat = ChatSettings(heartbeat=2.0, join_cap_s=60.0, quiet_s=5.0)
    # Sizes of publish runs, so that /msg and POST /event line up.
    p.chat_runs = [("cherrychat", "sse", 500), ("cherrychat", "websocket", 500), ("cherrychat-redis", "sse", 1500)]
    p.durable = DurableSettings(members=300, seconds=5.0, heartbeat=2.0, join_cap_s=30.0)
    p.hostile = HostileSettings()
    return p


def full(servers: list[Server]) -> Plan:
    """1,000 to 19,000 connections; under 25 minutes on a quiet 2-core machine."""
    p = Plan("full", Settings(heartbeat=5.0, idle_s=10.0, chat_s=6.0, chat_rate=5.0, quiet_s=8.0))
    # Two daemons over Redis are compared with one over SSE only in the publish runs.
    every = [(s.name, t) for s in servers for t in s.transports if s.name != "cherrychat-redis" or t == "sse"]
    # Long-polling re-requests after every event, so it is measured at 1,000 only: at
    # 10,000 CherryChat's long-poll alone would take most of the time budget.
    p.runs = [(s, t, n) for n in (1000, 10000) for s, t in every if t != "longpoll" or n == 1000]
    p.runs += [(s, t, 5000) for s, t in PRIMARY if t == "sse"]
    p.runs.sort(key=lambda r: (r[0] != "cherrychat", r[0], r[1], r[2]))
    # Nchan is left out here: nginx's 20,000 worker_connections hold only about 18,800
    # subscribers, and waiting for the rest took four minutes of the budget.
    p.capacity = [("cherrychat", "sse", 19000)]
    p.profile_n = 10000
    # Joins still running after 60 s (12x the 5 s target for 10,000) are cut off and
    # reported so: the rest of the run goes on with those who joined, and the full run
    # stays within its budget on a daemon whose joins grow with the room.
    p.chat = ChatSettings(heartbeat=5.0, join_cap_s=60.0, quiet_s=8.0)
    p.chat_runs = [(s, t, n) for s in ("cherrychat", "cherrychat-redis") for t in ("sse", "websocket")
                   for n in (1000, 10000)]
    p.durable = DurableSettings(members=1000, seconds=10.0, heartbeat=5.0)
    p.hostile = HostileSettings(
        counts={"slowloris": 5000, "pipeline": 250, "wsmessage": 64, "wsrefused": 1200, "joinstorm": 2000,
                "labels": 10000},
        baseline_s=5.0, warmup_s=3.0, attack_s=10.0, after_s=3.0, fill_messages=1000)
    return p


def plan(mode: str, servers: list[Server], members: list[int] | None = None,
         attacks: list[str] | None = None) -> Plan:
    """The plan of ``mode``; ``members`` replaces the chat sizes and the durable room's
    size, ``attacks`` the attacks (both for smoke tests)."""
    p = quick() if mode == "quick" else full(servers)
    if members:
        kinds = sorted({(s, t) for s, t, _ in p.chat_runs})
        p.chat_runs = [(s, t, n) for n in members for s, t in kinds]
        p.durable.members = members[0]
    if attacks is not None:
        p.attacks = [a for a in attacks if a in ATTACKS]
    return p
