"""The chat page's own features, over the transport orbited.js picks by itself."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost

PHONE = {"width": 360, "height": 740}


class PageTests(BrowserTestCase):
    def test_taken_nickname(self) -> None:
        """A second person asking for a nickname in use is told so, clearly."""
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ann.join("ann")
        other = self.open_page(localhost(daemon.url))
        other.page.fill("#nickname", "ann")
        other.page.click("#nickbutton")
        notice = other.page.locator("#notice")
        notice.wait_for(state="visible")
        self.assertIn("taken", notice.text_content())
        self.assertIn("ann", notice.text_content())
        self.assertTrue(other.page.is_disabled("#chat"))
        # The page stays usable: another nickname works.
        other.join("ann2")
        self.assertFalse(other.page.is_visible("#notice"))
        self.assertPageClean(ann, other)

    def test_empty_message_not_sent(self) -> None:
        """Enter on an empty or blank field sends nothing."""
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ann.join("ann")
        ann.wait_lines(["ann joined"])
        posts: list[str] = []
        ann.page.on("request", lambda r: posts.append(r.url) if "/msg" in r.url else None)
        ann.page.press("#chat", "Enter")
        ann.page.fill("#chat", "   ")
        ann.page.press("#chat", "Enter")
        ann.page.click("#chatbutton")
        ann.say("now something")
        ann.wait_lines(["ann joined", "ann now something"])
        self.assertEqual(len(posts), 1, posts)
        self.assertPageClean(ann)

    def test_refused_message_shows_reason(self) -> None:
        """A message the server refuses (too large) shows the server's reason and stays."""
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ann.join("ann")
        too_long = "x" * 5000
        ann.page.fill("#chat", too_long)
        ann.page.press("#chat", "Enter")
        notice = ann.page.locator("#notice")
        notice.wait_for(state="visible")
        self.assertIn("Message not sent", notice.text_content())
        self.assertGreater(len(notice.text_content()), len("Message not sent: "))
        self.assertEqual(ann.page.input_value("#chat"), too_long)
        ann.wait_lines(["ann joined"])

    def test_own_messages_marked(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ben = self.open_page(localhost(daemon.url))
        ann.join("ann")
        ben.join("ben")
        ann.say("mine")
        ben.say("yours")
        expected = ["ann joined", "ben joined", "ann mine", "ben yours"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        own = "() => Array.from(document.querySelectorAll('#box .event.own .line'), e => e.textContent)"
        self.assertEqual(ann.page.evaluate(own), ["ann mine"])
        self.assertEqual(ben.page.evaluate(own), ["ben yours"])

    def test_history_for_newcomers(self) -> None:
        """A newcomer sees the last 50 events, and nothing twice after joining."""
        # Fifty-five messages from one session at once: more than the default rate burst.
        daemon = self.start_daemon(extra=["--rate-burst", "100"])
        ann = self.open_page(daemon.url)
        ann.join("ann")
        ann.page.evaluate(
            """async () => {
                for (let i = 1; i <= 55; i++) {
                    const r = await fetch('/msg', {method: 'POST',
                        body: new URLSearchParams({user: 'ann', msg: 'message ' + i, session: '0'})});
                    if (r.status !== 200) throw new Error('msg ' + i + ': ' + r.status);
                }
            }"""
        )
        history = [f"ann message {i}" for i in range(6, 56)]
        newcomer = self.open_page(localhost(daemon.url))
        newcomer.wait_lines(history)
        newcomer.join("ben")
        ann.say("welcome")
        newcomer.wait_lines(history + ["ben joined", "ann welcome"])
        members = newcomer.page.evaluate(
            "() => Array.from(document.querySelectorAll('#members li'), e => e.textContent)")
        self.assertEqual(sorted(members), ["ann", "ben"])

    def test_box_follows_unless_scrolled_up(self) -> None:
        """New messages scroll into view, except while the reader looks further up."""
        daemon = self.start_daemon(extra=["--rate-burst", "100"])  # bursts of 30 messages
        ann = self.open_page(daemon.url, viewport={"width": 800, "height": 500})
        ann.join("ann")
        post = """async n => {
            for (let i = 0; i < n; i++) {
                await fetch('/msg', {method: 'POST',
                    body: new URLSearchParams({user: 'ann', msg: 'line ' + i, session: '0'})});
            }
        }"""
        at_bottom = ("() => { const b = document.getElementById('box');"
                     " return b.scrollHeight - b.scrollTop - b.clientHeight < 2; }")
        ann.page.evaluate(post, 30)
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 31")
        ann.page.wait_for_function(at_bottom)

        ann.page.evaluate("() => { document.getElementById('box').scrollTop = 0; }")
        ann.say("while reading above")
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 32")
        self.assertEqual(ann.page.evaluate("() => document.getElementById('box').scrollTop"), 0)

        ann.page.evaluate("() => { const b = document.getElementById('box'); b.scrollTop = b.scrollHeight; }")
        ann.say("back at the end")
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 33")
        ann.page.wait_for_function(at_bottom)

    def test_nickname_remembered(self) -> None:
        """After a reload the page rejoins with the same nickname by itself."""
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ann.join("ann")
        ann.say("before reload")
        ann.page.reload()
        ann.wait_joined()
        self.assertEqual(ann.page.input_value("#nickname"), "ann")
        ann.say("after reload")
        ann.wait_lines(["ann joined", "ann before reload", "ann after reload"])
        self.assertPageClean(ann)

    def test_transport_chosen_on_the_root_url(self) -> None:
        """http://host:port/?transport=T, as the README says, forces T on the page."""
        daemon = self.start_daemon()
        page = self.browser.context().new_page()
        page.goto(f"{daemon.url}/?transport=sse")
        self.assertTrue(page.url.endswith("/static/chat.html?transport=sse"), page.url)
        page.fill("#nickname", "ann")
        page.click("#nickbutton")
        page.wait_for_function("() => document.getElementById('status').dataset.state === 'open'")
        self.assertEqual(page.get_attribute("#status", "data-transport"), "sse")

    def test_phone_width(self) -> None:
        """On a 360-pixel screen nothing scrolls sideways, even with a very long word."""
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url, viewport=PHONE, is_mobile=True, has_touch=True)
        ann.join("ann")
        long_word = "Supercalifragilistic" * 12
        ann.say(long_word)
        ann.say("https://example.org/" + "very/long/path/" * 10)
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 3")
        width = ann.page.evaluate("() => document.scrollingElement.scrollWidth")
        self.assertLessEqual(width, PHONE["width"])
        # After joining the nickname form gives way to "You are ann · change".
        for selector in ("#whoami", "#changenick", "#chat", "#chatbutton", "#box"):
            box = ann.page.locator(selector).bounding_box()
            self.assertIsNotNone(box, selector)
            self.assertGreaterEqual(box["x"], 0, selector)
            self.assertLessEqual(box["x"] + box["width"], PHONE["width"], selector)

    def test_keyboard_only(self) -> None:
        """Tab to the nickname, Enter to join, type and Enter to send: no mouse."""
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        page = ann.page
        active = "() => document.activeElement && document.activeElement.id"
        page.keyboard.press("Tab")
        self.assertEqual(page.evaluate(active), "nickname")
        page.keyboard.type("kim")
        page.keyboard.press("Tab")
        self.assertEqual(page.evaluate(active), "nickbutton")
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Enter")
        ann.wait_joined()
        page.wait_for_function(f"() => ({active})() === 'chat'")
        page.keyboard.type("typed, not clicked")
        ann.send_with(lambda: page.keyboard.press("Enter"))
        ann.wait_lines(["kim joined", "kim typed, not clicked"])
        self.assertEqual(page.input_value("#chat"), "")
        # The button is reachable too, and a real button.
        page.keyboard.type("second")
        page.keyboard.press("Tab")
        self.assertEqual(page.evaluate(active), "chatbutton")
        ann.send_with(lambda: page.keyboard.press("Enter"))
        ann.wait_lines(["kim joined", "kim typed, not clicked", "kim second"])
        # Focus is visible: the focused element draws an outline.
        outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
        self.assertNotEqual(outline, "none")
        self.assertPageClean(ann)
