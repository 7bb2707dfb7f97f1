'use strict';
/**
 * One subscriber connection: a raw TCP socket that speaks just enough HTTP/1.1 and
 * WebSocket to hold a streaming response, a WebSocket, or a chain of long polls.
 *
 * What is said on the connection (paths, headers, when it is ready, what to poll next)
 * comes from a server profile (profiles.js); this module only moves bytes.
 */

const net = require('net');
const { ResponseParser, buildRequest } = require('./httpparse');
const ws = require('./ws');

class Subscriber {
  /**
   * @param {object} gen    the generator (recorder, counters, source addresses)
   * @param {number} index  the subscriber's number, used in user names
   * @param {object} profile
   */
  constructor(gen, index, profile) {
    this.gen = gen;
    this.index = index;
    this.profile = profile;
    this.carry = '';
    this.ready = false;
    this.closed = false;
    this.failed = false;
    this.state = {}; // the profile's per-connection state
    this.socket = null;
  }

  /** Open the connection and send the profile's first request. */
  start() {
    const req = this.profile.firstRequest(this);
    this.kind = req.kind;
    this._open(req);
  }

  _open(req) {
    const socket = net.connect({
      host: this.gen.host,
      port: this.gen.portFor(this.index),
      localAddress: this.gen.sourceAddress(this.index),
    });
    this.socket = socket;
    socket.setNoDelay(true);
    this.parser = new ResponseParser({
      onHeaders: (status, headers) => this._headers(status, headers),
      onBody: (body) => this._body(body),
      onEnd: () => this._end(),
    });
    this.frames = null;
    this.pollBody = [];
    socket.on('connect', () => socket.write(this._serialise(req)));
    socket.on('data', (data) => this._data(data));
    socket.on('error', (err) => this._fail(err.code || String(err)));
    socket.on('close', () => this._closed());
  }

  _serialise(req) {
    const headers = { ...(req.headers || {}) };
    if (req.kind === 'ws') Object.assign(headers, ws.upgradeHeaders());
    return buildRequest(req.method || 'GET', req.path, headers, req.body);
  }

  /** Send another request on the same keep-alive connection (long polls). */
  request(req) {
    this.parser.reset();
    this.pollBody = [];
    this.socket.write(this._serialise(req));
  }

  /** Send one text message over the WebSocket. */
  sendText(text) {
    if (!this.closed) this.socket.write(ws.clientFrame(ws.OP_TEXT, Buffer.from(text)));
  }

  _data(data) {
    if (this.frames !== null) {
      this.frames.feed(data);
      return;
    }
    const rest = this.parser.feed(data);
    if (rest !== null && this.frames !== null && rest.length) this.frames.feed(rest);
  }

  _headers(status, headers) {
    if (this.kind === 'ws') {
      if (status !== 101) return this._fail(`status ${status}`);
      this.frames = new ws.FrameParser((op, payload) => this._frame(op, payload));
      this.profile.onOpen(this, status, headers);
      return;
    }
    if (status < 200 || status >= 300) {
      if (!(this.kind === 'poll' && this.ready)) return this._fail(`status ${status}`);
    }
    this.status = status;
    this.headers = headers;
    if (this.kind === 'stream') this.profile.onOpen(this, status, headers);
  }

  _body(body) {
    if (this.kind === 'poll') {
      this.pollBody.push(body);
      return;
    }
    const text = body.latin1Slice(0, body.length);
    this.gen.recorder.scan(this, text);
    if (!this.ready) this.profile.onText(this, text);
  }

  _end() {
    if (this.kind !== 'poll') {
      // A stream the server ended (xhrstream recycling, shutdown): counted, not reopened.
      this.gen.streamsEnded++;
      return;
    }
    const text = Buffer.concat(this.pollBody).latin1Slice();
    this.pollBody = [];
    this.gen.recorder.scan(this, text);
    this.carry = '';
    this.gen.polls++;
    const next = this.profile.onPollResponse(this, this.status, this.headers, text);
    if (next && !this.closed) this.request(next);
  }

  _frame(opcode, payload) {
    if (opcode === ws.OP_PING) {
      this.socket.write(ws.clientFrame(ws.OP_PONG, payload));
    } else if (opcode === ws.OP_CLOSE) {
      this.socket.write(ws.clientFrame(ws.OP_CLOSE, payload.subarray(0, 2)));
      this.socket.end();
    } else if (opcode === ws.OP_TEXT || opcode === ws.OP_BINARY) {
      const text = payload.latin1Slice(0, payload.length);
      this.gen.recorder.scan(this, text);
      this.carry = '';
      this.profile.onText(this, text);
    }
  }

  /** The profile saw the connection become ready to receive events. */
  markReady() {
    if (!this.ready) {
      this.ready = true;
      this.gen.subscriberReady(this);
    }
  }

  _fail(reason) {
    if (!this.failed) {
      this.failed = true;
      this.gen.subscriberFailed(this, reason);
    }
    if (this.socket) this.socket.destroy();
  }

  _closed() {
    if (!this.closed) {
      this.closed = true;
      this.gen.subscriberClosed(this);
    }
  }

  /** Close the connection now. */
  close() {
    this.closed = true;
    if (this.socket) this.socket.destroy();
  }
}

module.exports = { Subscriber };
