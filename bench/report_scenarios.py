"""The report's sections for the chat, durable-answer and hostile-neighbours scenarios,
and their progress lines; report.py puts them in docs/BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.formatting import lookup as _get, number as _f
from bench.hostile import ATTACKS

TARGET_MEMBERS = 10000
CHAT_SERVERS = ("cherrychat", "cherrychat-redis")
PEERS = ("nchan", "socketio", "sockjs")




def _pair(r: dict[str, Any] | None, path: str) -> str:
    """``p50 / p99`` of the result at ``path``."""
    return f"{_f(_get(r, path + '.p50'))} / {_f(_get(r, path + '.p99'))}"


def _complete(x: dict[str, Any] | None) -> bool:
    return bool(x) and x.get("expected", 0) > 0 and x.get("delivered", 0) >= x["expected"]


# -- progress lines --------------------------------------------------------------------


def chat_line(r: dict[str, Any]) -> str:
    parts = [f"chat {r['server']}/{r['transport']} n={r['n']}"]
    if "join" in r:
        parts.append(f"joined={r['join']['joined']} join-cpu={r['join']['server_cpu_s']}s/{r['join']['seconds']:.1f}s")
    if "connect" in r:
        parts.append(f"streams={r['connect']['ready']} in {r['connect']['seconds']:.1f}s")
    if "rss_per_member_kib" in r:
        parts.append(f"rss/member={r['rss_per_member_kib']:.1f}KiB")
    for key in ("single", "fanout"):
        if key in r:
            x = r[key]
            parts.append(f"{key}: {x['delivered']}/{x['expected']} p99={_f(x.get('p99'))}ms"
                         + (f" rate={_f(x.get('rate'), 0)}/s" if key == "fanout" else ""))
    if "error" in r:
        parts.append(f"ERROR {r['error']}")
    return "  ".join(parts) + f"  ({r.get('seconds', 0)} s)"


def durable_line(r: dict[str, Any]) -> str:
    parts = [f"durable n={r['n']}"]
    for part in ("alone", "room"):
        s = _get(r, f"{part}.steady")
        if s:
            parts.append(f"{part}({r[part]['n']}): sent={s['ok']}/{s['sent']} at {s['achieved_rate']:.0f}/s answer "
                         f"p50/p99={_pair(s, 'answer')}ms deliveries={s['rate_while_sending']:.0f}/s "
                         f"delivered={s['delivered']}/{s['expected']}")
    if "error" in r:
        parts.append(f"ERROR {r['error']}")
    return "  ".join(parts) + f"  ({r.get('seconds', 0)} s)"


def hostile_line(r: dict[str, Any]) -> str:
    parts = [f"hostile {r['attack']} N={r['count']}"]
    for key in ("baseline", "during", "after"):
        if key in r:
            parts.append(f"{key} p99={_f(r[key].get('p99'))}ms ({r[key]['delivered']}/{r[key]['expected']})")
    if "attacker" in r:
        parts.append("attacker " + json.dumps(r["attacker"])[:160])
    if "error" in r:
        parts.append(f"ERROR {r['error']}")
    return "  ".join(parts) + f"  ({r.get('seconds', 0)} s)"


# -- the chat scenario -----------------------------------------------------------------


def _find(runs: list[dict[str, Any]], server: str, transport: str, n: int) -> dict[str, Any] | None:
    for r in runs:
        if (r["server"], r["transport"], r["n"]) == (server, transport, n) and not r.get("idle_only"):
            return r
    return None


def _per_member(r: dict[str, Any]) -> tuple[Any, Any, Any]:
    """KiB per member of sessions (page loads), membership and history (joins), connections."""
    base = r.get("rss_base_kib")
    pages, join, connect = (_get(r, f"{k}.rss_after_kib") for k in ("pages", "join", "connect"))
    n, joined, ready = r["n"], _get(r, "join.joined"), _get(r, "connect.ready")
    sessions = (pages - base) / n if None not in (pages, base) else None
    members = (join - pages) / joined if None not in (join, pages) and joined else None
    conns = (connect - join) / ready if None not in (connect, join) and ready else None
    return sessions, members, conns


def chat_fill_table(data: dict[str, Any]) -> list[str]:
    lines = ["| server | transport | members | page loads: daemon CPU s / wall s | joined | joins: daemon CPU s / "
             "wall s | streams open | streams: wall s / daemon CPU s | RSS per member KiB | of which sessions / "
             "membership + history / connection KiB | note |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in data.get("chat", []):
        p, j, c = r.get("pages") or {}, r.get("join") or {}, r.get("connect") or {}
        note = []
        if j.get("cut_off"):
            note.append("joins cut off at the time cap")
        if j.get("statuses") and set(j["statuses"]) != {"200"}:
            note.append("join answers " + ", ".join(f"{k}: {v}" for k, v in j["statuses"].items()))
        if c.get("failures"):
            note.append("stream failures " + ", ".join(f"{k}: {v}" for k, v in c["failures"].items()))
        if (r.get("settle_s") or 0) > 1:
            note.append(f"daemon busy {r['settle_s']:.0f} s more after the streams opened (backlogs)")
        if r.get("error"):
            note.append(r["error"][:120].replace("|", "/"))
        s, m, k = _per_member(r)
        lines.append(
            f"| {data['labels'].get(r['server'], r['server'])} | {r['transport']} | {r['n']:,} | "
            f"{_f(p.get('server_cpu_s'))} / {_f(p.get('seconds'))} | {_f(j.get('joined'))} | "
            f"{_f(j.get('server_cpu_s'))} / {_f(j.get('seconds'))} | {_f(c.get('ready'))} | "
            f"{_f(c.get('seconds'))} / {_f(c.get('server_cpu_s'))} | {_f(r.get('rss_per_member_kib'))} | "
            f"{_f(s)} / {_f(m)} / {_f(k)} | {'; '.join(note)} |")
    return lines


def chat_msg_table(data: dict[str, Any]) -> list[str]:
    """/msg fan-out, beside POST /event to the same room size and the peers' one channel."""
    runs = data.get("runs", [])
    lines = ["| server | transport | members / subscribers | published with | deliveries/s | one message p50 / p99 ms | "
             "20 messages p50 / p99 ms | delivered (20 messages) | generator CPU % |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]

    def row(r: dict[str, Any], how: str) -> str:
        fo = r.get("fanout") or {}
        return (f"| {data['labels'].get(r['server'], r['server'])} | {r['transport']} | {r['n']:,} | {how} | "
                f"{_f(fo.get('rate'), 0)} | {_pair(r, 'single')} | {_pair(r, 'fanout')} | "
                f"{_f(fo.get('delivered'))} / {_f(fo.get('expected'))} | {_f(fo.get('gen_cpu_pct'), 0)} |")

    for r in data.get("chat", []):
        lines.append(row(r, "`/msg` (a member)"))
        same = _find(runs, r["server"], r["transport"], r["n"])
        if same:
            lines.append(row(same, "`POST /event` (every key)"))
        for peer in PEERS:
            other = _find(runs, peer, r["transport"], r["n"])
            if other and r["server"] == "cherrychat":
                lines.append(row(other, "its publish (one channel / room)"))
    return lines


def chat_targets(data: dict[str, Any]) -> list[str]:
    """Issue 13's targets, at 10,000 members (or this mode's largest room, said so)."""
    chat = [r for r in data.get("chat", []) if "join" in r]
    lines = ["| target | server, transport | result | measured |", "|---|---|---|---|"]
    if not chat:
        return lines + ["| issue 13's targets | – | not measured | the chat scenario did not run |"]
    for server in CHAT_SERVERS:
        mine = [r for r in chat if r["server"] == server]
        if not mine:
            continue
        size = TARGET_MEMBERS if any(r["n"] == TARGET_MEMBERS for r in mine) else max(r["n"] for r in mine)
        scale = "" if size == TARGET_MEMBERS else f" (at {size:,}: this mode's largest; the targets are for 10,000)"
        label = data["labels"].get(server, server)
        for r in sorted((r for r in mine if r["n"] == size), key=lambda r: r["transport"]):
            where = f"{label}, {r['transport']}{scale}"
            j, c = r["join"], r.get("connect") or {}
            limit_cpu = 5.0 * size / TARGET_MEMBERS
            limit_wall = 10.0 * size / TARGET_MEMBERS if size != TARGET_MEMBERS else 10.0
            ok = (j["joined"] == r["n"] and j["server_cpu_s"] <= limit_cpu and c.get("ready") == j["joined"]
                  and (c.get("seconds") or 1e9) <= limit_wall)
            lines.append(f"| joining all members: ≤ {_f(limit_cpu)} s of daemon CPU, streams all open within "
                         f"{_f(limit_wall)} s | {where} | {'met' if ok else 'missed'} | {j['joined']:,} of {r['n']:,} "
                         f"joined with {_f(j['server_cpu_s'])} s of daemon CPU ({_f(j['seconds'])} s wall); "
                         f"{_f(c.get('ready'))} streams open after {_f(c.get('seconds'))} s |")
            per = r.get("rss_per_member_kib")
            lines.append(f"| RSS ≤ 10 KiB per member | {where} | {'met' if per is not None and per <= 10 else 'missed'} | "
                         f"{_f(per)} KiB per member (sessions, membership, history and connection together) |")
            rate = _get(r, "fanout.rate")
            event = _get(_find(data.get("runs", []), server, r["transport"], r["n"]), "fanout.rate")
            nchan = _get(_find(data.get("runs", []), "nchan", r["transport"], r["n"]), "fanout.rate")
            if rate is None:
                lines.append(f"| `/msg` deliveries/s ≥ `POST /event`'s and ≥ 0.6× Nchan | {where} | missed | no fan-out figure |")
            else:
                checks, shown = [], [f"{rate:,.0f}/s"]
                if event:
                    checks.append(rate >= event)
                    shown.append(f"`POST /event` {event:,.0f}/s ({rate / event:.2f}×)")
                if nchan:
                    checks.append(rate >= 0.6 * nchan)
                    shown.append(f"Nchan {nchan:,.0f}/s ({rate / nchan:.2f}×)")
                if not all(checks):
                    verdict = "missed"
                elif len(checks) == 2:
                    verdict = "met"
                else:
                    verdict = "half measured: no " + ("Nchan" if event else "`POST /event`") + \
                              " run of this size and transport"
                if not _complete(r.get("fanout")):
                    shown.append("not every delivery arrived")
                lines.append(f"| `/msg` deliveries/s ≥ `POST /event`'s and ≥ 0.6× Nchan | {where} | {verdict} | "
                             f"{'; '.join(shown)} |")
            p99 = _get(r, "single.p99")
            ok = p99 is not None and p99 < 150 and _complete(r.get("single"))
            lines.append(f"| one `/msg` reaching everyone: p99 < 150 ms | {where} | {'met' if ok else 'missed'} | "
                         f"p99 {_f(p99)} ms, {_f(_get(r, 'single.delivered'))} of {_f(_get(r, 'single.expected'))} "
                         "delivered |")
    return lines


def chat_section(data: dict[str, Any]) -> list[str]:
    if not data.get("chat"):
        return []
    when = data.get("sections", {}).get("chat", {})
    args = sorted({a for r in data["chat"] for a in r.get("daemon_args", [])[::2]})
    return [
        "### The chat as its page uses it (issue 13)", "",
        f"Measured {when.get('date', data['date'])} (`{when.get('command', data['command'])}`). N browser sessions "
        "each load the page (`GET /static/chat.html`, which sets their `cherrychat_session` cookie), "
        "`/join?user=uN&session=0` with their own cookie, and open their comet connection "
        "(`/cherrychat?user=uN&session=0&transport=T`, no `last_event_id`: what was said since their join is their "
        "backlog); then one member sends `/msg`, once alone and then 20 times in a row. Page loads and joins go "
        "50 at a time from 127.0.0.1; streams come from addresses spread over 127.0.0.0/8. The daemon runs with "
        f"history in memory and its per-client bounds lifted ({', '.join(f'`{a}`' for a in args) or 'none'}), so "
        "that thousands of members from one machine are not refused as one abusive client. Daemon CPU is "
        "/proc's user+system time over each phase; RSS per member is the daemon's growth from idle to the room "
        "after the messages, divided by the members, split by phase in the next column. Nchan and the Python "
        "peers have no join: their rows are their publish runs of the same size and transport (one channel, one "
        "Socket.IO namespace, one SockJS broadcast).", "",
        "#### Targets", "", *chat_targets(data), "",
        "#### Filling the room", "", *chat_fill_table(data), "",
        "#### `/msg` fan-out", "", *chat_msg_table(data), "",
    ]


# -- the durable answer ----------------------------------------------------------------


def durable_runs(results_dir: Path, mode: str) -> list[dict[str, Any]]:
    """Every stored durable-answer result of ``mode``, oldest first."""
    found = []
    for path in results_dir.glob(f"durable-{mode}-*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: r.get("date", ""))


def durable_section(data: dict[str, Any], results_dir: Path) -> list[str]:
    runs = durable_runs(results_dir, data["mode"])
    if not runs and data.get("durable"):
        runs = [data["durable"]]
    if not runs:
        return []
    s0 = runs[-1].get("settings", {})
    rate = s0.get("rate", 0)
    lines = [
        "### The durable answer (issue 12)", "",
        f"{s0.get('senders', '?')} members send `/msg` at {rate:,.0f} messages/s together for {s0.get('seconds', '?')} s, "
        "each with one request in flight at most (one that falls behind sends when its answer comes, without "
        "catching up), on a fresh daemon with its default SQLite file: first with nobody else in the room "
        "(*alone*: the daemon keeps up, and the answer time is what storing costs), then while a room of "
        f"{s0.get('members', 0):,} members on SSE receives (*room*: one core cannot deliver that rate to that many, "
        "so this is the deliveries/s it sustains under the load, and the answer time then). Answer time is from "
        "sending the request to the end of its answer, on the generator. Deliveries/s is what the members received "
        "while the senders sent, over that time. One pair of rows per daemon measured: run `python -m bench "
        "--only durable` on each commit (`--daemon-source`, `--label`; see bench/analysis.md); the last is "
        "compared with the first.", "",
        "| daemon | measured | room | achieved /msg per s | /msg answer p50 / p99 / max ms | non-200 answers | "
        "deliveries/s while sending | delivery p50 / p99 ms | delivered | daemon CPU % | database growth MiB |",
        "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in runs:
        for part in ("alone", "room"):
            x = r.get(part) or {}
            st = x.get("steady") or {}
            bad = {k: v for k, v in (st.get("statuses") or {}).items() if k != "200"}
            note = ", ".join(f"{k}: {v}" for k, v in bad.items()) or "none"
            if x.get("error"):
                note = x["error"][:100].replace("|", "/")
            growth = x.get("database_growth_bytes")
            lines.append(
                f"| {r.get('label', '?')} | {r.get('date', '?')} | {part}: {_f(x.get('n'))} | "
                f"{_f(st.get('achieved_rate'), 0)} | {_f(_get(st, 'answer.p50'))} / {_f(_get(st, 'answer.p99'))} / "
                f"{_f(_get(st, 'answer.max'))} | {note} | {_f(st.get('rate_while_sending'), 0)} | "
                f"{_f(st.get('p50'))} / {_f(st.get('p99'))} | {_f(st.get('delivered'))} / {_f(st.get('expected'))} | "
                f"{_f(st.get('server_cpu_pct'), 0)} | {_f(growth / 2**20 if growth is not None else None, 2)} |")
    lines += ["", "| target | result | measured |", "|---|---|---|"]
    last, first = runs[-1], runs[0]
    alone, room = _get(last, "alone.steady") or {}, _get(last, "room.steady") or {}
    p50, achieved = _get(alone, "answer.p50"), alone.get("achieved_rate")
    ok = p50 is not None and p50 < 10 and achieved is not None and achieved >= 0.95 * rate
    lines.append(f"| p50 `/msg` answer < 10 ms at {rate:,.0f} messages/s ({last.get('label')}) | "
                 f"{'met' if ok else 'missed'} | alone: p50 {_f(p50)} ms at {_f(achieved, 0)} messages/s achieved; "
                 f"with the room: p50 {_f(_get(room, 'answer.p50'))} ms at {_f(room.get('achieved_rate'), 0)} "
                 "messages/s |")
    if first is not last:
        for part in ("room", "alone"):
            a, b = _get(last, f"{part}.steady.rate_while_sending"), _get(first, f"{part}.steady.rate_while_sending")
            if a and b:
                lines.append(f"| under 10% fewer deliveries/s, {part} ({last.get('label')} against "
                             f"{first.get('label')}) | {'met' if a >= 0.9 * b else 'missed'} | {a:,.0f}/s against "
                             f"{b:,.0f}/s: {a / b:.2f}× |")
    else:
        lines.append("| under 10% fewer deliveries/s than before | not measured | one daemon measured so far: run "
                     "the same command on the other commit |")
    return lines + [""]


# -- hostile neighbours ----------------------------------------------------------------


def _attacker(a: dict[str, Any] | None) -> str:
    if not a:
        return "–"
    parts = [f"{k} {v}" for k, v in a.items() if k not in ("kind", "statuses", "seconds")]
    parts += [f"{k}: {v}" for k, v in (a.get("statuses") or {}).items()]
    return ", ".join(parts).replace("|", "/")


def hostile_section(data: dict[str, Any]) -> list[str]:
    runs = data.get("hostile")
    if not runs:
        return []
    when = data.get("sections", {}).get("hostile", {})
    lines = [
        "### Hostile neighbours (issue 14)", "",
        f"Measured {when.get('date', data['date'])} (`{when.get('command', data['command'])}`). For each attack a "
        "fresh daemon with its default options (default limits, its default SQLite file). A well-behaved member "
        "(page, `/join`, an SSE stream, from its own address) sends one `/msg` every 100 ms and receives it on its "
        "stream; a fresh connection asks `GET /healthz` as often. Its round trip (send to receipt) is measured "
        "before the attack, while it runs (after a warm-up) and just after it is stopped. Each attack comes from "
        "127.0.99.1 (bench/attacks.py), bounded in count and time and stopped by its pid. The last column is a new "
        "browser session from the attacker's address afterwards: page, `/join`, stream.", "",
        "| attack | well-behaved round trip p50 / p99 ms: before | during | after | its `/msg` answers p99 ms during | "
        "its messages received during | `/healthz` p99 ms during (answers) | daemon RSS MiB before → peak → after | "
        "what the attacker saw | a new session from the attacker's address, after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in runs:
        what = ATTACKS.get(r["attack"], r["attack"]).format(n=f"{r['count']:,}")
        d = r.get("during") or {}
        health = d.get("healthz") or {}
        answers = ", ".join(f"{k}: {v}" for k, v in (health.get("statuses") or {}).items())
        mib = [r.get(k) / 1024 if r.get(k) is not None else None for k in ("rss_before_kib", "rss_peak_kib", "rss_after_kib")]
        fresh = r.get("fresh_client") or {}
        fresh_text = "ok" if fresh.get("ok") else ", ".join(f"{k} {v}" for k, v in fresh.items() if k != "ok") or "–"
        bad = {k: v for k, v in (d.get("statuses") or {}).items() if k != "200"}
        received = f"{_f(d.get('delivered'))} of {_f(d.get('sent'))}" + (
            f" (answers {', '.join(f'{k}: {v}' for k, v in bad.items())})" if bad else "")
        if r.get("error"):
            fresh_text = f"run failed: {r['error'][:100]}".replace("|", "/")
        lines.append(
            f"| {what} | {_pair(r, 'baseline')} | {_pair(r, 'during')} | {_pair(r, 'after')} | "
            f"{_f(_get(d, 'answer.p99'))} | {received} | {_f(health.get('p99'))} ({answers}) | "
            f"{' → '.join(_f(m, 0) for m in mib)} | {_attacker(r.get('attacker'))} | {fresh_text} |")
    return lines + [""]
