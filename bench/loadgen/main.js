'use strict';
/**
 * The load generator: holds many subscriber connections to one server, publishes, and
 * measures what arrives.
 *
 *   node bench/loadgen/main.js SPEC.json
 *
 * SPEC names the server profile, transport, port (and optionally `ports`, over which the
 * subscribers are spread) and count. Commands arrive on stdin as
 * JSON lines ({"cmd": "prepare"|"connect"|"fanout"|"chat"|"close", ...}); each answer is
 * one JSON line on stdout. Every phase is bounded in time, and every answer includes the
 * generator's own CPU use so that a saturated generator shows in the results.
 *
 * With `spec.chat`, subscribers are chat members (chat.js): "pages" gives N browser
 * sessions their cookies, "join" joins them, "connect" opens the joined members'
 * connections, and publishing is a member's /msg; "steady" and "probe" are the
 * durable-answer and hostile-neighbours loads.
 */

const fs = require('fs');
const readline = require('readline');
const { PROFILES } = require('./profiles');
const { Subscriber } = require('./subscriber');
const { Recorder, nowUs, payload } = require('./recorder');
const { httpRequest } = require('./control');
const { Members, chatProfile } = require('./chat');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class Generator {
  constructor(spec) {
    this.spec = spec;
    this.host = spec.host || '127.0.0.1';
    this.port = spec.port;
    // Several daemons sharing one chat: subscribers are spread over spec.ports; control
    // requests (prepare, publishing) still go to spec.port.
    this.ports = spec.ports && spec.ports.length ? spec.ports : [spec.port];
    this.recorder = new Recorder();
    this.subs = [];
    this.readyCount = 0;
    this.failedCount = 0;
    this.closedCount = 0;
    this.streamsEnded = 0;
    this.polls = 0;
    this.failures = {};
    this.seq = 0;
    this.profile = null;
    this.members = new Members(this);
  }

  /** Port subscriber i connects to: the daemons take turns. */
  portFor(i) {
    return this.ports[i % this.ports.length];
  }

  /** Source address of subscriber i: spread over 127.0.0.0/8 so no address runs out of ports. */
  sourceAddress(i) {
    return `127.0.${10 + Math.floor(i / 200) % 200}.${1 + (i % 200)}`;
  }

  subscriberReady() {
    this.readyCount++;
  }

  subscriberFailed(sub, reason) {
    this.failedCount++;
    this.failures[reason] = (this.failures[reason] || 0) + 1;
  }

  subscriberClosed() {
    this.closedCount++;
  }

  /** CPU time of this process in seconds (user + system). */
  cpuSeconds() {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }

  /** Runs `fn` and adds the generator's CPU use over it to the result. */
  async measured(fn) {
    const cpu0 = this.cpuSeconds();
    const t0 = Date.now();
    const result = await fn();
    const wall = (Date.now() - t0) / 1000;
    result.gen_cpu_s = this.cpuSeconds() - cpu0;
    result.gen_wall_s = wall;
    result.gen_cpu_pct = wall > 0 ? (100 * result.gen_cpu_s) / wall : 0;
    return result;
  }

  /** CherryChat: learn the newest event id, so that connections start after it. */
  async prepare() {
    const spec = this.spec;
    const t0 = Date.now();
    const h = await httpRequest(this, 'GET', '/history?limit=1');
    const events = JSON.parse(h.body).events;
    spec.lastEventId = events.length ? events[events.length - 1].id : 0;
    return { seconds: (Date.now() - t0) / 1000, last_event_id: spec.lastEventId };
  }

  /** Open `n` subscribers, at most `concurrency` not yet ready at a time. */
  async connect(cmd) {
    const spec = this.spec;
    // Chat members: only those who joined connect, each as its own member.
    const ids = spec.chat ? this.members.joined.slice(0, cmd.n) : null;
    const n = ids ? ids.length : cmd.n;
    spec.n = n;
    this.profile = spec.chat ? chatProfile(this, spec) : PROFILES[spec.server](this, spec);
    const deadline = Date.now() + (cmd.timeout_s || 120) * 1000;
    const concurrency = cmd.concurrency || 200;
    const t0 = Date.now();
    let started = 0;
    while (started < n && Date.now() < deadline) {
      const pending = started - this.readyCount - this.failedCount;
      const room = Math.min(concurrency - pending, n - started);
      for (let k = 0; k < room; k++) {
        const sub = new Subscriber(this, ids ? ids[started++] : started++, this.profile);
        this.subs.push(sub);
        sub.start();
        if (this.profile.firstPollReady && sub.kind === 'poll') sub.markReady();
      }
      await sleep(room > 0 ? 1 : 5);
    }
    while (this.readyCount + this.failedCount < started && Date.now() < deadline) await sleep(20);
    let serverCount = null;
    if (this.profile.subscriberCount) {
      // Nchan tells how many subscribers it holds; wait for all of them.
      while (Date.now() < deadline) {
        serverCount = await this.profile.subscriberCount();
        if (serverCount >= this.readyCount) break;
        await sleep(200);
      }
    }
    return {
      started,
      ready: this.readyCount,
      failed: this.failedCount,
      closed: this.closedCount,
      failures: this.failures,
      server_count: serverCount,
      seconds: (Date.now() - t0) / 1000,
    };
  }

  /** Subscribers that are ready and still open: the ones that should receive events. */
  live() {
    return this.subs.filter((s) => s.ready && !s.closed).length;
  }

  /** Waits until `expected` deliveries arrived, or nothing arrived for `quietMs`, or the deadline. */
  async drain(expected, deadline, quietMs) {
    let lastTotal = -1;
    let lastChange = Date.now();
    while (this.recorder.total < expected && Date.now() < deadline) {
      if (this.recorder.total !== lastTotal) {
        lastTotal = this.recorder.total;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > quietMs) break;
      await sleep(5);
    }
  }

  /** Publish `messages` payloads one after another and measure their delivery. */
  async fanout(cmd) {
    const live = this.live();
    const messages = cmd.messages || 20;
    const expected = live * messages;
    this.recorder.reset(expected + 16);
    const deadline = Date.now() + (cmd.timeout_s || 60) * 1000;
    const firstSeq = this.seq;
    const t0 = nowUs();
    const errors = [];
    for (let k = 0; k < messages; k++) {
      const r = await this.profile.publisher(payload(this.seq++, cmd.size || 64), 0);
      if (r.status >= 300) errors.push(`${r.status} ${r.body.trim().slice(0, 80)}`);
    }
    const published = nowUs();
    await this.drain(expected, deadline, (cmd.quiet_s || 10) * 1000);
    const rec = this.recorder;
    const span = (rec.lastUs - t0) / 1e6;
    return {
      subscribers: live,
      messages,
      expected,
      delivered: rec.total,
      publish_s: (published - t0) / 1e6,
      span_s: span,
      rate: span > 0 ? rec.total / span : null,
      ...rec.percentiles(),
      publish_errors: errors.slice(0, 5),
      first_seq: firstSeq,
    };
  }

  /** K senders publish at a steady total rate for a while; everyone receives. */
  async chat(cmd) {
    const live = this.live();
    const senders = cmd.senders || 5;
    const rate = cmd.rate || 10; // messages per second, all senders together
    const count = Math.max(1, Math.round(rate * (cmd.duration_s || 10)));
    const expected = live * count;
    this.recorder.reset(expected + 16);
    const deadline = Date.now() + ((cmd.duration_s || 10) + (cmd.timeout_s || 30)) * 1000;
    const interval = (1000 * senders) / rate;
    const errors = [];
    let sent = 0;
    const t0 = Date.now();
    const sender = async (k) => {
      // Sender k sends its share on a fixed schedule, offset so the senders interleave.
      const share = Math.floor(count / senders) + (k < count % senders ? 1 : 0);
      for (let j = 0; j < share && Date.now() < deadline; j++) {
        const due = t0 + (k * interval) / senders + j * interval;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        try {
          const r = await this.profile.publisher(payload(this.seq++, cmd.size || 64), k);
          if (r.status >= 300) errors.push(`${r.status} ${r.body.trim().slice(0, 80)}`);
          else sent++;
        } catch (e) {
          errors.push(String(e));
        }
      }
    };
    await Promise.all(Array.from({ length: senders }, (_, k) => sender(k)));
    const sendSeconds = (Date.now() - t0) / 1000;
    await this.drain(live * sent, deadline, (cmd.quiet_s || 10) * 1000);
    return {
      subscribers: live,
      senders,
      rate,
      sent,
      send_s: sendSeconds,
      achieved_rate: sent / sendSeconds,
      expected: live * sent,
      delivered: this.recorder.total,
      ...this.recorder.percentiles(),
      publish_errors: errors.slice(0, 5),
    };
  }

  status() {
    return { ready: this.readyCount, failed: this.failedCount, closed: this.closedCount, live: this.live(),
      streams_ended: this.streamsEnded, polls: this.polls, failures: this.failures };
  }

  close() {
    for (const s of this.subs) s.close();
    return { closed: this.subs.length };
  }
}

function raiseFileLimit() {
  // Node cannot call setrlimit itself; the orchestrator starts it with the soft limit
  // raised to the hard one. Report what it got so a low limit is visible.
  try {
    const limits = fs.readFileSync('/proc/self/limits', 'utf8');
    const m = /Max open files\s+(\d+)/.exec(limits);
    return m ? +m[1] : null;
  } catch (e) {
    return null;
  }
}

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const gen = new Generator(spec);
  const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
  out({ event: 'started', pid: process.pid, nofile: raiseFileLimit() });
  const rl = readline.createInterface({ input: process.stdin });
  // Commands run one at a time, in order.
  let chain = Promise.resolve();
  rl.on('line', (line) => {
    chain = chain.then(async () => {
      const cmd = JSON.parse(line);
      try {
        let result;
        if (cmd.cmd === 'prepare') result = await gen.measured(() => gen.prepare());
        else if (cmd.cmd === 'connect') result = await gen.measured(() => gen.connect(cmd));
        else if (cmd.cmd === 'fanout') result = await gen.measured(() => gen.fanout(cmd));
        else if (cmd.cmd === 'chat') result = await gen.measured(() => gen.chat(cmd));
        else if (cmd.cmd === 'pages') result = await gen.measured(() => gen.members.pages(cmd));
        else if (cmd.cmd === 'join') result = await gen.measured(() => gen.members.join(cmd));
        else if (cmd.cmd === 'steady') result = await gen.measured(() => gen.members.steady(cmd));
        else if (cmd.cmd === 'probe') result = await gen.measured(() => gen.members.probe(cmd));
        else if (cmd.cmd === 'idle') result = await gen.measured(async () => { await sleep(cmd.seconds * 1000); return gen.status(); });
        else if (cmd.cmd === 'status') result = gen.status();
        else if (cmd.cmd === 'close') {
          out({ event: 'close', ...gen.close() });
          setTimeout(() => process.exit(0), 200);
          return;
        } else throw new Error(`unknown command ${cmd.cmd}`);
        out({ event: cmd.cmd, ...result });
      } catch (e) {
        out({ event: 'error', cmd: cmd.cmd, error: String(e && e.stack ? e.stack : e) });
      }
    });
  });
  rl.on('close', () => {
    // stdin ended (the orchestrator went away or sent its last command): finish, then exit.
    chain.then(() => {
      gen.close();
      setTimeout(() => process.exit(0), 200);
    });
  });
}

main();
