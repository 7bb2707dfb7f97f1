"""The conversation view: groups by sender, day separators, times, links, quiet presence
lines (with and without the coalesced `presence` field), and hostile text kept as text."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta

from tests.e2e.base import BrowserTestCase, localhost
from tests.e2e.support import ChatPage

EVENTS_JS = """() => Array.from(document.querySelectorAll('#box .event'), e => ({
    id: Number(e.dataset.id), first: e.classList.contains('first'),
    kind: e.classList.contains('message') ? 'message' : 'system',
    line: e.querySelector('.line').textContent}))"""
DAYS_JS = "() => Array.from(document.querySelectorAll('#box .day'), e => e.textContent)"


def local_times() -> dict[str, float]:
    """Event times (seconds) on three local days: three days ago, yesterday, today."""
    now = datetime.now().astimezone()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = max(midnight + timedelta(seconds=30), now - timedelta(seconds=90))
    yesterday = midnight - timedelta(hours=15)   # 09:00 yesterday
    return {
        "old": (midnight - timedelta(days=3) + timedelta(hours=12)).timestamp(),
        "y0": yesterday.timestamp(),
        "y1": (yesterday + timedelta(minutes=2)).timestamp(),
        "y2": (yesterday + timedelta(minutes=30)).timestamp(),
        "t0": today.timestamp(),
        "t1": today.timestamp() + 1,
    }


class ConversationTests(BrowserTestCase):
    def open_with_history(self, base: str, events: list[dict]) -> ChatPage:
        """A newcomer's page whose /history answer is `events` (the daemon's other answers
        are real)."""
        context = self.browser.context(viewport={"width": 1280, "height": 800})
        body = json.dumps({"events": events})
        context.route(re.compile(r".*/history\?limit=50$"),
                      lambda route: route.fulfill(status=200, content_type="application/json", body=body))
        return ChatPage(context, base)

    def test_groups_day_separators_and_times(self) -> None:
        daemon = self.start_daemon()
        t = local_times()
        events = [
            {"id": 1, "time": t["old"], "payload": "<b>ann</b> old news"},
            {"id": 2, "time": t["y0"], "payload": "<b>ben</b> morning"},
            {"id": 3, "time": t["y1"], "payload": "<b>ben</b> still morning"},
            {"id": 4, "time": t["y2"], "payload": "<b>ben</b> half an hour later"},
            {"id": 5, "time": t["t0"], "payload": "ann, ben and 37 others joined",
             "presence": {"joined": ["ann", "ben"], "left": [], "joined_count": 39, "left_count": 0}},
            {"id": 6, "time": t["t1"], "payload": "<b>ann</b> today"},
        ]
        page = self.open_with_history(daemon.url, events)
        page.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 6")
        shown = page.page.evaluate(EVENTS_JS)
        self.assertEqual([(e["id"], e["first"], e["line"]) for e in shown], [
            (1, True, "ann old news"),
            (2, True, "ben morning"),
            (3, False, "ben still morning"),         # grouped under ben's name
            (4, True, "ben half an hour later"),     # a new group after a pause
            (5, True, "ann, ben and 37 others joined"),
            (6, True, "ann today"),
        ])
        days = page.page.evaluate(DAYS_JS)
        self.assertEqual(days[1:], ["Yesterday", "Today"])
        old_day = datetime.fromtimestamp(t["old"]).astimezone()
        self.assertIn(str(old_day.day), days[0])
        self.assertNotIn(days[0], ("Today", "Yesterday"))

        # Only a group's first message shows its sender; each keeps it for screen readers.
        senders = page.page.evaluate(
            "() => Array.from(document.querySelectorAll('#box .event.message .sender'),"
            " s => s.getBoundingClientRect().width > 2)")
        self.assertEqual(senders, [True, True, False, True, True])

        # The time: HH:MM, the full date in its title, shown on hover inside a group.
        when = datetime.fromtimestamp(t["y1"]).astimezone()
        third = page.page.locator('#box .event[data-id="3"]')
        self.assertEqual(third.locator("time").text_content(), when.strftime("%H:%M"))
        self.assertIn(str(when.year), third.locator("time").get_attribute("title"))
        opacity = "() => getComputedStyle(document.querySelector('#box .event[data-id=\"3\"] time')).opacity"
        page.page.mouse.move(0, 0)
        self.assertEqual(page.page.evaluate(opacity), "0")
        third.hover()
        self.assertEqual(page.page.evaluate(opacity), "1")

        # The coalesced presence line is quiet: smaller and muted, names isolated.
        presence = page.page.locator('#box .event[data-id="5"]')
        self.assertIn("system", presence.get_attribute("class"))
        self.assertEqual(presence.locator("bdi").all_text_contents(), ["ann", "ben"])
        sizes = page.page.evaluate(
            "() => [document.querySelector('#box .event[data-id=\"5\"] .line'),"
            " document.querySelector('#box .event[data-id=\"6\"] .line')]"
            ".map(e => parseFloat(getComputedStyle(e).fontSize))")
        self.assertLess(sizes[0], sizes[1])
        self.assertPageClean(page)

    def test_day_labels_follow_midnight(self) -> None:
        """A page left open past midnight: yesterday's "Today" becomes "Yesterday"."""
        daemon = self.start_daemon()
        ben = self.open_page(daemon.url)
        ben.join("ben")
        ben.say("late at night")
        now = datetime.now().astimezone()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        before_midnight = midnight - timedelta(minutes=1)
        context = self.browser.context()

        def yesterday(route) -> None:
            # The events so far happened just before midnight.
            response = route.fetch()
            data = response.json()
            for event in data["events"]:
                event["time"] = (before_midnight - timedelta(seconds=30)).timestamp()
            route.fulfill(response=response, body=json.dumps(data))

        context.route(re.compile(r".*/history\?limit=50$"), yesterday)
        page = context.new_page()
        page.clock.set_fixed_time(before_midnight)   # the browser's clock; timers keep running
        page.goto(f"{localhost(daemon.url)}/static/chat.html")
        page.wait_for_function("() => document.querySelectorAll('#box .event').length === 2")
        self.assertEqual(page.evaluate(DAYS_JS), ["Today"])
        page.clock.set_fixed_time(now)               # midnight passes
        page.fill("#nickname", "ann")
        page.click("#nickbutton")
        ben.say("good morning")
        page.wait_for_function("() => document.querySelectorAll('#box .event').length === 4")
        self.assertEqual(page.evaluate(DAYS_JS), ["Yesterday", "Today"])

    def test_groups_live_in_two_windows(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url))
        ben = self.open_page(daemon.url)
        ann.join("ann")
        ben.join("ben")
        ann.say("one")
        ann.say("two")
        ben.say("three")
        ann.say("four")
        expected = ["ann joined", "ben joined", "ann one", "ann two", "ben three", "ann four"]
        for page in (ann, ben):
            page.wait_lines(expected)
            shown = page.page.evaluate(EVENTS_JS)
            self.assertEqual([e["first"] for e in shown if e["kind"] == "message"], [True, False, True, True])
            self.assertEqual(page.page.evaluate(DAYS_JS), ["Today"])
        own = "() => Array.from(document.querySelectorAll('#box .event.own .line'), e => e.textContent)"
        self.assertEqual(ann.page.evaluate(own), ["ann one", "ann two", "ann four"])
        self.assertEqual(ben.page.evaluate(own), ["ben three"])

    def test_links(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url))
        ben = self.open_page(daemon.url)
        ann.join("ann")
        ben.join("ben")
        text = ('see https://example.org/a?b=1&c=2, (also http://example.com/x_(y)) and javascript:alert(1)'
                ' or <a href="https://evil.example">z</a> and https://example.org/"onmouseover=alert(1)'
                ' ftp://example.org/f data:text/html,<script>alert(1)</script> HTTPS://EXAMPLE.ORG/UP.')
        ann.say(text)
        for page in (ann, ben):
            page.wait_lines(["ann joined", "ben joined", "ann " + text])
            anchors = page.page.evaluate(
                "() => Array.from(document.querySelectorAll('#box a'), a =>"
                " [a.getAttribute('href'), a.textContent, a.rel, a.target])")
            rel = "noopener noreferrer"
            self.assertEqual(anchors, [
                ["https://example.org/a?b=1&c=2", "https://example.org/a?b=1&c=2", rel, "_blank"],
                ["http://example.com/x_(y)", "http://example.com/x_(y)", rel, "_blank"],
                ["https://evil.example", "https://evil.example", rel, "_blank"],
                ["https://example.org/", "https://example.org/", rel, "_blank"],
                ["HTTPS://EXAMPLE.ORG/UP", "HTTPS://EXAMPLE.ORG/UP", rel, "_blank"],
            ])
            counts = page.page.evaluate(
                "() => ({script: document.querySelectorAll('#box script').length,"
                " other: document.querySelectorAll('#box *:not(div):not(p):not(span):not(bdi):not(a)"
                ":not(time):not(button)').length})")
            self.assertEqual(counts, {"script": 0, "other": 0})
        self.assertPageClean(ann, ben)

    def test_right_to_left_text_stays_inside_its_name_or_message(self) -> None:
        daemon = self.start_daemon()
        # A right-to-left name (bidi controls in names are refused with 400, see
        # test_security_hostile); a right-to-left override stays allowed in messages.
        rlo = "\u05e9\u05d9\u05e8\u05d4"
        one = self.open_page(localhost(daemon.url))
        two = self.open_page(daemon.url)
        one.join(rlo)
        two.join("ann")
        one.say("\u202ereversed?")
        one.say("W" * 4096)
        two.say("שלום https://example.org/שלום")
        for page in (one, two):
            page.wait_lines([f"{rlo} joined", "ann joined", f"{rlo} \u202ereversed?", f"{rlo} " + "W" * 4096,
                             "ann שלום https://example.org/שלום"])
            # " joined" is drawn to the right of the isolated name, not reversed before it.
            order = page.page.evaluate(
                """() => {
                    const line = document.querySelector('#box .event.system .line');
                    const name = line.querySelector('bdi');
                    const range = document.createRange();
                    range.selectNodeContents(line.lastChild);
                    return [name.getBoundingClientRect().right, range.getBoundingClientRect().left,
                            line.lastChild.textContent];
                }""")
            self.assertEqual(order[2], " joined")
            self.assertGreaterEqual(order[1], order[0] - 1)
            # The sender stays left of its message; the time stays at the right.
            layout = page.page.evaluate(
                """() => Array.from(document.querySelectorAll('#box .event.message'), e => {
                    const box = document.getElementById('box').getBoundingClientRect();
                    const s = e.querySelector('.sender').getBoundingClientRect();
                    const t = e.querySelector('time').getBoundingClientRect();
                    return {dir: e.querySelector('.text').dir, senderLeft: s.left - box.left,
                            timeRight: box.right - t.right, width: e.getBoundingClientRect().width,
                            boxWidth: box.width};
                })""")
            for item in layout:
                self.assertEqual(item["dir"], "auto")
                self.assertLess(item["senderLeft"], 40)
                self.assertLess(item["timeRight"], 40)
                self.assertLessEqual(item["width"], item["boxWidth"])
            self.assertEqual(page.page.locator("#members li bdi").count(), 2)
            # 4 KiB of one word wraps: nothing scrolls sideways.
            widths = page.page.evaluate(
                "() => [document.scrollingElement.scrollWidth, window.innerWidth,"
                " document.getElementById('box').scrollWidth, document.getElementById('box').clientWidth]")
            self.assertLessEqual(widths[0], widths[1])
            self.assertLessEqual(widths[2], widths[3])
        self.assertPageClean(one, two)


class PresenceFieldTests(BrowserTestCase):
    """The coming `presence` field of coalesced join/leave events, on live events."""

    def test_live_presence_field_updates_the_member_list(self) -> None:
        daemon = self.start_daemon()
        context = self.browser.context()
        # What the daemon will send once join/leave notices are coalesced: the page's
        # long-poll answers get a `presence` field on the "NAME joined" events.
        fields = {
            "ben joined": {"joined": ["ben", "ghost"], "left": [], "joined_count": 2, "left_count": 0},
            "cy joined": {"joined": ["cy"], "left": ["ghost"], "joined_count": 40, "left_count": 1},
        }

        def add_presence(route) -> None:
            response = route.fetch()
            messages = response.json()
            for msg in messages:
                if msg.get("type") == "event" and msg.get("data") in fields:
                    msg["presence"] = fields[msg["data"]]
            route.fulfill(response=response, body=json.dumps(messages))

        context.route(re.compile(r".*/cherrychat\?.*transport=longpoll.*"), add_presence)
        ann = ChatPage(context, daemon.url, "longpoll")
        who: list[str] = []
        ann.page.on("request", lambda r: who.append(r.url) if r.url.endswith("/who") else None)
        ann.join("ann")
        members = "() => Array.from(document.querySelectorAll('#members li'), e => e.textContent)"
        ann.wait_lines(["ann joined"])   # a line without the field: the page asks /who
        ann.page.wait_for_function(f"() => JSON.stringify(({members})()) === '[\"ann\"]'")
        time.sleep(0.5)   # let the /who requests of joining finish
        settled = len(who)

        ben = self.open_page(localhost(daemon.url))
        ben.join("ben")
        # Applied from the field: "ghost" is in no /who answer.
        ann.page.wait_for_function(f"() => JSON.stringify(({members})()) === '[\"ann\",\"ben\",\"ghost\"]'")
        self.assertEqual(len(who), settled)

        cy = self.open_page(localhost(daemon.url))
        cy.join("cy")
        # 40 joined but one name listed: the page asks /who once, which knows no ghost.
        ann.page.wait_for_function(f"() => JSON.stringify(({members})()) === '[\"ann\",\"ben\",\"cy\"]'")
        self.assertEqual(len(who), settled + 1)
        ann.wait_lines(["ann joined", "ben joined", "cy joined"])
        time.sleep(0.5)
        self.assertEqual(len(who), settled + 1)
        self.assertPageClean(ann)
