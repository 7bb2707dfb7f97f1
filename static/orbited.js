/*
 * orbited.js: the browser side of CherryChat's comet connection.
 *
 *   var conn = Orbited.connect(callback, user, location, session[, options]);
 *
 * keeps the Orbited tutorial's call: `callback(payload)` runs once per event, in order,
 * with the payload exactly as published (a second argument carries the whole event
 * message, `{id, time, data}`, for pages that want the id or the time).
 *
 * Five transports speak the wire format of docs/PROTOCOL.md: websocket, sse, xhrstream,
 * iframe and longpoll, tried in that order. A transport that fails before its connection
 * ever opened hands over to the next one; once one has worked, the connection sticks to it
 * and reconnects by itself with exponential backoff and jitter, always resuming after the
 * last event id it saw. `?transport=T` in the page URL (or `options.transport`, or a
 * transport name as the 5th argument) forces one transport.
 *
 * The connection object:
 *   conn.onstatus = function (state, transportName, detail) {}
 *       state: "connecting", "open", "reconnecting", "closed" or "error"
 *       (detail, for "error": {status, reason})
 *   conn.onreset = function (id) {}   events were lost: reload /history; live events
 *                                     continue after `id`
 *   conn.transport     name of the transport in use (or being tried)
 *   conn.lastEventId   id of the last event handed to the callback (null before any)
 *   conn.state         the last state reported to onstatus
 *   conn.close()       stop for good
 *
 * Where it connects: to the daemon this script was loaded from, so a page of another
 * origin (the tutorial's app, with `<script src="http://chat.example:8000/static/orbited.js">`)
 * reaches the daemon, not its own origin. Such a page that sets `ORBITED_PORT` (the
 * tutorial's chat.js does) connects to that port on the page's own host name, as the Orbited
 * clients of the tutorial's time did; a page served with this script from one origin (by
 * the daemon, or through a proxy) connects to that origin; an absolute `location` URL is
 * used as it is. Cross-origin requests carry the page's cookies (the daemon answers them
 * for origins listed with `--allowed-origin`); the iframe transport is same-origin only and
 * is skipped then.
 *
 * Plain JavaScript, no dependencies, no build step; works under a strict
 * Content-Security-Policy (no eval, no inline script or style).
 */
(function (global) {
  'use strict';

  /** The origin this script was loaded from: the daemon to connect to. */
  var SCRIPT_ORIGIN = (function () {
    try {
      var script = global.document && global.document.currentScript;
      return script && script.src ? new URL(script.src, global.location.href).origin : null;
    } catch (e) {
      return null;
    }
  })();

  /** Preference order: the most capable transport first. */
  var TRANSPORTS = ['websocket', 'sse', 'xhrstream', 'iframe', 'longpoll'];

  var DEFAULTS = {
    transport: null,      // force one transport by name
    lastEventId: null,    // resume after this id (e.g. the newest event of /history)
    openTimeout: 5000,    // ms a transport may take to deliver its `open` message
    backoffMin: 500,      // ms before the first retry
    backoffMax: 10000,    // ms, the ceiling of the doubling delay
    idleTimeout: 75000,   // ms of total silence (no message, no heartbeat) before a stream
                          // is taken for dead; the server's heartbeat defaults to 25 s
    longpollHeld: 500,    // ms a longpoll request must be held to count as accepted
                          // (refusals answer at once; a late one still stops us)
    probeTimeout: 3000    // ms to wait for the status of a refusal probe
  };

  // ---------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------

  /** The message objects a transport may hand over: anything else is ignored. */
  function parseMessage(text) {
    try {
      var msg = JSON.parse(text);
      return msg && typeof msg === 'object' ? msg : null;
    } catch (e) {
      return null;
    }
  }

  /** The first line of a refusal's plain-text body, which is its reason. */
  function firstLine(text) {
    return String(text || '').split('\n')[0].trim();
  }

  /** The transport forced by `?transport=T` in the page's own URL, if any. */
  function transportFromPageUrl() {
    try {
      return new URLSearchParams(global.location.search).get('transport');
    } catch (e) {
      return null;
    }
  }

  /** Transports this browser can run at all. */
  function supported(name) {
    if (name === 'websocket') return typeof global.WebSocket === 'function';
    if (name === 'sse') return typeof global.EventSource === 'function';
    if (name === 'longpoll') return typeof global.fetch === 'function';
    return true;
  }

  /** Refusals that retrying cannot cure: stop and tell the page instead of hammering. */
  function isFatalStatus(status) {
    return status === 400 || status === 403;
  }

  // ---------------------------------------------------------------------------------
  // Transports. Each is constructed with a URL and a `sink`:
  //   sink.message(obj)  one protocol message arrived
  //   sink.fail(info)    the transport is finished; info = {status, reason, opaque}
  //                      (`opaque`: the browser hides why, e.g. a WebSocket refused)
  //   sink.accepted()    longpoll only: the server is holding our poll
  // and has a close() method that stops it without calling the sink again.
  // ---------------------------------------------------------------------------------

  function WebSocketTransport(url, sink) {
    var wsUrl = new URL(url, global.location.href);
    wsUrl.protocol = wsUrl.protocol === 'https:' ? 'wss:' : 'ws:';
    var ws = new WebSocket(wsUrl.href);
    var done = false;
    ws.onmessage = function (e) {
      var msg = parseMessage(e.data);
      if (msg) sink.message(msg);
    };
    // `error` is always followed by `close`, which is where we report.
    ws.onclose = function () {
      if (done) return;
      done = true;
      // A refused upgrade and a dropped connection look alike from here.
      sink.fail({ opaque: true });
    };
    this.close = function () {
      done = true;
      ws.onmessage = ws.onclose = null;
      try { ws.close(); } catch (e) { /* already closed */ }
    };
  }

  function SseTransport(url, sink) {
    var source = new EventSource(url, { withCredentials: true });
    var done = false;
    function stop() {
      done = true;
      source.onmessage = source.onerror = null;
      source.close();
    }
    source.onmessage = function (e) {
      var msg = parseMessage(e.data);
      if (msg) sink.message(msg);
    };
    source.onerror = function () {
      if (done) return;
      // EventSource would reconnect on its own (sending Last-Event-ID), but we take
      // over: our reconnect puts last_event_id in the URL, backs off, and is visible to
      // the page. A CLOSED source means the server answered with something other than
      // a stream (a refusal, whose status EventSource hides).
      var refused = source.readyState === EventSource.CLOSED;
      stop();
      sink.fail({ opaque: refused });
    };
    this.close = stop;
  }

  function XhrStreamTransport(url, sink) {
    var xhr = new XMLHttpRequest();
    var seen = 0;        // how much of responseText has been split into lines
    var done = false;

    /** Hand over every complete line that arrived since the last call. */
    function readLines() {
      if (xhr.status !== 200) return;
      var text = xhr.responseText;
      var end = text.lastIndexOf('\n');
      if (end < seen) return;
      var lines = text.slice(seen, end).split('\n');
      seen = end + 1;
      for (var i = 0; i < lines.length && !done; i++) {
        if (!lines[i].trim()) continue;   // padding
        var msg = parseMessage(lines[i]);
        if (msg) sink.message(msg);
      }
    }

    xhr.onprogress = readLines;
    xhr.onload = function () {
      if (done) return;
      readLines();
      if (done) return;   // a `reconnect` message already closed us
      done = true;
      if (xhr.status === 200) sink.fail({});   // the stream simply ended
      else sink.fail({ status: xhr.status, reason: firstLine(xhr.responseText) });
    };
    xhr.onerror = function () {
      if (done) return;
      done = true;
      sink.fail({});
    };
    xhr.open('GET', url, true);
    xhr.withCredentials = true;   // the session cookie, when the daemon is another origin
    xhr.send(null);

    this.close = function () {
      done = true;
      xhr.onprogress = xhr.onload = xhr.onerror = null;
      xhr.abort();
    };
  }

  /** Hidden iframes by element, so that `_iframeMessage` finds the transport. */
  var iframeSinks = new Map();

  function IframeTransport(url, sink) {
    var frame = document.createElement('iframe');
    var done = false;
    var self = this;
    frame.hidden = true;   // the `hidden` attribute, not a style: fine under CSP
    frame.title = 'comet connection';
    frame.setAttribute('aria-hidden', 'true');
    frame.tabIndex = -1;
    // The server's document calls parent.Orbited._iframeMessage(frameElement, x).
    iframeSinks.set(frame, function (msg) {
      if (!done && msg && typeof msg === 'object') sink.message(msg);
    });
    // `load` fires when the document has ended: a refusal, an error page, or the end
    // of a stream.
    frame.addEventListener('load', function () {
      if (done) return;
      var reason = '';
      try {
        reason = firstLine(frame.contentDocument.body.textContent);
      } catch (e) {
        // A network error page is not same-origin: nothing to read.
      }
      self.close();
      sink.fail({ opaque: true, reason: reason });
    });
    frame.src = url;
    document.body.appendChild(frame);

    this.close = function () {
      done = true;
      iframeSinks.delete(frame);
      // Leave about:blank first so that the browser drops the streaming request.
      try { frame.src = 'about:blank'; } catch (e) { /* ignore */ }
      if (frame.parentNode) frame.parentNode.removeChild(frame);
    };
  }

  /**
   * One poll after another. The first poll carries last_event_id only when resuming;
   * every later one carries the id of the last event seen and its epoch (read through `resumeParams()`).
   */
  function LongPollTransport(url, sink, resumeParams, heldMs) {
    var controller = null;
    var done = false;
    var heldTimer = null;

    /** The first poll keeps the connection's URL; later ones resume where resumeParams() says. */
    function pollUrl(first) {
      if (first) return url;
      var base = url.replace(/&(last_event_id|epoch)=[^&]*/g, '');
      var params = resumeParams();
      return params == null ? base : base + params;
    }

    function poll(first) {
      if (done) return;
      controller = new AbortController();
      // A resuming poll is held by the server until an event arrives, so it never
      // brings an `open` message quickly; a poll the server holds has been accepted
      // (refusals answer at once).
      clearTimeout(heldTimer);
      heldTimer = setTimeout(function () { if (!done) sink.accepted(); }, heldMs);
      fetch(pollUrl(first), {
        credentials: 'include',
        cache: 'no-store',
        signal: controller.signal
      }).then(function (response) {
        return response.text().then(function (text) {
          return { status: response.status, text: text };
        });
      }).then(function (answer) {
        if (done) return;
        clearTimeout(heldTimer);
        if (answer.status !== 200) {
          done = true;
          sink.fail({ status: answer.status, reason: firstLine(answer.text) });
          return;
        }
        var messages = [];
        try { messages = JSON.parse(answer.text); } catch (e) { /* treat as empty */ }
        if (!Array.isArray(messages)) messages = [];
        sink.accepted();
        for (var i = 0; i < messages.length && !done; i++) {
          if (messages[i] && typeof messages[i] === 'object') sink.message(messages[i]);
        }
        poll(false);
      }).catch(function () {
        if (done) return;
        done = true;
        clearTimeout(heldTimer);
        sink.fail({});
      });
    }

    this.close = function () {
      done = true;
      clearTimeout(heldTimer);
      if (controller) controller.abort();
    };
    poll(true);
  }

  var FACTORIES = {
    websocket: function (url) { return new WebSocketTransport(url, this); },
    sse: function (url) { return new SseTransport(url, this); },
    xhrstream: function (url) { return new XhrStreamTransport(url, this); },
    iframe: function (url) { return new IframeTransport(url, this); },
    longpoll: function (url, conn) {
      return new LongPollTransport(url, this, function () {
        return conn.lastEventId == null ? null : conn.resumeParams();
      }, conn.options.longpollHeld);
    }
  };

  // ---------------------------------------------------------------------------------
  // The connection: picks transports, tracks ids, reconnects.
  // ---------------------------------------------------------------------------------

  function Connection(callback, user, location, session, options) {
    this.callback = callback;
    this.user = String(user);
    this.location = location || '/cherrychat';
    this.session = session == null ? '0' : String(session);
    this.options = Object.assign({}, DEFAULTS, options || {});
    this.lastEventId = this.options.lastEventId == null ? null : Number(this.options.lastEventId);
    this.onstatus = null;
    this.onreset = null;
    this.state = null;
    this.transport = null;
    this.error = null;

    var forced = this.options.transport || transportFromPageUrl();
    this.base = daemonBase(this.location);
    if (forced && FACTORIES.hasOwnProperty(forced)) {
      this.candidates = [forced];
    } else {
      if (forced && global.console) console.warn('orbited.js: unknown transport', forced);
      var target = new URL(this.base + this.location, global.location.href).origin;
      var crossOrigin = target !== global.location.origin;
      this.candidates = TRANSPORTS.filter(function (name) {
        // The stream document of an iframe must reach this page's Orbited: same origin only.
        return supported(name) && !(crossOrigin && name === 'iframe');
      });
    }
    this._index = 0;          // which candidate is being tried
    this._locked = false;     // a transport has opened once: keep using it
    this._failures = 0;       // consecutive failed attempts, for the backoff
    this._current = null;     // the running transport object
    this._opened = false;     // has the running attempt delivered `open`?
    this._timers = {};
    this._closed = false;
    this._lastMessageAt = null;     // when the running stream last said anything
    this._heartbeatInterval = null; // the server's heartbeat interval, once observed
    this._attempt();
  }

  Connection.prototype._setStatus = function (state, detail) {
    this.state = state;
    if (typeof this.onstatus === 'function') {
      try {
        this.onstatus(state, this.transport, detail);
      } catch (e) {
        if (global.console) console.error(e);
      }
    }
  };

  Connection.prototype._clearTimer = function (name) {
    clearTimeout(this._timers[name]);
    delete this._timers[name];
  };

  Connection.prototype._setTimer = function (name, ms, fn) {
    this._clearTimer(name);
    this._timers[name] = setTimeout(fn.bind(this), ms);
  };

  /**
   * The origin to prefix to `location` ('' for the page's own). An absolute location is
   * used as it is. This script loaded from the page's own origin means the daemon serves
   * the page (or a proxy in front of both does): connect there. Loaded from elsewhere,
   * connect to that origin, or, when the page sets `ORBITED_PORT`, to that port on the
   * page's own host name, as the Orbited clients of the tutorial's time did.
   */
  function daemonBase(location) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) return '';
    var page = global.location;
    var origin = SCRIPT_ORIGIN;
    if (!origin || origin === page.origin) return '';
    var port = global.ORBITED_PORT;
    if (port != null && port !== '') {
      var host = page.hostname.indexOf(':') >= 0 ? '[' + page.hostname + ']' : page.hostname;
      origin = new URL(new URL(origin).protocol + '//' + host + ':' + String(port)).origin;
    }
    return origin === page.origin ? '' : origin;
  }

  Connection.prototype.url = function (transport) {
    var url = this.base + this.location +
      (this.location.indexOf('?') < 0 ? '?' : '&') +
      'user=' + encodeURIComponent(this.user) +
      '&session=' + encodeURIComponent(this.session) +
      '&transport=' + encodeURIComponent(transport);
    if (this.lastEventId != null) url += this.resumeParams();
    return url;
  };

  /** Start the current candidate transport. */
  Connection.prototype._attempt = function () {
    if (this._closed) return;
    var name = this.candidates[this._index];
    var conn = this;
    var attempt = {};   // identifies this attempt: late calls from older ones are dropped
    this.transport = name;
    this._opened = false;
    this._attemptToken = attempt;
    this._setStatus(this._locked || this._failures > 0 ? 'reconnecting' : 'connecting');

    var sink = {
      message: function (msg) { if (conn._attemptToken === attempt) conn._message(msg); },
      fail: function (info) { if (conn._attemptToken === attempt) conn._fail(info || {}); },
      accepted: function () { if (conn._attemptToken === attempt) conn._accepted(); }
    };
    this._setTimer('open', this.options.openTimeout, function () {
      // No `open` in time: treat it as a failure before opening.
      this._fail({ timeout: true });
    });
    try {
      this._current = FACTORIES[name].call(sink, this.url(name), this);
    } catch (e) {
      // e.g. a constructor the browser lacks or refuses (mixed content).
      this._current = null;
      this._fail({});
    }
  };

  /** Stop the running transport without reporting anything. */
  Connection.prototype._stopTransport = function () {
    this._attemptToken = null;
    this._clearTimer('open');
    this._clearTimer('idle');
    if (this._current) {
      try { this._current.close(); } catch (e) { /* ignore */ }
      this._current = null;
    }
  };

  /** The transport is known to work: from now on only reconnect, never fall back. */
  Connection.prototype._markOpen = function () {
    if (this._opened) return;
    this._opened = true;
    this._locked = true;
    this._failures = 0;
    this._clearTimer('open');
    this._setStatus('open');
  };

  Connection.prototype._accepted = function () {
    // Only a longpoll calls this: a held (or answered) poll means the server took it.
    this._markOpen();
    this._touch();
  };

  /**
   * Restart the idle watchdog: total silence for too long means a dead stream. Some cuts
   * give no signal at all (a streaming iframe whose connection broke just stays
   * "loading"), so silence is the only sign.
   */
  Connection.prototype._touch = function () {
    this._lastMessageAt = Date.now();
    if (this.transport === 'longpoll') return;   // each poll ends by itself
    this._setTimer('idle', this._idleTimeout(), function () {
      this._stopTransport();
      this._scheduleRetry(false);
    });
  };

  /**
   * The server sends a heartbeat after a stream was idle for its heartbeat interval, so
   * the longest silence before a heartbeat tells us that interval (a timer that fires
   * regardless of traffic makes shorter ones): allow a few of them, never
   * more than options.idleTimeout.
   */
  Connection.prototype._learnHeartbeat = function () {
    if (this._lastMessageAt == null) return;
    var interval = Date.now() - this._lastMessageAt;
    if (this._heartbeatInterval == null || interval > this._heartbeatInterval) {
      this._heartbeatInterval = interval;
    }
  };

  Connection.prototype._idleTimeout = function () {
    var max = this.options.idleTimeout;
    if (this._heartbeatInterval == null) return max;
    return Math.min(max, Math.max(3000, this._heartbeatInterval * 2.5 + 1000));
  };

  Connection.prototype._message = function (msg) {
    if (msg.type === 'heartbeat') this._learnHeartbeat();
    this._touch();
    switch (msg.type) {
      case 'open': return this._onOpen(msg);
      case 'event': return this._onEvent(msg);
      case 'reset': return this._onReset(msg);
      case 'reconnect': return this._onReconnect();
      default: return;   // heartbeat, or a type this client does not know
    }
  };

  /** Where to resume: the last id seen, and the epoch (the history) it was counted in. */
  Connection.prototype.resumeParams = function () {
    var params = '&last_event_id=' + encodeURIComponent(this.lastEventId);
    if (this.epoch != null) params += '&epoch=' + encodeURIComponent(this.epoch);
    return params;
  };

  Connection.prototype._onOpen = function (msg) {
    this._resumeFrom(msg.id, msg.epoch);
    this._markOpen();
  };

  /** An `open` message says "delivery continues after id C": that is where we stand. */
  Connection.prototype._resumeFrom = function (id, epoch) {
    if (typeof id !== 'number') return;
    // The server answers an id from another epoch with a reset, so from here on ids
    // count in the epoch it names.
    if (typeof epoch === 'string') this.epoch = epoch;
    var previous = this.lastEventId;
    this.lastEventId = id;
    // Ids that went backwards mean the server's numbering restarted (its history was
    // wiped): what the page shows no longer matches, so it must reload it.
    if (previous != null && id < previous) this._callReset(id);
  };

  Connection.prototype._onEvent = function (msg) {
    if (typeof msg.id !== 'number') return;
    if (this.lastEventId != null && msg.id <= this.lastEventId) return;   // a repeat
    this.lastEventId = msg.id;
    try {
      this.callback(msg.data, msg);
    } catch (e) {
      // A failing page callback must not break the stream for the events after it.
      if (global.console) console.error(e);
    }
  };

  Connection.prototype._onReset = function (msg) {
    if (typeof msg.id === 'number') this.lastEventId = msg.id;
    this._callReset(this.lastEventId);
  };

  Connection.prototype._callReset = function (id) {
    if (typeof this.onreset !== 'function') return;
    try {
      this.onreset(id);
    } catch (e) {
      if (global.console) console.error(e);
    }
  };

  Connection.prototype._onReconnect = function () {
    // The server closes this stream on purpose: come back at once, it is no error.
    this._stopTransport();
    this._failures = 0;
    this._attempt();
  };

  /** The running transport is finished; decide what comes next. */
  Connection.prototype._fail = function (info) {
    if (this._closed) return;
    var opened = this._opened;
    this._stopTransport();
    if (isFatalStatus(info.status)) return this._giveUp(info.status, info.reason);
    if (!opened && info.opaque) return this._probe(info);
    this._next(opened);
  };

  /** Fall back to the next transport, or retry this one after a pause. */
  Connection.prototype._next = function (opened) {
    if (!opened && !this._locked && this._index + 1 < this.candidates.length) {
      this._index += 1;
      return this._attempt();
    }
    if (!this._locked) this._index = 0;   // none worked yet: start over, after a pause
    this._scheduleRetry(opened);
  };

  Connection.prototype._scheduleRetry = function (opened) {
    if (this._closed) return;
    if (opened) this._failures = 0;
    var delay = Math.min(this.options.backoffMax,
                         this.options.backoffMin * Math.pow(2, this._failures));
    this._failures += 1;
    // Jitter spreads the reconnects of many pages after a daemon restart.
    delay = delay / 2 + Math.random() * delay / 2;
    this._setStatus('reconnecting');
    this._setTimer('retry', delay, this._attempt);
  };

  /**
   * WebSocket, EventSource and iframes hide the HTTP status of a refusal. Ask the server
   * once with one longpoll request, whose status says whether we were refused: a 403 or
   * 400 stops us instead of retrying forever. A longpoll answer is made of ordinary
   * messages (a poll without last_event_id hands over the key's queue), so they are
   * handled like any others and nothing is lost; a resuming poll that the server holds
   * is simply abandoned after a while.
   */
  Connection.prototype._probe = function (info) {
    var conn = this;
    var token = {};
    this._probeToken = token;
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, this.options.probeTimeout);
    this._setStatus(this._locked ? 'reconnecting' : 'connecting');
    fetch(this.url('longpoll'), {
      credentials: 'include',
      cache: 'no-store',
      signal: controller.signal
    }).then(function (response) {
      var status = response.status;
      return response.text().then(function (text) { return { status: status, text: text }; });
    }).then(function (answer) {
      clearTimeout(timer);
      if (conn._closed || conn._probeToken !== token) return;
      if (isFatalStatus(answer.status)) {
        return conn._giveUp(answer.status, firstLine(answer.text) || info.reason);
      }
      if (answer.status === 200) conn._probeMessages(answer.text);
      conn._next(false);
    }, function () {
      clearTimeout(timer);
      if (conn._closed || conn._probeToken !== token) return;
      conn._next(false);
    });
  };

  /** Take the events of a probe's answer; it proves nothing about the transport. */
  Connection.prototype._probeMessages = function (text) {
    var messages = parseMessage(text);
    if (!Array.isArray(messages)) return;
    for (var i = 0; i < messages.length && !this._closed; i++) {
      var msg = messages[i];
      if (!msg || typeof msg !== 'object') continue;
      if (msg.type === 'open') this._resumeFrom(msg.id, msg.epoch);
      else if (msg.type === 'event') this._onEvent(msg);
      else if (msg.type === 'reset') this._onReset(msg);
    }
  };

  Connection.prototype._giveUp = function (status, reason) {
    this._clearTimer('retry');
    this._closed = true;
    this.error = { status: status, reason: reason || '' };
    this._setStatus('error', this.error);
  };

  /** Stop for good: no more callbacks, no reconnects. */
  Connection.prototype.close = function () {
    if (this._closed) return;
    this._stopTransport();
    this._clearTimer('retry');
    this._closed = true;
    this._setStatus('closed');
  };

  // ---------------------------------------------------------------------------------
  // The public object
  // ---------------------------------------------------------------------------------

  var Orbited = global.Orbited || {};

  /**
   * Open a comet connection for the orbit key "user, session, location".
   * The 5th argument is an options object (see DEFAULTS) or a transport name.
   */
  Orbited.connect = function (callback, user, location, session, options) {
    if (typeof options === 'string') options = { transport: options };
    return new Connection(callback, user, location, session, options);
  };

  /** Called by the iframe transport's document for every message. */
  Orbited._iframeMessage = function (frame, msg) {
    var deliver = iframeSinks.get(frame);
    if (deliver) deliver(msg);
  };

  Orbited.TRANSPORTS = TRANSPORTS.slice();
  Orbited.Connection = Connection;
  global.Orbited = Orbited;
})(window);
