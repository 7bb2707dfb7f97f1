/*
 * chat.js: the CherryChat page.
 *
 * The tutorial's flow, kept: type a nickname, join, chat. On top of it: history for
 * newcomers and further back on demand, messages grouped by sender under day separators,
 * links, a member list kept from presence events, a composer that keeps what it could not
 * send, renaming in one step, "new messages" and unread counts, and a connection status.
 *
 * Safety rule of this file: text from the server never becomes HTML. Payloads are parsed
 * with DOMParser (an inert document), the page is built with textContent and text nodes
 * only, and a link is an anchor whose href is a checked http(s) URL. User text sits in
 * <bdi> or dir="auto" elements, so that no name or message turns the line around it.
 */
(function () {
  'use strict';

  var STORAGE_KEY = 'cherrychat.nickname';
  var HISTORY_LIMIT = 50;
  var LOCATION = '/cherrychat';
  var SESSION = '0';                // the tutorial's session label
  var FOLLOW_SLACK_PX = 48;         // "at the bottom" tolerance for following new messages
  var OLDER_TRIGGER_PX = 80;        // this close to the top, older history loads
  var GROUP_GAP_SECONDS = 5 * 60;   // a sender's messages this close together form a group
  var MAX_MESSAGE_BYTES = 4096;     // the server's limit (docs/PROTOCOL.md)
  var COUNT_FROM_BYTES = 3072;      // the byte count shows from here on
  var TITLE = document.title;

  var $ = function (id) { return document.getElementById(id); };
  var els = {
    status: $('status'),
    toast: $('toast'),
    toastClose: $('toast-close'),
    notice: $('notice'),
    nickform: $('nickform'),
    nickname: $('nickname'),
    nickbutton: $('nickbutton'),
    nickcancel: $('nickcancel'),
    whoami: $('whoami'),
    myname: $('myname'),
    changenick: $('changenick'),
    box: $('box'),
    older: $('older'),
    historyStart: $('history-start'),
    edge: $('history-edge'),
    jump: $('jump'),
    members: $('members'),
    memberCount: $('member-count'),
    chatform: $('chatform'),
    chat: $('chat'),
    chatbutton: $('chatbutton'),
    bytecount: $('bytecount')
  };

  var state = {
    nickname: null,       // the nickname we connected with
    joined: false,        // /join answered 200 for it
    busy: false,          // a rename is under way: nothing is sent meanwhile
    editing: false,       // the nickname form is open to change the name
    conn: null,           // the Orbited connection
    shownMaxId: 0,        // newest event id on screen: nothing at or below it is added again
    oldestId: null,       // oldest event id on screen: older history loads before it
    reachedStart: false,  // /history has nothing older
    loadingOlder: false,
    buffering: false,     // history is loading: live events wait in `pending`
    pending: [],
    historyRun: 0,        // identifies the latest history load; older answers are dropped
    members: [],
    unseen: 0,            // messages that arrived while the reader was scrolled up
    marker: null,         // the "new messages" line, while there is one
    unread: 0             // messages that arrived while the tab was hidden
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
  // Notices (a toast over the conversation: the list never moves) and status
  // -------------------------------------------------------------------------------

  function showNotice(text) {
    els.toast.hidden = false;
    els.notice.textContent = text;
  }

  function clearNotice() {
    els.toast.hidden = true;
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
  // Identity: the nickname form, or "you are ann · change"
  // -------------------------------------------------------------------------------

  function showIdentity() {
    var named = state.joined && !state.editing;
    els.nickform.hidden = named;
    els.whoami.hidden = !named;
    els.myname.textContent = state.nickname || '';
    var renaming = state.editing && state.joined;
    els.nickbutton.textContent = renaming ? 'Rename' : 'Join';
    els.nickcancel.hidden = !renaming;
  }

  /**
   * Focus `el` once the current key event is over: Enter on a button clicks it on keydown,
   * and its keypress would otherwise reach the newly focused field (submitting the
   * nickname form, or adding a line to the composer).
   */
  function focusLater(el, select) {
    setTimeout(function () {
      el.focus();
      if (select) el.select();
    }, 0);
  }

  function openEditor() {
    state.editing = true;
    els.nickname.value = state.nickname || '';
    showIdentity();
    focusLater(els.nickname, true);
  }

  function closeEditor(focusChange) {
    state.editing = false;
    showIdentity();
    if (focusChange) focusLater(els.changenick);
  }

  // -------------------------------------------------------------------------------
  // Payloads to items, by text only
  // -------------------------------------------------------------------------------

  /** Classify a notice: "NAME joined", "NAME left", "OLD is now NEW", or other text. */
  function textItem(text) {
    var m = /^(.+) (joined|left)$/.exec(text);
    if (m) return { kind: 'presence', names: [m[1]], text: text };
    m = /^(.+) is now (.+)$/.exec(text);
    if (m) return { kind: 'rename', names: [m[1], m[2]], text: text };
    return { kind: 'text', names: [], text: text };
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

  /** The item of an event: its payload, plus the `presence` field when the server sent one. */
  function readEvent(payload, presence) {
    var item = parsePayload(payload);
    if (presence && typeof presence === 'object') {
      item.kind = 'presence';
      item.presence = presence;
      item.names = listOf(presence.joined).concat(listOf(presence.left));
    }
    return item;
  }

  function listOf(value) {
    return Array.isArray(value) ? value.map(String) : [];
  }

  // -------------------------------------------------------------------------------
  // Text to DOM: isolated names, safe links
  // -------------------------------------------------------------------------------

  function bdi(text, className) {
    var el = document.createElement('bdi');
    if (className) el.className = className;
    el.textContent = text;
    return el;
  }

  /** `text` with each of `names` (as found, in any order) isolated in a <bdi>. */
  function isolateNames(parent, text, names) {
    var cursor = 0;
    var left = names.filter(function (n) { return n; });
    while (left.length) {
      var best = -1, at = -1;
      for (var i = 0; i < left.length; i++) {
        var found = text.indexOf(left[i], cursor);
        if (found >= 0 && (at < 0 || found < at)) { at = found; best = i; }
      }
      if (best < 0) break;
      if (at > cursor) parent.appendChild(document.createTextNode(text.slice(cursor, at)));
      parent.appendChild(bdi(left[best]));
      cursor = at + left[best].length;
      left.splice(best, 1);
    }
    if (cursor < text.length) parent.appendChild(document.createTextNode(text.slice(cursor)));
  }

  var URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  /** A checked http(s) URL without the punctuation that usually ends a sentence, or null. */
  function trimUrl(candidate) {
    var url = candidate.replace(/[.,;:!?]+$/, '');
    // A closing bracket belongs to the URL only when the URL opened one.
    while (/[)\]]$/.test(url)) {
      var close = url.slice(-1), open = close === ')' ? '(' : '[';
      if (url.split(open).length >= url.split(close).length) break;
      url = url.slice(0, -1);
    }
    try {
      var parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
      return url;
    } catch (e) {
      return null;
    }
  }

  /** Message text as text nodes, with http(s) URLs as anchors; nothing else is parsed. */
  function appendRichText(parent, text) {
    var cursor = 0;
    URL_PATTERN.lastIndex = 0;
    var match;
    while ((match = URL_PATTERN.exec(text)) !== null) {
      var url = trimUrl(match[0]);
      if (!url) continue;
      if (match.index > cursor) parent.appendChild(document.createTextNode(text.slice(cursor, match.index)));
      var a = document.createElement('a');
      a.href = url;
      a.textContent = url;
      a.rel = 'noopener noreferrer';
      a.target = '_blank';
      parent.appendChild(a);
      cursor = match.index + url.length;
      URL_PATTERN.lastIndex = cursor;
    }
    if (cursor < text.length) parent.appendChild(document.createTextNode(text.slice(cursor)));
  }

  // -------------------------------------------------------------------------------
  // Times and days
  // -------------------------------------------------------------------------------

  function pad2(n) {
    return (n < 10 ? '0' : '') + n;
  }

  function dateOf(seconds) {
    return typeof seconds === 'number' && isFinite(seconds) ? new Date(seconds * 1000) : null;
  }

  function dayKey(date) {
    return date ? date.getFullYear() + '-' + (date.getMonth() + 1) + '-' + date.getDate() : '';
  }

  function dayLabel(date) {
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (dayKey(date) === dayKey(today)) return 'Today';
    if (dayKey(date) === dayKey(yesterday)) return 'Yesterday';
    var options = { weekday: 'long', month: 'long', day: 'numeric' };
    if (date.getFullYear() !== today.getFullYear()) options.year = 'numeric';
    return date.toLocaleDateString(undefined, options);
  }

  /** A <time> element: HH:MM, the full date and time on hover. */
  function timeElement(date) {
    var el = document.createElement('time');
    if (!date) return el;
    el.dateTime = date.toISOString();
    el.textContent = pad2(date.getHours()) + ':' + pad2(date.getMinutes());
    el.title = date.toLocaleString(undefined, { dateStyle: 'full', timeStyle: 'medium' });
    return el;
  }

  function daySeparator(date) {
    var div = document.createElement('div');
    div.className = 'day';
    div.setAttribute('data-day', dayKey(date));
    var span = document.createElement('span');
    span.textContent = dayLabel(date);
    div.appendChild(span);
    return div;
  }

  // -------------------------------------------------------------------------------
  // Events to DOM
  // -------------------------------------------------------------------------------

  /**
   * The element of one event. A message's line holds its sender and its text, so that
   * each message reads whole (screen readers, copying); CSS shows the sender only at the
   * top of a group.
   */
  function eventElement(id, time, item) {
    var date = dateOf(time);
    var div = document.createElement('div');
    var line = document.createElement('p');
    div.className = 'event';
    line.className = 'line';
    if (id != null) div.setAttribute('data-id', String(id));
    div.setAttribute('data-day', dayKey(date));
    if (date) div.setAttribute('data-time', String(time));
    if (item.kind === 'message') {
      div.classList.add('message');
      div.setAttribute('data-sender', item.sender);
      line.appendChild(bdi(item.sender, 'sender'));
      line.appendChild(document.createTextNode(' '));
      var text = document.createElement('span');
      text.className = 'text';
      text.dir = 'auto';
      appendRichText(text, item.text);
      line.appendChild(text);
      if (state.joined && item.sender === state.nickname) div.classList.add('own');
    } else {
      div.classList.add('system');
      if (item.kind === 'presence' || item.kind === 'rename') div.classList.add(item.kind);
      isolateNames(line, item.text, item.names);
    }
    div.appendChild(line);
    div.appendChild(timeElement(date));
    return div;
  }

  /** Does `el` continue the group of message `prev` (same sender, same day, soon after)? */
  function continues(prev, el) {
    if (!prev || !el.classList.contains('message') || !prev.classList.contains('message')) return false;
    if (prev.getAttribute('data-sender') !== el.getAttribute('data-sender')) return false;
    if (prev.getAttribute('data-day') !== el.getAttribute('data-day')) return false;
    var a = Number(prev.getAttribute('data-time')), b = Number(el.getAttribute('data-time'));
    return isFinite(a) && isFinite(b) && b - a <= GROUP_GAP_SECONDS;
  }

  function lastEventEl() {
    var node = els.box.lastElementChild;
    return node && node.classList.contains('event') ? node : null;
  }

  function firstEventEl() {
    return els.box.querySelector('.event');
  }

  /** Append one event element after what is shown, with a day separator when needed. */
  function appendElement(el, breakGroup) {
    var prev = lastEventEl();
    var day = el.getAttribute('data-day');
    var prevDay = prev ? prev.getAttribute('data-day') : lastDayShown();
    if (day && day !== prevDay) {
      relabelDays();   // a page left open past midnight: "Today" became "Yesterday"
      els.box.appendChild(daySeparator(new Date(Number(el.getAttribute('data-time')) * 1000)));
      prev = null;
    }
    if (breakGroup || !continues(prev, el)) el.classList.add('first');
    els.box.appendChild(el);
    els.box.classList.remove('empty');
  }

  function relabelDays() {
    var days = els.box.querySelectorAll('.day');
    for (var i = 0; i < days.length; i++) {
      var parts = (days[i].getAttribute('data-day') || '').split('-').map(Number);
      if (parts.length === 3) {
        days[i].firstChild.textContent = dayLabel(new Date(parts[0], parts[1] - 1, parts[2]));
      }
    }
  }

  function lastDayShown() {
    var days = els.box.querySelectorAll('.day');
    return days.length ? days[days.length - 1].getAttribute('data-day') : null;
  }

  function nearBottom() {
    var box = els.box;
    return box.scrollHeight - box.scrollTop - box.clientHeight <= FOLLOW_SLACK_PX;
  }

  function scrollToEnd() {
    els.box.scrollTop = els.box.scrollHeight;
  }

  /**
   * Add one event unless it is already shown. A reader at the end follows it; one who
   * scrolled up gets a "new messages" line and the jump button instead.
   */
  function showEvent(id, time, item, live) {
    if (typeof id === 'number') {
      if (id <= state.shownMaxId) return false;
      state.shownMaxId = id;
      if (state.oldestId == null) state.oldestId = id;
    }
    var own = item.kind === 'message' && state.joined && item.sender === state.nickname;
    // A reader who scrolled up stays where they are, even for their own message.
    var follow = nearBottom();
    var el = eventElement(id, time, item);
    var markNew = live && !follow && !own && item.kind === 'message' && state.unseen === 0;
    if (markNew) placeMarker();
    appendElement(el, markNew);
    if (follow) {
      scrollToEnd();
    } else if (live && item.kind === 'message') {
      state.unseen += 1;
      showJump();
    }
    if (live && item.kind === 'message' && !own && document.hidden) {
      state.unread += 1;
      showUnread();
    }
    return true;
  }

  // -------------------------------------------------------------------------------
  // Attention: "new messages", jump to latest, unread count in the title
  // -------------------------------------------------------------------------------

  function placeMarker() {
    if (state.marker) state.marker.remove();
    var marker = document.createElement('div');
    marker.className = 'new-marker';
    marker.setAttribute('aria-hidden', 'true');
    var span = document.createElement('span');
    span.textContent = 'New messages';
    marker.appendChild(span);
    els.box.appendChild(marker);
    state.marker = marker;
  }

  function showJump() {
    els.jump.hidden = false;
    els.jump.textContent = state.unseen === 1 ? '1 new message ↓' : state.unseen + ' new messages ↓';
  }

  function hideJump() {
    state.unseen = 0;
    els.jump.hidden = true;
  }

  function showUnread() {
    document.title = state.unread > 0 ? '(' + state.unread + ') ' + TITLE : TITLE;
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
      return null;   // no history is better than no chat
    }).then(function (events) {
      if (run !== state.historyRun) return state.shownMaxId || null;
      els.box.setAttribute('aria-busy', 'true');   // one page of history is not read aloud
      if (fresh) {
        clearBox();
      }
      if (events) {
        if (state.oldestId == null && events.length < HISTORY_LIMIT) state.reachedStart = true;
        events.forEach(function (e) { showEvent(e.id, e.time, readEvent(e.payload, e.presence), false); });
      }
      scrollToEnd();
      els.box.removeAttribute('aria-busy');
      showEdge();
      flushPending();
      return state.shownMaxId || null;
    });
  }

  function clearBox() {
    var nodes = Array.prototype.slice.call(els.box.children);
    nodes.forEach(function (node) { if (node !== els.edge) node.remove(); });
    els.box.classList.add('empty');
    state.shownMaxId = 0;
    state.oldestId = null;
    state.reachedStart = false;
    state.marker = null;
    hideJump();
  }

  /** The top of the conversation: a button for older messages, or where history starts. */
  function showEdge() {
    var hadFocus = document.activeElement === els.older;
    var any = !!firstEventEl();
    els.older.hidden = !any || state.reachedStart;
    els.historyStart.hidden = !any || !state.reachedStart;
    // Not `disabled` while loading: a disabled button would drop the keyboard focus.
    els.older.setAttribute('aria-disabled', state.loadingOlder ? 'true' : 'false');
    els.older.textContent = state.loadingOlder ? 'Loading older messages…' : 'Load older messages';
    // A keyboard user whose button went away stays in the conversation.
    if (els.older.hidden && hadFocus) els.box.focus();
  }

  /** Load the page of history before the oldest event shown, keeping the view still. */
  function loadOlder() {
    if (state.loadingOlder || state.reachedStart || state.oldestId == null) return;
    state.loadingOlder = true;
    showEdge();
    var before = state.oldestId;
    getJson('/history?limit=' + HISTORY_LIMIT + '&before=' + before).then(function (data) {
      var events = data && Array.isArray(data.events) ? data.events : [];
      if (state.oldestId !== before) return;   // the box was reloaded meanwhile
      events = events.filter(function (e) { return typeof e.id === 'number' && e.id < before; });
      // What the reader looks at stays where it is: measure it before, put it back after.
      var ref = firstEventEl();
      var refTop = ref.getBoundingClientRect().top;
      els.box.setAttribute('aria-busy', 'true');
      if (events.length < HISTORY_LIMIT) state.reachedStart = true;
      if (events.length) prependEvents(events);
      state.loadingOlder = false;
      showEdge();
      els.box.scrollTop += ref.getBoundingClientRect().top - refTop;
      els.box.removeAttribute('aria-busy');
    }, function () { /* try again on the next scroll */ }).then(function () {
      state.loadingOlder = false;
      showEdge();
    });
  }

  function prependEvents(events) {
    var box = els.box;
    var anchor = els.edge.nextElementSibling;   // the first day separator of what is shown
    var fragment = document.createDocumentFragment();
    var prev = null, prevDay = null;
    events.forEach(function (e) {
      var el = eventElement(e.id, e.time, readEvent(e.payload, e.presence));
      var day = el.getAttribute('data-day');
      if (day && day !== prevDay) {
        fragment.appendChild(daySeparator(new Date(e.time * 1000)));
        prev = null;
      }
      if (!continues(prev, el)) el.classList.add('first');
      fragment.appendChild(el);
      prev = el;
      prevDay = day;
    });
    box.insertBefore(fragment, anchor);
    // Where the old top meets the new part: one day separator, one group.
    if (anchor && anchor.classList && anchor.classList.contains('day') &&
        anchor.getAttribute('data-day') === prevDay) {
      anchor.remove();
      var next = prev && prev.nextElementSibling;
      if (next && continues(prev, next)) next.classList.remove('first');
    }
    state.oldestId = events[0].id;
  }

  function flushPending() {
    var pending = state.pending;
    state.pending = [];
    state.buffering = false;
    pending.forEach(function (msg) { liveEvent(msg.data, msg); });
  }

  function renderMembers(names) {
    state.members = names.slice().sort();
    els.members.textContent = '';
    state.members.forEach(function (name) {
      var li = document.createElement('li');
      li.appendChild(bdi(name));
      if (state.joined && name === state.nickname) li.className = 'me';
      els.members.appendChild(li);
    });
    els.memberCount.textContent = '(' + state.members.length + ')';
  }

  function refreshMembers() {
    return getJson('/who').then(function (data) {
      renderMembers(data && Array.isArray(data.members) ? data.members.map(String) : []);
    }, function () { /* the list stays as it was */ });
  }

  /**
   * Apply a presence change to the member list: who left, then who joined. The lists
   * hold at most 100 names; when a count says there were more, ask /who once.
   */
  function applyPresence(presence) {
    var joined = listOf(presence.joined), left = listOf(presence.left);
    var joinedCount = Number(presence.joined_count), leftCount = Number(presence.left_count);
    if ((isFinite(joinedCount) && joinedCount > joined.length) ||
        (isFinite(leftCount) && leftCount > left.length)) {
      refreshMembers();
      return;
    }
    var members = state.members.filter(function (name) { return left.indexOf(name) < 0; });
    joined.forEach(function (name) { if (members.indexOf(name) < 0) members.push(name); });
    renderMembers(members);
  }

  // -------------------------------------------------------------------------------
  // The comet connection
  // -------------------------------------------------------------------------------

  /** Orbited's callback: one live event (`msg` is the whole event message). */
  function liveEvent(payload, msg) {
    msg = msg || {};
    if (state.buffering) {
      state.pending.push({ data: payload, id: msg.id, time: msg.time, presence: msg.presence });
      return;
    }
    var item = readEvent(payload, msg.presence);
    if (!showEvent(msg.id, msg.time, item, true)) return;
    if (item.presence) applyPresence(item.presence);
    else if (item.kind === 'presence' || item.kind === 'rename') refreshMembers();
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

  function showTaken(nickname) {
    showNotice('The nickname “' + nickname + '” is taken. Please pick another one.');
    els.nickname.focus();
    els.nickname.select();
  }

  function notJoined() {
    state.joined = false;
    state.editing = false;
    setChatEnabled(false);
    showIdentity();
  }

  function connectionRefused(detail) {
    notJoined();
    if (detail.status === 403) {
      showTaken(state.nickname);
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

  function disconnect() {
    var conn = state.conn;
    state.conn = null;
    if (conn) conn.close();
  }

  function sendJoin(conn) {
    var first = !state.joined;
    post('/join', { user: state.nickname, session: SESSION }).then(function (answer) {
      if (conn !== state.conn) return;
      if (answer.status === 200) return joined(first);
      conn.close();
      notJoined();
      if (answer.status === 409 || answer.status === 403) {
        showTaken(state.nickname);
      } else {
        showNotice('Could not join: ' + (answer.reason || 'error ' + answer.status));
        els.nickname.focus();
      }
    }, function () {
      // The daemon is unreachable: the connection reconnects and we join again then.
    });
  }

  function joined(first) {
    state.joined = true;
    state.busy = false;
    if (first) clearNotice();
    setChatEnabled(true);
    remember(state.nickname);
    if (!state.editing) showIdentity();
    refreshMembers();
    if (first) {
      markOwnMessages();
      els.chat.focus();
    }
  }

  /** History shown before joining could not know which messages are ours. */
  function markOwnMessages() {
    var messages = els.box.querySelectorAll('.event.message');
    for (var i = 0; i < messages.length; i++) {
      if (messages[i].getAttribute('data-sender') === state.nickname) messages[i].classList.add('own');
    }
  }

  /** Join the room as `nickname`: history first, then the connection, then /join. */
  function start(nickname) {
    disconnect();
    state.nickname = nickname;
    notJoined();
    clearNotice();
    setStatus('connecting', '…');
    loadHistory(false).then(function (lastId) {
      if (state.nickname !== nickname || state.conn) return;   // superseded meanwhile
      connect(nickname, lastId);
    });
  }

  /**
   * Rename in one step (POST /nick). The connection under the old name closes first, so
   * that it cannot come back under that name once it is free; a refusal reconnects under
   * the old name, losing nothing (the connection resumes after the last event shown).
   */
  function rename(newName) {
    var old = state.nickname;
    if (newName === old) { closeEditor(true); return; }
    state.busy = true;
    setChatEnabled(false);
    disconnect();
    els.nickbutton.disabled = true;
    function resume(nickname) {
      els.nickbutton.disabled = false;
      state.nickname = nickname;
      loadHistory(false).then(function (lastId) {
        if (state.nickname !== nickname || state.conn) return;
        connect(nickname, lastId);
      });
    }
    post('/nick', { user: old, new: newName, session: SESSION }).then(function (answer) {
      if (answer.status === 200) {
        clearNotice();
        remember(newName);
        closeEditor(false);
        state.nickname = newName;
        showIdentity();
        markOwnMessages();
        els.chat.focus();
        resume(newName);
        return;
      }
      if (answer.status === 409) {
        showNotice('The nickname “' + newName + '” is taken. You are still ' + old + '.');
      } else {
        showNotice('Could not change the nickname: ' + (answer.reason || 'error ' + answer.status));
      }
      resume(old);
      els.nickname.focus();
      els.nickname.select();
    }, function () {
      showNotice('Could not change the nickname: the chat server cannot be reached.');
      resume(old);
    });
  }

  // -------------------------------------------------------------------------------
  // The composer
  // -------------------------------------------------------------------------------

  function utf8Length(text) {
    return new TextEncoder().encode(text).length;
  }

  /** Grow the field with its lines (up to its CSS max-height) and count bytes near the limit. */
  function composerChanged() {
    var field = els.chat;
    var follow = nearBottom();   // a growing composer must not hide the newest messages
    field.style.height = 'auto';
    field.style.height = field.scrollHeight + 2 + 'px';
    if (follow) scrollToEnd();
    var bytes = utf8Length(field.value);
    var over = bytes > MAX_MESSAGE_BYTES;
    els.bytecount.textContent = bytes >= COUNT_FROM_BYTES
      ? bytes + ' / ' + MAX_MESSAGE_BYTES + ' bytes' + (over ? ': too long to send' : '')
      : '';
    els.bytecount.classList.toggle('over', over);
    field.setAttribute('aria-invalid', over ? 'true' : 'false');
  }

  function sendMessage() {
    var text = els.chat.value;
    if (!text.trim()) return;   // nothing to say: send nothing
    if (!state.joined || state.busy) return;
    clearNotice();
    if (state.marker) {   // the reader is back in the conversation
      state.marker.remove();
      state.marker = null;
    }
    // Clear at once so that the next message can be typed while this one travels;
    // a refused message comes back into the field, before anything typed since.
    els.chat.value = '';
    composerChanged();
    function giveBack(reason) {
      var now = els.chat.value;
      els.chat.value = now ? text + '\n' + now : text;
      composerChanged();
      showNotice('Message not sent: ' + reason);
    }
    post('/msg', { user: state.nickname, msg: text, session: SESSION }).then(function (answer) {
      if (answer.status !== 200) giveBack(answer.reason || 'error ' + answer.status);
    }, function () {
      giveBack('the chat server cannot be reached. Your text is kept: press Send to try again.');
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
    if (state.editing && state.joined) rename(nickname);
    else start(nickname);
  });

  els.nickform.addEventListener('keydown', function (e) {
    if (e.key === 'Escape' && state.editing) {
      e.preventDefault();
      closeEditor(true);
    }
  });

  els.nickcancel.addEventListener('click', function () { closeEditor(true); });
  els.changenick.addEventListener('click', openEditor);

  els.chatform.addEventListener('submit', function (e) {
    e.preventDefault();
    sendMessage();
  });

  els.chat.addEventListener('keydown', function (e) {
    // Enter sends; Shift+Enter is a new line; Enter that ends an IME composition is not a send.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendMessage();
    }
  });
  els.chat.addEventListener('input', composerChanged);

  els.toastClose.addEventListener('click', function () {
    clearNotice();
    focusLater(els.chat.disabled ? els.nickname : els.chat);
  });

  els.older.addEventListener('click', loadOlder);

  els.jump.addEventListener('click', function () {
    scrollToEnd();
    hideJump();
    focusLater(els.chat.disabled ? els.box : els.chat);
  });

  els.box.addEventListener('scroll', function () {
    if (nearBottom()) hideJump();
    if (els.box.scrollTop <= OLDER_TRIGGER_PX) loadOlder();
  }, { passive: true });

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden) {
      state.unread = 0;
      showUnread();
    }
  });

  // Newcomers see the room at once; a remembered nickname rejoins by itself.
  showIdentity();
  composerChanged();
  var saved = remembered();
  if (saved) {
    els.nickname.value = saved;
    start(saved);
  } else {
    loadHistory(false);
  }
  refreshMembers();
})();
