'use strict';
/**
 * The chat as its page uses it: browser sessions load the page (which sets their
 * `cherrychat_session` cookie), `/join` with their own cookie, open the comet connection
 * of their key `uN, 0, /cherrychat`, and members send with `/msg`.
 *
 * Also the two loads built on those members: steady senders at a fixed total rate (the
 * durable-answer scenario) and one well-behaved member sending every 100 ms while others
 * misbehave (the hostile-neighbours scenario). Every loop is bounded by a count and a
 * deadline.
 */

const http = require('http');
const { Samples, nowUs, payload } = require('./recorder');

// Members' requests go through their own keep-alive pool, as a browser keeps one.
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const COOKIE = /cherrychat_session=([^;]+)/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One GET; resolves with status, headers, body and the time it took in ms (never rejects:
 * a failure is status 0 with the error as its body).
 */
function get(target, path, headers = {}, options = {}) {
  const t0 = nowUs();
  return new Promise((resolve) => {
    const req = http.request(
      { host: target.host, port: target.port, method: 'GET', path, headers,
        agent: options.fresh ? false : agent, timeout: options.timeoutMs || 30000 },
      (res) => {
        const parts = [];
        res.on('data', (d) => parts.push(d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
          body: Buffer.concat(parts).toString(), ms: (nowUs() - t0) / 1000 }));
        res.on('error', (e) => resolve({ status: 0, headers: {}, body: String(e), ms: (nowUs() - t0) / 1000 }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, headers: {}, body: e.code || String(e), ms: (nowUs() - t0) / 1000 }));
    req.end();
  });
}

/** Runs fn(0..count-1) with at most `concurrency` at once, none started after `deadline`. */
async function pool(count, concurrency, deadline, fn) {
  let next = 0;
  let cutOff = false;
  const worker = async () => {
    while (next < count) {
      if (Date.now() >= deadline) {
        cutOff = true;
        return;
      }
      await fn(next++);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return cutOff;
}

function tally(statuses, status) {
  statuses[status] = (statuses[status] || 0) + 1;
}

class Members {
  constructor(gen) {
    this.gen = gen;
    this.cookies = [];   // member i's session token
    this.joined = [];    // indices of members whose /join answered 200, ascending
  }

  /** The daemon member i talks to: with several (spec.ports), the one its stream goes to. */
  target(i) {
    return { host: this.gen.host, port: this.gen.portFor(i) };
  }

  cookieHeader(i) {
    return { Cookie: `cherrychat_session=${this.cookies[i]}` };
  }

  /** Member i's /msg with `text`. */
  msg(i, text, options) {
    return get(this.target(i), `/msg?user=u${i}&session=0&msg=${encodeURIComponent(text)}`, this.cookieHeader(i), options);
  }

  /** `n` fresh browser sessions each load the chat page and keep the cookie it sets. */
  async pages(cmd) {
    const t0 = Date.now();
    const statuses = {};
    let bytes = 0;
    this.cookies = new Array(cmd.n);
    const cutOff = await pool(cmd.n, cmd.concurrency || 50, t0 + (cmd.timeout_s || 60) * 1000, async (i) => {
      const r = await get(this.target(i), '/static/chat.html');
      tally(statuses, r.status);
      bytes += r.body.length;
      const m = COOKIE.exec([].concat(r.headers['set-cookie'] || []).join('\n'));
      if (r.status === 200 && m) this.cookies[i] = m[1];
    });
    const ok = this.cookies.filter(Boolean).length;
    return { n: cmd.n, ok, statuses, cut_off: cutOff, page_bytes: ok ? Math.round(bytes / ok) : 0,
      seconds: (Date.now() - t0) / 1000 };
  }

  /** Every session with a cookie joins as `uN` with session label 0. */
  async join(cmd) {
    const t0 = Date.now();
    const statuses = {};
    const joined = [];
    let attempted = 0;
    const cutOff = await pool(this.cookies.length, cmd.concurrency || 50, t0 + (cmd.timeout_s || 60) * 1000, async (i) => {
      if (!this.cookies[i]) return;
      attempted++;
      const r = await get(this.target(i), `/join?user=u${i}&session=0`, this.cookieHeader(i));
      tally(statuses, r.status);
      if (r.status === 200) joined.push(i);
    });
    this.joined = joined.sort((a, b) => a - b);
    return { attempted, joined: joined.length, statuses, cut_off: cutOff, seconds: (Date.now() - t0) / 1000 };
  }

  /** The publisher of the fan-out and chat commands: sender k is the k-th joined member. */
  publisher() {
    return async (body, k) => {
      const r = await this.msg(this.joined[(k || 0) % this.joined.length], body);
      return { status: r.status, body: r.body };
    };
  }

  /**
   * `senders` members send at `rate` messages/s together for `duration_s`, each with one
   * request in flight at most (a sender that falls behind sends as soon as its answer
   * came, without bursting to catch up). Measures each /msg's answer time and what the
   * members receive.
   */
  async steady(cmd) {
    const gen = this.gen;
    const senders = Math.min(cmd.senders || 10, this.joined.length);
    const rate = cmd.rate || 1000;
    const duration = (cmd.duration_s || 10) * 1000;
    const live = gen.live();
    const capacity = Math.ceil((rate * duration) / 1000) + senders;
    gen.recorder.reset(live * capacity + 16);
    const answers = new Samples(capacity);
    const statuses = {};
    const interval = (1000 * senders) / rate;
    const t0 = Date.now();
    const t0us = nowUs();
    const end = t0 + duration;
    let sent = 0;
    let ok = 0;
    const sender = async (k) => {
      let due = t0 + (k * interval) / senders;
      while (Date.now() < end && sent < capacity) {
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        if (Date.now() >= end) break;
        sent++;
        const r = await this.msg(this.joined[k], payload(gen.seq++, cmd.size || 64), { timeoutMs: 10000 });
        answers.push(r.ms);
        tally(statuses, r.status);
        if (r.status === 200) ok++;
        due = Math.max(due + interval, Date.now());
      }
    };
    await Promise.all(Array.from({ length: senders }, (_, k) => sender(k)));
    const sendSeconds = (Date.now() - t0) / 1000;
    const deliveredWhileSending = gen.recorder.total;
    const deadline = Date.now() + (cmd.timeout_s || 60) * 1000;
    await gen.drain(live * ok, deadline, (cmd.quiet_s || 10) * 1000);
    const rec = gen.recorder;
    const span = (rec.lastUs - t0us) / 1e6;
    return {
      subscribers: live, senders, rate, sent, ok, statuses,
      send_s: sendSeconds,
      achieved_rate: ok / sendSeconds,
      answer: answers.percentiles(),
      expected: live * ok,
      delivered: rec.total,
      rate_while_sending: deliveredWhileSending / sendSeconds,
      delivery_rate: span > 0 ? rec.total / span : null,
      ...rec.percentiles(),
    };
  }

  /**
   * The well-behaved client: joined member `member` sends one /msg every `interval_ms`
   * (one in flight at most) and receives it on its own stream; meanwhile a fresh
   * connection asks GET /healthz every `interval_ms`. For `duration_s`.
   */
  async probe(cmd) {
    const gen = this.gen;
    const i = this.joined[cmd.member || 0];
    const interval = cmd.interval_ms || 100;
    const duration = (cmd.duration_s || 5) * 1000;
    const capacity = Math.ceil(duration / interval) + 2;
    const live = gen.live();
    gen.recorder.reset(live * capacity + 16);
    const answers = new Samples(capacity);
    const health = new Samples(capacity);
    const statuses = {};
    const healthStatuses = {};
    const t0 = Date.now();
    const end = t0 + duration;
    let ok = 0;
    let sent = 0;
    const every = async (fn) => {
      let due = t0;
      while (Date.now() < end) {
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        if (Date.now() >= end) break;
        await fn();
        due = Math.max(due + interval, Date.now());
      }
    };
    await Promise.all([
      every(async () => {
        sent++;
        const r = await this.msg(i, payload(gen.seq++, cmd.size || 64), { timeoutMs: 5000 });
        answers.push(r.ms);
        tally(statuses, r.status === 0 ? r.body : r.status);
        if (r.status === 200) ok++;
      }),
      every(async () => {
        const r = await get(gen, '/healthz', {}, { fresh: true, timeoutMs: 5000 });
        health.push(r.ms);
        tally(healthStatuses, r.status === 0 ? r.body : r.status);
      }),
    ]);
    await gen.drain(live * ok, Date.now() + 5000, 2000);
    return {
      subscribers: live, sent, ok, statuses,
      expected: live * ok,
      delivered: gen.recorder.total,
      ...gen.recorder.percentiles(),
      answer: answers.percentiles(),
      healthz: { ...health.percentiles(), statuses: healthStatuses },
    };
  }
}

/** The connection profile of a joined member: its own cookie, the brief's URL, no resume. */
function chatProfile(gen, spec) {
  const members = gen.members;
  return {
    firstRequest(s) {
      const path = `/cherrychat?user=u${s.index}&session=0&transport=${spec.transport}`;
      return { kind: spec.transport === 'websocket' ? 'ws' : 'stream', path, headers: members.cookieHeader(s.index) };
    },
    onOpen() {},
    onText(s, text) {
      if (text.includes('"type":"open"')) s.markReady();
    },
    onPollResponse() {
      return null;
    },
    publisher: members.publisher(),
  };
}

module.exports = { Members, chatProfile, get };
