"""Writes docs/BENCHMARKS.md from the results files of the last quick and full runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.formatting import lookup as _metric, number as _f
from bench.report_scenarios import chat_line, chat_section, durable_line, durable_section, hostile_line, hostile_section

__all__ = ["chat_line", "durable_line", "hostile_line", "one_line", "write"]
PEERS = ("nchan", "socketio", "sockjs")
# Measured against single-daemon CherryChat rather than against the peers.
SCALE_OUT = "cherrychat-redis"
ANALYSIS = Path(__file__).resolve().parent / "analysis.md"



def one_line(r: dict[str, Any]) -> str:
    """A progress line for the terminal."""
    parts = [f"{r['server']}/{r['transport']} n={r['n']}"]
    if "connect" in r:
        parts.append(f"ready={r['connect']['ready']}")
    if "rss_per_conn_kib" in r:
        parts.append(f"rss/conn={r['rss_per_conn_kib']:.1f}KiB idle-cpu={r.get('idle_cpu_pct', 0):.1f}%")
    for key in ("single", "fanout", "chat"):
        if key in r:
            x = r[key]
            parts.append(f"{key}: {x['delivered']}/{x['expected']} p99={_f(x.get('p99'))}ms"
                         + (f" rate={_f(x.get('rate'), 0)}/s" if key == "fanout" else "")
                         + f" gen-cpu={x.get('gen_cpu_pct', 0):.0f}%")
    if "error" in r:
        parts.append(f"ERROR {r['error']}")
    parts.append(f"({r.get('seconds', 0)} s)")
    return "  ".join(parts)


def _runs(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in data["runs"] if "error" not in r or "connect" in r]


def _find(data: dict[str, Any], server: str, transport: str, n: int, idle: bool = False) -> dict[str, Any] | None:
    for r in data["runs"]:
        if (r["server"], r["transport"], r["n"], r.get("idle_only", False)) == (server, transport, n, idle):
            return r
    return None



def _complete(r: dict[str, Any] | None, scenario: str) -> bool:
    x = (r or {}).get(scenario)
    return bool(x) and x["expected"] > 0 and x["delivered"] >= x["expected"]


METRICS = [
    ("fanout.rate", "fan-out deliveries/s", "higher is better"),
    ("single.p99", "one message: p99 ms", "lower is better"),
    ("fanout.p99", "20 messages: p99 ms", "lower is better"),
    ("chat.p99", "chat: p99 ms", "lower is better"),
    ("rss_per_conn_kib", "RSS per connection KiB", "lower is better"),
    ("idle_cpu_pct", "idle CPU % of a core", "lower is better"),
]


def ratio_table(data: dict[str, Any]) -> list[str]:
    """CherryChat / peer for every metric, transport and size both measured."""
    lines = ["| transport | subscribers | metric | CherryChat | " + " | ".join(
        f"{data['labels'][p]} | ratio" for p in PEERS) + " |",
        "|---|---:|---|---:|" + "---:|---:|" * len(PEERS)]
    keys = sorted({(r["transport"], r["n"]) for r in data["runs"] if not r.get("idle_only")})
    for transport, n in keys:
        cc = _find(data, "cherrychat", transport, n)
        peers = {p: _find(data, p, transport, n) for p in PEERS}
        if cc is None or not any(peers.values()):
            continue
        for path, title, _ in METRICS:
            mine = _metric(cc, path)
            cells = []
            for p in PEERS:
                theirs = _metric(peers[p], path)
                ratio = mine / theirs if mine is not None and theirs else None
                cells.append(f"{_f(theirs)} | {_f(ratio, 2)}{'×' if ratio is not None else ''}")
            lines.append(f"| {transport} | {n:,} | {title} | {_f(mine)} | " + " | ".join(cells) + " |")
    return lines


def scale_out_table(data: dict[str, Any]) -> list[str]:
    """Two daemons sharing Redis against one daemon, on the same transport and size; empty
    if no run of both."""
    keys = sorted({(r["transport"], r["n"]) for r in data["runs"] if r["server"] == SCALE_OUT
                   and not r.get("idle_only")})
    pairs = [(t, n, _find(data, "cherrychat", t, n), _find(data, SCALE_OUT, t, n)) for t, n in keys]
    pairs = [p for p in pairs if p[2] is not None]
    if not pairs:
        return []
    label = data["labels"].get(SCALE_OUT, SCALE_OUT)
    lines = [f"| transport | subscribers | metric | CherryChat | {label} | ratio |", "|---|---:|---|---:|---:|---:|"]
    for transport, n, one, two in pairs:
        for path, title, _ in METRICS:
            mine, theirs = _metric(two, path), _metric(one, path)
            ratio = mine / theirs if mine is not None and theirs else None
            lines.append(f"| {transport} | {n:,} | {title} | {_f(theirs)} | {_f(mine)} | "
                         f"{_f(ratio, 2)}{'×' if ratio is not None else ''} |")
        incomplete = [x for x in ("single", "fanout", "chat") if not (_complete(one, x) and _complete(two, x))]
        if incomplete:
            lines.append(f"| {transport} | {n:,} | not every delivery arrived in: {', '.join(incomplete)} "
                         "(see the run table) | | | |")
    return lines


def scale_out_section(data: dict[str, Any]) -> list[str]:
    """The heading, what the comparison means, and :func:`scale_out_table`."""
    table = scale_out_table(data)
    if not table:
        return []
    label = data["labels"].get(SCALE_OUT, SCALE_OUT)
    return [f"### {label} / CherryChat", "",
            "Two daemons sharing one chat through `--redis`, against one daemon on the same transport and number "
            "of subscribers. Subscribers alternate between the two daemons; every message is published to the "
            "first, goes through Redis (a Lua script numbers, stores and `PUBLISH`es it) and is fanned out by "
            "both. Redis and both daemons run on the same core as the single daemon does, and their RSS and CPU "
            "are counted together, so this shows what the Redis backplane costs on one core, not what a second "
            "core would add. Ratios are the two daemons' figure divided by the single daemon's.", "",
            *table, ""]


def raw_table(data: dict[str, Any]) -> list[str]:
    """Every run's own figures, with the generator's CPU use beside them."""
    lines = ["| server | transport | subscribers | ready | RSS/conn KiB | idle CPU % | one msg p99 ms | "
             "fan-out deliveries/s | fan-out p50 / p99 ms | delivered | chat p50 / p99 ms | chat delivered | "
             "generator CPU % (fan-out) | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in data["runs"]:
        fo, ch, si = r.get("fanout") or {}, r.get("chat") or {}, r.get("single") or {}
        note = []
        if r.get("idle_only"):
            note.append("capacity (idle only)")
        if r.get("error"):
            note.append(r["error"][:120].replace("|", "/"))
        if r.get("connect", {}).get("failures"):
            note.append("failures " + ", ".join(f"{k}: {v}" for k, v in r["connect"]["failures"].items()))
        lines.append(
            f"| {data['labels'][r['server']]} | {r['transport']} | {r['n']:,} | {_f(r.get('connect', {}).get('ready'))} | "
            f"{_f(r.get('rss_per_conn_kib'))} | {_f(r.get('idle_cpu_pct'))} | {_f(si.get('p99'))} | "
            f"{_f(fo.get('rate'), 0)} | {_f(fo.get('p50'))} / {_f(fo.get('p99'))} | "
            f"{_f(fo.get('delivered'))} / {_f(fo.get('expected'))} | {_f(ch.get('p50'))} / {_f(ch.get('p99'))} | "
            f"{_f(ch.get('delivered'))} / {_f(ch.get('expected'))} | {_f(fo.get('gen_cpu_pct'), 0)} | {'; '.join(note)} |")
    return lines


def targets(data: dict[str, Any]) -> list[str]:
    """The issue's targets: met, missed, or not measured in this mode, with the figure."""
    lines = ["| target | result | measured |", "|---|---|---|"]
    # 1. 19,000 streaming connections at no more than 10 KiB RSS each.
    capacity = [r for r in data["runs"] if r["server"] == "cherrychat" and r.get("idle_only")]
    for r in capacity:
        ready = r.get("connect", {}).get("ready", 0)
        per = r.get("rss_per_conn_kib")
        met = ready >= 19000 and per is not None and per <= 10
        lines.append(f"| 19,000 concurrent {r['transport']} connections, ≤ 10 KiB RSS each | "
                     f"{'met' if met else 'missed'} | {ready:,} of {r['n']:,} open; "
                     f"{_f(per)} KiB per connection above the idle daemon ({_f(r.get('rss_total_per_conn_kib'))} KiB "
                     f"counting the whole process) |")
    if not capacity:
        lines.append("| 19,000 concurrent streaming connections, ≤ 10 KiB RSS each | not measured in this mode "
                     "(the full mode measures it) | see RSS/conn below for the sizes this mode ran |")
    # 2. Fan-out rate against each peer on the same transport, at the largest size measured.
    for peer, factor in (("socketio", 2.0), ("sockjs", 2.0), ("nchan", 0.5)):
        pairs = [(r["n"], r["transport"], r, _find(data, peer, r["transport"], r["n"])) for r in data["runs"]
                 if r["server"] == "cherrychat" and not r.get("idle_only")]
        pairs = [p for p in pairs if p[3] is not None and _metric(p[2], "fanout.rate") and _metric(p[3], "fanout.rate")]
        if not pairs:
            lines.append(f"| fan-out ≥ {factor}× {data['labels'][peer]} | not measured | |")
            continue
        largest = max(n for n, *_ in pairs)
        for n, transport, mine, theirs in sorted(p for p in pairs if p[0] == largest):
            a, b = mine["fanout"]["rate"], theirs["fanout"]["rate"]
            note = "" if _complete(mine, "fanout") and _complete(theirs, "fanout") else " (not every delivery arrived: see the run table)"
            lines.append(f"| fan-out deliveries/s ≥ {factor}× {data['labels'][peer]} ({transport}, {n:,} subscribers) | "
                         f"{'met' if a >= factor * b else 'missed'} | {a:,.0f}/s against {b:,.0f}/s: {a / b:.2f}×{note} |")
    # 3. p99 of one message to 10,000 subscribers under 100 ms.
    singles = [r for r in data["runs"] if r["server"] == "cherrychat" and r["n"] == 10000 and r.get("single")]
    for r in singles:
        p99 = r["single"].get("p99")
        ok = p99 is not None and p99 < 100 and _complete(r, "single")
        lines.append(f"| one message to 10,000 subscribers: p99 < 100 ms ({r['transport']}) | {'met' if ok else 'missed'} | "
                     f"p99 {_f(p99)} ms, {r['single']['delivered']:,} of {r['single']['expected']:,} delivered |")
    if not singles:
        largest = max((r["n"] for r in data["runs"] if r["server"] == "cherrychat" and r.get("single")), default=0)
        lines.append(f"| one message to 10,000 subscribers: p99 < 100 ms | not measured in this mode (largest: "
                     f"{largest:,} subscribers; the full mode measures 10,000) | |")
    return lines


def profile_section(data: dict[str, Any]) -> list[str]:
    """The py-spy summary of CherryChat's fan-out, if this run sampled one."""
    runs = [r for r in data["runs"] if r.get("profile") and r["profile"].get("samples")]
    if not runs:
        return []
    r = runs[0]
    prof = r["profile"]
    lines = [f"### Where CherryChat's time goes ({r['transport']}, {r['n']:,} subscribers, during the 20-message fan-out)",
             "", f"py-spy, {prof['samples']:,} samples at 250 Hz of the daemon's process.", "",
             "| own time (self) | share | | on the stack (inclusive) | share |", "|---|---:|---|---|---:|"]
    inclusive = [x for x in prof["inclusive"] if not x[0].startswith("<")][: len(prof["self"])]
    for i in range(max(len(prof["self"]), len(inclusive))):
        s = prof["self"][i] if i < len(prof["self"]) else ("", None)
        c = inclusive[i] if i < len(inclusive) else ("", None)
        lines.append(f"| `{s[0]}` | {_f(s[1])}% | | `{c[0]}` | {_f(c[1])}% |")
    return lines + [""]


def section(data: dict[str, Any], png: str, results_dir: Path) -> list[str]:
    """Everything one mode's results say."""
    m = data["machine"]
    s = data["settings"]
    out = [f"## {data['mode'].capitalize()} mode: `{data['command']}`", "",
           f"Measured {data['date']} in {data['elapsed_s']:.0f} s on {m['nproc']} cores ({m['cpu']}), kernel {m['kernel']}, "
           f"Python {m['python']}, CherryChat {m['cherrychat']} on Twisted {m['twisted']}, {m['nginx']}, "
           f"{m['redis'] + ', ' if m.get('redis') else ''}{m['peers']}, "
           f"generator on Node {m['node']}.", "",
           f"Settings: heartbeat/ping interval {s['heartbeat']} s on every server; idle window {s['idle_s']} s; "
           f"fan-out = {s['messages']} messages of {s['payload_bytes']} bytes published one after another; chat = "
           f"{s['chat_senders']} senders at {s['chat_rate']} messages/s together for {s['chat_s']} s, every subscriber "
           f"receiving. CherryChat is published to through `POST /event` with a JSON body naming every subscriber's key.", "",
           "### Targets", "", *targets(data), "",
           "### CherryChat / peer", "",
           "Ratios are CherryChat's figure divided by the peer's, on the same transport and number of subscribers.", "",
           *ratio_table(data), "",
           *scale_out_section(data),
           "### Every run", "", *raw_table(data), "",
           f"![latency against connections]({png})", "", *profile_section(data),
           *chat_section(data), *durable_section(data, results_dir), *hostile_section(data)]
    return out


HEADER = """# Benchmarks

CherryChat against Nchan (nginx), python-socketio on aiohttp and SockJS on aiohttp, on the
transports each peer shares with CherryChat, then the chat as its page uses it (issue 13),
the cost of a durable `/msg` answer (issue 12) and hostile neighbours (issue 14). Produced
by `python -m bench` (full, under 25 minutes) or `python -m bench --quick` (a few minutes)
from the repository root, or one scenario at a time with `--only` (see "Running the
scenarios" below); this file, `docs/bench-latency.png` and `bench/results/*.json` are
written by it. Every figure below is measured by that command; nothing is copied from
elsewhere.

Beside the peers, "CherryChat ×2 + Redis" is two CherryChat daemons sharing one chat
through a redis-server of their own (`--redis`), compared with the single daemon.

How it measures: each server runs alone, pinned to core 0 (`taskset -c 0`; nginx with one
worker; both daemons and Redis for "CherryChat ×2 + Redis"), with fresh processes per run. The load generator (`bench/loadgen/`, Node, raw
sockets, its own HTTP/1.1 and WebSocket client) is pinned to core 1 and reports its own CPU
use, so a saturated generator shows (the "generator CPU" column). Subscribers connect from
source addresses spread over 127.0.0.0/8. RSS per connection is the growth of the server's
VmRSS (/proc/PID/status) from the idle process to the process holding every connection,
divided by the connections; idle CPU is the server's CPU time over the idle window, with
heartbeats running. Latency is publish-to-receive: the publisher writes its wall-clock time
into the payload; the generator subtracts it on arrival. Deliveries per second are all
deliveries divided by the time from the first publish to the last arrival.

"""


def write(output: Path, results_dir: Path, png: str) -> None:
    """Write the report from whichever of full.json and quick.json exist (full first)."""
    parts = [HEADER]
    for mode in ("full", "quick"):
        path = results_dir / f"{mode}.json"
        if path.exists():
            parts.append("\n".join(section(json.loads(path.read_text()), png, results_dir)))
    if ANALYSIS.exists():
        parts.append(ANALYSIS.read_text())
    output.write_text("\n".join(parts).rstrip() + "\n")
