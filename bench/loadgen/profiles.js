'use strict';
/**
 * What each server under test expects from a subscriber and a publisher.
 *
 * A profile answers: the first request of a subscriber (and its kind: `stream`, `ws` or
 * `poll`), when the subscriber is ready, what to poll next, and how to publish one
 * payload. Markers inside payloads are found by the recorder, not here.
 */

const crypto = require('crypto');
const { httpRequest } = require('./control');

const TEXT = { 'Content-Type': 'text/plain' };

/** Largest `"id":N` in a CherryChat long-poll answer, or null. */
function maxId(text) {
  let best = null;
  const re = /"id":(\d+)/g;
  let m;
  while ((m = re.exec(text)) !== null) best = Math.max(best ?? 0, +m[1]);
  return best;
}

/**
 * CherryChat: GET /cherrychat?user=uN&session=0&transport=T, published to with POST /event.
 * spec.lastEventId makes every connection start after that id (no backlog).
 */
function cherrychat(gen, spec) {
  const transport = spec.transport;
  const path = (s, last) => {
    let p = `/cherrychat?user=u${s.index}&session=0&transport=${transport}`;
    if (last !== null && last !== undefined) p += `&last_event_id=${last}`;
    return p;
  };
  // A poller keeps the session its first answer set, as a browser does (its nickname is
  // claimed by that session).
  const headers = (s) => (s.state.session ? { Cookie: `cherrychat_session=${s.state.session}` } : {});
  return {
    firstRequest(s) {
      if (transport === 'longpoll') {
        // With a known last id, ask from the one before it: the answer comes at once and
        // shows the poll was registered; later polls are held.
        const last = spec.lastEventId ? spec.lastEventId - 1 : null;
        return { kind: 'poll', path: path(s, last), headers: headers(s) };
      }
      return { kind: transport === 'websocket' ? 'ws' : 'stream', path: path(s, spec.lastEventId), headers: headers(s) };
    },
    onOpen() {},
    onText(s, text) {
      if (text.includes('"type":"open"')) s.markReady();
    },
    onPollResponse(s, status, hdrs, text) {
      const set = /cherrychat_session=([^;\n]+)/.exec(hdrs['set-cookie'] || '');
      if (set) s.state.session = set[1];
      // A refused poll (409, 429, 503) is not retried at once: that would only spin.
      if (status !== 200) return null;
      const id = maxId(text);
      if (id !== null) s.state.last = Math.max(s.state.last ?? 0, id);
      s.markReady();
      return { path: path(s, s.state.last ?? null), headers: headers(s) };
    },
    publisher: cherrychatPublisher(gen, spec),
  };
}

function cherrychatPublisher(gen, spec) {
  const keys = [];
  for (let i = 0; i < spec.n; i++) keys.push(`u${i}, 0, /cherrychat`);
  // The JSON form of POST /event: what a publisher naming thousands of keys sends.
  const auth = { 'Content-Type': 'application/json', Authorization: `Bearer ${spec.token}` };
  return (body) => httpRequest(gen, 'POST', '/event', auth, JSON.stringify({ keys, payload: body }));
}

/** Nchan: /sub subscriber location (EventSource, WebSocket, long-poll), /pub publisher. */
function nchan(gen, spec) {
  const transport = spec.transport;
  return {
    firstRequest() {
      if (transport === 'sse') return { kind: 'stream', path: '/sub', headers: { Accept: 'text/event-stream' } };
      if (transport === 'websocket') return { kind: 'ws', path: '/sub' };
      return { kind: 'poll', path: '/sub' };
    },
    // Nchan says nothing until the first message; readiness is counted at the
    // publisher location (its channel info lists the subscribers).
    onOpen(s) {
      s.markReady();
    },
    onText() {},
    onPollResponse(s, status, hdrs) {
      const headers = {};
      if (status === 200) {
        s.state.since = hdrs['last-modified'];
        s.state.etag = hdrs.etag;
      }
      if (s.state.since) headers['If-Modified-Since'] = s.state.since;
      if (s.state.etag) headers['If-None-Match'] = s.state.etag;
      return { path: '/sub', headers };
    },
    firstPollReady: true,
    publisher: (body) => httpRequest(gen, 'POST', '/pub', TEXT, body),
    async subscriberCount() {
      const r = await httpRequest(gen, 'GET', '/pub', { Accept: 'text/json' });
      const m = /"subscribers"\s*:\s*(\d+)/.exec(r.body);
      return m ? +m[1] : 0;
    },
  };
}

/** python-socketio (Engine.IO 4): polling and websocket transports. */
function socketio(gen, spec) {
  const transport = spec.transport;
  const base = '/socket.io/?EIO=4&transport=';
  const handle = (s, packet) => {
    if (packet === '2') {
      // Engine.IO ping from the server: answer pong or be dropped.
      if (s.kind === 'ws') s.sendText('3');
      else httpRequest(gen, 'POST', `${base}polling&sid=${s.state.sid}`, TEXT, '3').catch(() => {});
    } else if (packet.startsWith('0{')) {
      s.state.sid = JSON.parse(packet.slice(1)).sid;
      if (s.kind === 'ws') s.sendText('40');
    } else if (packet.startsWith('40')) {
      s.markReady();
    }
  };
  return {
    firstRequest() {
      if (transport === 'websocket') return { kind: 'ws', path: `${base}websocket` };
      return { kind: 'poll', path: `${base}polling` };
    },
    onOpen() {},
    onText(s, text) {
      handle(s, text);
    },
    onPollResponse(s, status, hdrs, text) {
      if (status !== 200) return null;
      const first = !s.state.sid;
      for (const packet of text.split('\x1e')) handle(s, packet);
      if (first) {
        // Connect to the default namespace on the side channel, then keep polling.
        httpRequest(gen, 'POST', `${base}polling&sid=${s.state.sid}`, TEXT, '40').catch(() => {});
      }
      return { path: `${base}polling&sid=${s.state.sid}` };
    },
    publisher: (body) => httpRequest(gen, 'POST', '/publish', TEXT, body),
  };
}

/** SockJS on aiohttp: xhr_streaming, eventsource, xhr (polling) and websocket. */
function sockjs(gen, spec) {
  const transport = spec.transport;
  const names = { xhrstream: 'xhr_streaming', sse: 'eventsource', longpoll: 'xhr', websocket: 'websocket' };
  const path = (s) => `/sockjs/000/${s.state.session}/${names[transport]}`;
  return {
    firstRequest(s) {
      s.state.session = crypto.randomBytes(8).toString('hex');
      if (transport === 'websocket') return { kind: 'ws', path: path(s) };
      if (transport === 'sse') return { kind: 'stream', path: path(s) };
      if (transport === 'xhrstream') return { kind: 'stream', method: 'POST', path: path(s) };
      return { kind: 'poll', method: 'POST', path: path(s) };
    },
    onOpen() {},
    onText(s, text) {
      // The open frame: `o` alone in a WebSocket message, or on its own line in a stream.
      if (text === 'o' || /(^|\n|data: )o\r?\n/.test(text)) s.markReady();
    },
    onPollResponse(s, status, hdrs, text) {
      if (status !== 200) return null;
      if (text.startsWith('o')) s.markReady();
      return { method: 'POST', path: path(s) };
    },
    publisher: (body) => httpRequest(gen, 'POST', '/publish', TEXT, body),
  };
}

// Two daemons sharing Redis speak exactly as one; the generator spreads the subscribers.
const PROFILES = { cherrychat, 'cherrychat-redis': cherrychat, nchan, socketio, sockjs };

module.exports = { PROFILES };
