"""The composer: Enter sends, Shift+Enter adds a line, a byte count near the 4 KiB limit, and
text that is never lost: kept when refused or when the daemon is unreachable, and sent again
only when the user says so."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost
from tests.e2e.support import RECONNECT_WAIT_MS, CuttableProxy

COUNT = "() => document.getElementById('bytecount').textContent"


class ComposerChecks:
    transport: str | None = None

    def test_shift_enter_adds_a_line_and_enter_sends(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), self.transport)
        ben = self.open_page(daemon.url, self.transport)
        ann.join("ann")
        ben.join("ben")
        page = ann.page
        page.focus("#chat")
        page.keyboard.type("first line")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("  second, indented")
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("<b>fourth</b>")
        self.assertEqual(page.input_value("#chat"), "first line\n  second, indented\n\n<b>fourth</b>")
        ann.send_with(lambda: page.keyboard.press("Enter"))
        expected = ["ann joined", "ben joined", "ann first line\n  second, indented\n\n<b>fourth</b>"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        self.assertEqual(page.input_value("#chat"), "")
        for p in (ann, ben):
            shown = p.page.evaluate(
                "() => { const t = document.querySelector('#box .event.message .text');"
                " return {lines: Math.round(t.getBoundingClientRect().height"
                " / parseFloat(getComputedStyle(t).lineHeight)), b: t.querySelectorAll('b').length}; }")
            self.assertEqual(shown, {"lines": 4, "b": 0})   # as written, as text
        self.assertPageClean(ann, ben)


class ComposerTests(ComposerChecks, BrowserTestCase):
    def test_byte_count_near_the_limit(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ann.join("ann")
        page = ann.page
        page.fill("#chat", "short")
        self.assertEqual(page.evaluate(COUNT), "")
        page.fill("#chat", "é" * 1600)   # 3200 bytes in 1600 characters
        self.assertEqual(page.evaluate(COUNT), "3200 / 4096 bytes")
        page.fill("#chat", "x" * 4096)
        self.assertEqual(page.evaluate(COUNT), "4096 / 4096 bytes")
        self.assertEqual(page.get_attribute("#chat", "aria-invalid"), "false")
        page.focus("#chat")
        page.keyboard.type("y")
        self.assertEqual(page.evaluate(COUNT), "4097 / 4096 bytes: too long to send")
        self.assertEqual(page.get_attribute("#chat", "aria-invalid"), "true")
        self.assertIn("over", page.get_attribute("#bytecount", "class"))
        page.keyboard.press("Backspace")
        ann.send_with(lambda: page.keyboard.press("Enter"))   # exactly 4 KiB goes through
        self.assertEqual(page.evaluate(COUNT), "")
        ann.wait_lines(["ann joined", "ann " + "x" * 4096])

    def test_text_kept_while_unreachable_and_sent_only_on_request(self) -> None:
        daemon = self.start_daemon(extra=["--heartbeat", "1"])
        proxy = CuttableProxy(daemon.port)
        self.addCleanup(proxy.close)
        ann = self.open_page(f"http://127.0.0.1:{proxy.port}")
        ben = self.open_page(localhost(daemon.url))
        ann.join("ann")
        ben.join("ben")
        posts: list[str] = []
        ann.page.on("request", lambda r: posts.append(r.url) if r.url.endswith("/msg") else None)

        proxy.refusing.set()
        proxy.cut()
        ann.wait_status("reconnecting")
        ann.page.fill("#chat", "written while away\nwith two lines")
        ann.page.press("#chat", "Enter")
        notice = ann.page.locator("#notice")
        notice.wait_for(state="visible")
        self.assertIn("cannot be reached", notice.text_content())
        self.assertEqual(ann.page.input_value("#chat"), "written while away\nwith two lines")

        proxy.refusing.clear()
        ann.wait_joined(timeout=RECONNECT_WAIT_MS)
        ben.say("welcome back")
        ann.wait_lines(["ann joined", "ben joined", "ben welcome back"])
        # Back, but nothing was sent by itself: the text waits for the user.
        self.assertEqual(len(posts), 1)
        self.assertEqual(ann.page.input_value("#chat"), "written while away\nwith two lines")
        ann.send_with(lambda: ann.page.click("#chatbutton"))
        expected = ["ann joined", "ben joined", "ben welcome back", "ann written while away\nwith two lines"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        self.assertEqual(ann.page.input_value("#chat"), "")

    def test_refused_text_comes_back_before_what_was_typed_since(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        ann.join("ann")
        ann.page.route("**/msg", lambda route: (ann.page.fill("#chat", "typed meanwhile"),
                                               route.fulfill(status=429, body="too many messages\n")))
        ann.page.fill("#chat", "refused one")
        ann.page.press("#chat", "Enter")
        ann.page.locator("#notice").wait_for(state="visible")
        self.assertEqual(ann.page.text_content("#notice"), "Message not sent: too many messages")
        self.assertEqual(ann.page.input_value("#chat"), "refused one\ntyped meanwhile")

    def test_notice_does_not_move_the_conversation(self) -> None:
        daemon = self.start_daemon(extra=["--rate-burst", "100"])
        ann = self.open_page(daemon.url, viewport={"width": 1280, "height": 800})
        ann.join("ann")
        for n in range(25):
            ann.say(f"message {n}")
        ann.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 26")
        geometry = """() => {
            const box = document.getElementById('box').getBoundingClientRect();
            const events = document.querySelectorAll('#box .event');
            const last = events[events.length - 1].getBoundingClientRect();
            return {box: [box.top, box.bottom, box.height], last: [last.top, last.bottom],
                    scrollTop: document.getElementById('box').scrollTop};
        }"""
        ann.page.fill("#chat", "x" * 5000)
        # The composer grew with the text; the newest message is still in view.
        before = ann.page.evaluate(geometry)
        self.assertLessEqual(before["last"][1], before["box"][1])
        ann.page.press("#chat", "Enter")
        ann.page.locator("#notice").wait_for(state="visible")
        after = ann.page.evaluate(geometry)
        self.assertEqual(after, before)
        # The newest message stays in view, not under the notice.
        toast = ann.page.locator("#toast").bounding_box()
        self.assertGreaterEqual(after["last"][0], toast["y"] + toast["height"])
        self.assertLessEqual(after["last"][1], after["box"][1])
        ann.page.click("#toast-close")
        self.assertFalse(ann.page.is_visible("#notice"))


class LongPollComposerTests(ComposerChecks, BrowserTestCase):
    transport = "longpoll"


class IframeComposerTests(ComposerChecks, BrowserTestCase):
    transport = "iframe"
