/*
 * chat.js: the CherryChat page.
 *
 * The tutorial's flow, kept: type a nickname, join, chat. On top of it: history for
 * newcomers, a member list, a connection status line, rejoining after reconnects, and a
 * remembered nickname.
 *
 * Safety rule of this file: text from the server never becomes HTML. Payloads are parsed
 * with DOMParser (an inert document) and the page is built with textContent only.
 */
(function () {
  'use strict';

  var STORAGE_KEY = 'cherrychat.nickname';
  var HISTORY_LIMIT = 50;
  var LOCATION = '/cherrychat';
  var SESSION = '0';              // the tutorial's session label
  var FOLLOW_SLACK_PX = 48;       // "at the bottom" tolerance for following new messages

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    status: $('status'),
    notice: $('notice'),
    nickform: $('nickform'),
    nickname: $('nickname'),
    box: $('box'),
    members: $('members'),
    memberCount: $('member-count'),
    chatform: $('chatform'),
    chat: $('chat'),
    chatbutton: $('chatbutton')
  };

  var state = {
    nickname: null,       // the nickname we connected with
    joined: false,        // /join answered 200 for it
    conn: null,           // the Orbited connection
    shownMaxId: 0,        // newest event id on screen: nothing at or below it is added again
    buffering: false,     // history is loading: live events wait in `pending`
    pending: [],
    historyRun: 0         // identifies the latest history load; older answers are dropped
  };

  // -------------------------------------------------------------------------------
  // Talking to the server
  // -------------------------------------------------------------------------------

  /** POST form fields; resolves to {status, reason} (reason: the body's first line). */
  function post(path, fields) {
    return fetch(path, {
      method: 'POST',
      body: new URLSearchParams(fields),
      credentials: 'same-origin',
      cache: 'no-store'
    }).then(function (response) {
      return response.text().then(function (text) {
        return { status: response.status, reason: String(text).split('\n')[0].trim() };
      });
    });
  }

  function getJson(path) {
    return fetch(path, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (response) {
        if (!response.ok) throw new Error(path + ': ' + response.status);
        return response.json();
      });
  }

  // -------------------------------------------------------------------------------
  // Notices and status
  // -------------------------------------------------------------------------------

  function showNotice(text) {
    els.notice.textContent = text;
    els.notice.hidden = false;
  }

  function clearNotice() {
    els.notice.hidden = true;
    els.notice.textContent = '';
  }

  var STATUS_TEXT = {
    connecting: function (t) { return 'Connecting… (' + t + ')'; },
    open: function (t) { return 'Connected via ' + t; },
    reconnecting: function (t) { return 'Reconnecting… (' + t + ')'; },
    closed: function () { return 'Not connected'; },
    error: function (t, detail) {
      return 'Disconnected' + (detail && detail.reason ? ': ' + detail.reason : '');
    }
  };

  function setStatus(name, transport, detail) {
    var text = STATUS_TEXT[name] ? STATUS_TEXT[name](transport, detail) : name;
    els.status.textContent = text;
    els.status.className = 'status status-' + name;
    els.status.setAttribute('data-state', name);
    if (transport) els.status.setAttribute('data-transport', transport);
  }

  function setChatEnabled(enabled) {
    els.chat.disabled = !enabled;
    els.chatbutton.disabled = !enabled;
    els.chat.placeholder = enabled ? 'Write a message' : 'Join to chat';
  }

  // -------------------------------------------------------------------------------
  // Payloads to DOM, by text only
  // -------------------------------------------------------------------------------

  /** Classify "NAME joined" / "NAME left"; anything else is plain text. */
  function textItem(text) {
    var m = /^(.+) (joined|left)$/.exec(text);
    return m ? { kind: 'presence', name: m[1], text: text } : { kind: 'text', text: text };
  }

  /**
   * Read a chat payload. `<b>NAME</b> TEXT` is a message from NAME; the parser is an
   * inert document (no script runs, nothing loads) and only its text is used.
   */
  function parsePayload(payload) {
    var body = new DOMParser().parseFromString(String(payload), 'text/html').body;
    var first = body.firstChild;
    if (first && first.nodeName === 'B') {
      var rest = '';
      for (var node = first.nextSibling; node; node = node.nextSibling) rest += node.textContent;
      if (rest.charAt(0) === ' ') rest = rest.slice(1);   // the separator after </b>
      if (rest) return { kind: 'message', sender: first.textContent, text: rest };
      return textItem(first.textContent);   // the tutorial's "<b>NAME joined</b>"
    }
    return textItem(body.textContent);
  }

  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  /** A <time> element for an event time given in seconds since the epoch. */
  function timeElement(seconds) {
    var el = document.createElement('time');
    if (typeof seconds !== 'number' || !isFinite(seconds)) return el;
    var date = new Date(seconds * 1000);
    el.dateTime = date.toISOString();
    el.textContent = pad2(date.getHours()) + ':' + pad2(date.getMinutes());
    el.title = date.toLocaleString();
    return el;
  }

  function eventElement(id, time, payload) {
    var item = parsePayload(payload);
    var div = document.createElement('div');
    var line = document.createElement('span');
    div.className = 'event';
    line.className = 'line';
    if (id != null) div.setAttribute('data-id', String(id));
    if (item.kind === 'message') {
      var sender = document.createElement('span');
      sender.className = 'sender';
      sender.textContent = item.sender;
      line.appendChild(sender);
      line.appendChild(document.createTextNode(' ' + item.text));
      if (state.joined && item.sender === state.nickname) div.classList.add('own');
    } else {
      line.textContent = item.text;
      if (item.kind === 'presence') div.classList.add('system');
    }
    div.appendChild(line);
    div.appendChild(timeElement(time));
    return { element: div, item: item };
  }

  function nearBottom() {
    var box = els.box;
    return box.scrollHeight - box.scrollTop - box.clientHeight <= FOLLOW_SLACK_PX;
  }

  /** Add one event unless it is already shown; follow it if the reader is at the end. */
  function showEvent(id, time, payload) {
    if (typeof id === 'number') {
      if (id <= state.shownMaxId) return null;
      state.shownMaxId = id;
    }
    var follow = nearBottom();
    var built = eventElement(id, time, payload);
    els.box.appendChild(built.element);
    if (follow) els.box.scrollTop = els.box.scrollHeight;
    return built.item;
  }

  // -------------------------------------------------------------------------------
  // History and members
  // -------------------------------------------------------------------------------

  /**
   * Show the room's last events. `fresh` empties the box first (after a reset); else only
   * events newer than what is shown are added. Live events wait until it is done.
   * Resolves to the newest event id shown (or null when none).
   */
  function loadHistory(fresh) {
    var run = ++state.historyRun;
    state.buffering = true;
    return getJson('/history?limit=' + HISTORY_LIMIT).then(function (data) {
      return data && Array.isArray(data.events) ? data.events : [];
    }, function () {
      return [];   // no history is better than no chat
    }).then(function (events) {
      if (run !== state.historyRun) return state.shownMaxId || null;
      if (fresh) {
        els.box.textContent = '';
        state.shownMaxId = 0;
      }
      events.forEach(function (e) { showEvent(e.id, e.time, e.payload); });
      els.box.scrollTop = els.box.scrollHeight;
      flushPending();
      return state.shownMaxId || null;
    });
  }

  function flushPending() {
    var pending = state.pending;
    state.pending = [];
    state.buffering = false;
    pending.forEach(function (msg) { liveEvent(msg.data, msg); });
  }

  function renderMembers(names) {
    els.members.textContent = '';
    names.forEach(function (name) {
      var li = document.createElement('li');
      li.textContent = name;
      if (state.joined && name === state.nickname) li.className = 'me';
      els.members.appendChild(li);
    });
    els.memberCount.textContent = '(' + names.length + ')';
  }

  function refreshMembers() {
    return getJson('/who').then(function (data) {
      renderMembers(data && Array.isArray(data.members) ? data.members.map(String) : []);
    }, function () { /* the list stays as it was */ });
  }

  // -------------------------------------------------------------------------------
  // The comet connection
  // -------------------------------------------------------------------------------

  /** Orbited's callback: one live event. */
  function liveEvent(payload, msg) {
    if (state.buffering) {
      state.pending.push({ data: payload, id: msg.id, time: msg.time });
      return;
    }
    var item = showEvent(msg.id, msg.time, payload);
    if (item && item.kind === 'presence') refreshMembers();
  }

  function onReset() {
    // Events were lost while we were away: show the room as the server has it now.
    loadHistory(true);
    refreshMembers();
  }

  function onConnectionStatus(conn, name, transport, detail) {
    if (conn !== state.conn) return;   // an old connection saying goodbye
    setStatus(name, transport, detail);
    if (name === 'open') {
      // Membership may be gone after a daemon restart: join again (idempotent).
      sendJoin(conn);
    } else if (name === 'error') {
      connectionRefused(detail || {});
    }
  }

  function showTaken() {
    showNotice('The nickname “' + state.nickname + '” is taken. Please pick another one.');
    els.nickname.focus();
    els.nickname.select();
  }

  function connectionRefused(detail) {
    state.joined = false;
    setChatEnabled(false);
    if (detail.status === 403) {
      showTaken();
    } else {
      showNotice('The chat refused the connection' +
                 (detail.reason ? ': ' + detail.reason : '.'));
    }
  }

  function connect(nickname, lastEventId) {
    var conn = Orbited.connect(liveEvent, nickname, LOCATION, SESSION,
                               { lastEventId: lastEventId });
    state.conn = conn;
    conn.onstatus = function (name, transport, detail) {
      onConnectionStatus(conn, name, transport, detail);
    };
    conn.onreset = onReset;
    // The status of the first attempt was reported before onstatus was set.
    setStatus(conn.state || 'connecting', conn.transport);
  }

  function sendJoin(conn) {
    var first = !state.joined;
    post('/join', { user: state.nickname, session: SESSION }).then(function (answer) {
      if (conn !== state.conn) return;
      if (answer.status === 200) return joined(first);
      conn.close();
      state.joined = false;
      setChatEnabled(false);
      if (answer.status === 409 || answer.status === 403) {
        showTaken();
      } else {
        showNotice('Could not join: ' + (answer.reason || 'error ' + answer.status));
      }
      els.nickname.focus();
    }, function () {
      // The daemon is unreachable: the connection reconnects and we join again then.
    });
  }

  function joined(first) {
    state.joined = true;
    clearNotice();
    setChatEnabled(true);
    remember(state.nickname);
    refreshMembers();
    if (first) {
      markOwnMessages();
      els.chat.focus();
    }
  }

  /** History shown before joining could not know which messages are ours. */
  function markOwnMessages() {
    var senders = els.box.querySelectorAll('.event .sender');
    for (var i = 0; i < senders.length; i++) {
      if (senders[i].textContent === state.nickname) {
        senders[i].closest('.event').classList.add('own');
      }
    }
  }

  /** Join the room as `nickname`: history first, then the connection, then /join. */
  function start(nickname) {
    if (state.conn) state.conn.close();
    state.conn = null;
    state.nickname = nickname;
    state.joined = false;
    setChatEnabled(false);
    clearNotice();
    setStatus('connecting', '…');
    loadHistory(false).then(function (lastId) {
      if (state.nickname !== nickname || state.conn) return;   // superseded meanwhile
      connect(nickname, lastId);
    });
  }

  // -------------------------------------------------------------------------------
  // Sending
  // -------------------------------------------------------------------------------

  function sendMessage() {
    var text = els.chat.value;
    if (!text.trim()) return;   // nothing to say: send nothing
    if (!state.joined) return;
    clearNotice();
    // Clear at once so that the next message can be typed while this one travels;
    // a refused message comes back into the field (unless something new is there).
    els.chat.value = '';
    function giveBack(reason) {
      if (els.chat.value === '') els.chat.value = text;
      showNotice('Message not sent: ' + reason);
    }
    post('/msg', { user: state.nickname, msg: text, session: SESSION }).then(function (answer) {
      if (answer.status !== 200) giveBack(answer.reason || 'error ' + answer.status);
    }, function () {
      giveBack('the chat server cannot be reached.');
    });
  }

  // -------------------------------------------------------------------------------
  // The remembered nickname
  // -------------------------------------------------------------------------------

  function remember(nickname) {
    try { localStorage.setItem(STORAGE_KEY, nickname); } catch (e) { /* storage off */ }
  }

  function remembered() {
    try { return localStorage.getItem(STORAGE_KEY); } catch (e) { return null; }
  }

  // -------------------------------------------------------------------------------
  // Wiring
  // -------------------------------------------------------------------------------

  els.nickform.addEventListener('submit', function (e) {
    e.preventDefault();
    var nickname = els.nickname.value.trim();
    if (!nickname) {
      showNotice('Please enter a nickname.');
      els.nickname.focus();
      return;
    }
    els.nickname.value = nickname;
    start(nickname);
  });

  els.chatform.addEventListener('submit', function (e) {
    e.preventDefault();
    sendMessage();
  });

  // Newcomers see the room at once; a remembered nickname rejoins by itself.
  var saved = remembered();
  if (saved) {
    els.nickname.value = saved;
    start(saved);
  } else {
    loadHistory(false);
  }
  refreshMembers();
})();
