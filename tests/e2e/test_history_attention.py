"""Reading back (older history when scrolled to the top, without jumping) and attention (the
"new messages" line, jump to latest, unread count in the title, the favicon)."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost

POST_MESSAGES = """async ([from, to]) => {
    for (let i = from; i <= to; i++) {
        const r = await fetch('/msg', {method: 'POST',
            body: new URLSearchParams({user: 'ben', msg: 'message ' + i, session: '0'})});
        if (r.status !== 200) throw new Error('msg ' + i + ': ' + r.status);
    }
}"""
IDS_JS = "() => Array.from(document.querySelectorAll('#box .event'), e => Number(e.dataset.id))"
AT_BOTTOM = ("() => { const b = document.getElementById('box');"
             " return b.scrollHeight - b.scrollTop - b.clientHeight < 2; }")


class OlderHistoryTests(BrowserTestCase):
    def test_scrolling_up_loads_older_messages_without_jumping(self) -> None:
        daemon = self.start_daemon(extra=["--rate-burst", "200"])
        ben = self.open_page(daemon.url)
        ben.join("ben")
        ben.page.evaluate(POST_MESSAGES, [1, 120])   # ids 2 to 121
        ann = self.open_page(localhost(daemon.url), viewport={"width": 1280, "height": 800})
        ann.join("ann")
        page = ann.page
        page.wait_for_function("() => document.querySelectorAll('#box .event').length === 51")
        self.assertEqual(page.evaluate(IDS_JS), list(range(72, 123)))
        self.assertTrue(page.is_visible("#older"))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url) if "/history" in r.url else None)

        for expected_first, count in ((22, 101), (1, 122)):
            # What the reader looks at before the load must stay where it is.
            before = page.evaluate(
                """() => { const box = document.getElementById('box');
                    box.scrollTop = 0;
                    const first = document.querySelector('#box .event');
                    return {id: first.dataset.id,
                            top: first.getBoundingClientRect().top - box.getBoundingClientRect().top}; }""")
            page.wait_for_function(f"() => document.querySelectorAll('#box .event').length === {count}")
            after = page.evaluate(
                """id => { const box = document.getElementById('box');
                    const el = document.querySelector(`#box .event[data-id="${id}"]`);
                    return el.getBoundingClientRect().top - box.getBoundingClientRect().top; }""",
                before["id"])
            self.assertLessEqual(abs(after - before["top"]), 2, (after, before))
            ids = page.evaluate(IDS_JS)
            self.assertEqual(ids[0], expected_first)
            self.assertEqual(ids, sorted(set(ids)))   # in order, nothing twice
        self.assertEqual(page.evaluate(IDS_JS), list(range(1, 123)))
        self.assertEqual(len([u for u in requests if "before=" in u]), 2)
        self.assertTrue(page.is_visible("#history-start"))
        self.assertFalse(page.is_visible("#older"))
        # One day separator, however many pages were joined.
        self.assertEqual(page.evaluate("() => document.querySelectorAll('#box .day').length"), 1)
        # At the start, scrolling up again asks for nothing more.
        page.evaluate("() => { document.getElementById('box').scrollTop = 10; }")
        page.evaluate("() => { document.getElementById('box').scrollTop = 0; }")
        page.wait_for_timeout(300)
        self.assertEqual(len([u for u in requests if "before=" in u]), 2)

        # Live messages keep arriving at the end meanwhile.
        ben.say("still here")
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 123")
        self.assertPageClean(ann, ben)


class AttentionChecks:
    transport: str | None = None

    def test_new_messages_marker_and_jump_to_latest(self) -> None:
        daemon = self.start_daemon(extra=["--rate-burst", "100"])
        ann = self.open_page(localhost(daemon.url), self.transport, viewport={"width": 900, "height": 600})
        ben = self.open_page(daemon.url, self.transport)
        ann.join("ann")
        ben.join("ben")
        ben.page.evaluate(POST_MESSAGES, [1, 30])
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 32")
        ann.page.wait_for_function(AT_BOTTOM)
        self.assertFalse(ann.page.is_visible("#jump"))
        self.assertEqual(ann.page.locator(".new-marker").count(), 0)

        ann.page.evaluate("() => { document.getElementById('box').scrollTop = 100; }")
        ben.say("are you there?")
        ann.page.locator("#jump").wait_for(state="visible")
        self.assertEqual(ann.page.text_content("#jump"), "1 new message ↓")
        ben.say("hello?")
        ann.page.wait_for_function("() => document.getElementById('jump').textContent === '2 new messages ↓'")
        # The line sits right before the first message not seen.
        after_marker = ann.page.evaluate(
            "() => document.querySelector('.new-marker').nextElementSibling.querySelector('.line').textContent")
        self.assertEqual(after_marker, "ben are you there?")
        self.assertEqual(ann.page.evaluate("() => document.getElementById('box').scrollTop"), 100)

        ann.page.click("#jump")
        ann.page.wait_for_function(AT_BOTTOM)
        self.assertFalse(ann.page.is_visible("#jump"))
        ann.page.wait_for_function("() => document.activeElement.id === 'chat'")
        # Scrolling to the end by hand hides the button too.
        ann.page.evaluate("() => { document.getElementById('box').scrollTop = 0; }")
        ben.say("once more")
        ann.page.locator("#jump").wait_for(state="visible")
        self.assertEqual(ann.page.locator(".new-marker").count(), 1)   # one line, moved
        ann.page.evaluate("() => { const b = document.getElementById('box'); b.scrollTop = b.scrollHeight; }")
        ann.page.locator("#jump").wait_for(state="hidden")
        self.assertPageClean(ann, ben)

    def test_unread_count_in_the_title_while_hidden(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), self.transport)
        ben = self.open_page(daemon.url, self.transport)
        ann.join("ann")
        ben.join("ben")
        self.assertEqual(ann.page.title(), "CherryChat")
        # The tab goes to the background (headless Chromium keeps every page visible, so
        # the page is told so the way a browser tells it).
        set_hidden = """hidden => {
            Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
            Object.defineProperty(document, 'visibilityState', {configurable: true,
                get: () => hidden ? 'hidden' : 'visible'});
            document.dispatchEvent(new Event('visibilitychange'));
        }"""
        ann.page.evaluate(set_hidden, True)
        ben.say("one")
        ann.wait_lines(["ann joined", "ben joined", "ben one"])
        self.assertEqual(ann.page.title(), "(1) CherryChat")
        ben.say("two")
        ben.say("three")
        ann.wait_lines(["ann joined", "ben joined", "ben one", "ben two", "ben three"])
        self.assertEqual(ann.page.title(), "(3) CherryChat")
        ann.page.evaluate(set_hidden, False)
        self.assertEqual(ann.page.title(), "CherryChat")
        ben.say("four")
        ann.wait_lines(["ann joined", "ben joined", "ben one", "ben two", "ben three", "ben four"])
        self.assertEqual(ann.page.title(), "CherryChat")
        self.assertEqual(ben.page.title(), "CherryChat")


class AttentionTests(AttentionChecks, BrowserTestCase):
    def test_favicon(self) -> None:
        daemon = self.start_daemon()
        context = self.browser.context()
        page = context.new_page()
        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
        page.goto(f"{daemon.url}/static/chat.html")
        page.wait_for_function("() => document.getElementById('members')")
        href = page.evaluate("() => document.querySelector('link[rel=icon]').href")
        answer = page.request.get(href)
        self.assertEqual(answer.status, 200)
        self.assertEqual(answer.headers["content-type"], "image/svg+xml")
        self.assertIn(b"<svg", answer.body())
        page.wait_for_timeout(500)
        self.assertEqual(failed, [])


class WebSocketAttentionTests(AttentionChecks, BrowserTestCase):
    transport = "websocket"


class LongPollAttentionTests(AttentionChecks, BrowserTestCase):
    transport = "longpoll"
