"""Accessibility: axe-core finds nothing serious or critical in any state of the page, the
conversation is a live region, and everything works from the keyboard with visible focus."""

from __future__ import annotations

import json

from tests.e2e.base import BrowserTestCase, localhost

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

ACTIVE_ID = "() => document.activeElement && document.activeElement.id"


class AccessibilityTests(BrowserTestCase):
    def assertAccessible(self, page, state: str) -> None:
        violations = page.accessibility_violations()
        self.assertEqual(violations, [], f"axe-core, {state}: {json.dumps(violations, indent=1)}")

    def test_axe_in_every_state(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), viewport=DESKTOP)
        self.assertAccessible(ann, "before joining")
        ann.join("ann")
        ben = self.open_page(daemon.url, viewport=PHONE, is_mobile=True, has_touch=True)
        ben.join("ben")
        ann.say("Hello ben, see https://example.org/notes")
        ben.say("Hi!\nTwo lines.")
        ben.say("And a third message in my group.")
        ann.wait_lines(["ann joined", "ben joined", "ann Hello ben, see https://example.org/notes",
                        "ben Hi!\nTwo lines.", "ben And a third message in my group."])
        self.assertAccessible(ann, "chatting, desktop")
        self.assertAccessible(ben, "chatting, phone")

        ann.page.click("#changenick")
        self.assertAccessible(ann, "changing the nickname")
        ann.page.keyboard.press("Escape")

        ann.page.fill("#chat", "é" * 2100)   # over the limit: the byte count shows
        ann.page.dispatch_event("#chat", "input")
        ann.page.press("#chat", "Enter")
        ann.page.locator("#notice").wait_for(state="visible")
        self.assertAccessible(ann, "a notice and the byte count shown")

        for n in range(12):
            ann.page.fill("#chat", f"more {n}")
            ann.send_with(lambda: ann.page.press("#chat", "Enter"))
        ben.page.wait_for_function("() => document.querySelectorAll('#box .event').length === 17")
        ben.page.evaluate("() => { document.getElementById('box').scrollTop = 0; }")
        ann.page.fill("#chat", "one more")
        ann.send_with(lambda: ann.page.press("#chat", "Enter"))
        ben.page.locator("#jump").wait_for(state="visible")
        self.assertAccessible(ben, "new messages while scrolled up, phone")

        taken = self.open_page(daemon.url, viewport=DESKTOP)
        taken.page.fill("#nickname", "ann")
        taken.page.click("#nickbutton")
        taken.page.locator("#notice").wait_for(state="visible")
        self.assertAccessible(taken, "nickname taken")
        self.assertPageClean(ann, ben, taken)

    def test_the_conversation_is_a_live_region(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        box = ann.page.evaluate(
            "() => { const b = document.getElementById('box');"
            " return {role: b.getAttribute('role'), live: b.getAttribute('aria-live'),"
            " label: b.getAttribute('aria-label'), tabindex: b.tabIndex}; }")
        self.assertEqual(box, {"role": "log", "live": "polite", "label": "Messages", "tabindex": 0})
        ann.join("ann")
        ann.say("read me")
        # Each message is read whole, with its sender, even inside a group.
        ann.say("and me")
        ann.wait_lines(["ann joined", "ann read me", "ann and me"])
        notice = ann.page.evaluate(
            "() => ({role: document.getElementById('notice').getAttribute('role'),"
            " status: document.getElementById('status').getAttribute('role')})")
        self.assertEqual(notice, {"role": "alert", "status": "status"})

    def test_everything_from_the_keyboard(self) -> None:
        """Join, send, change the nickname, load older messages, jump to the latest."""
        daemon = self.start_daemon(extra=["--rate-burst", "200"])
        ben = self.open_page(daemon.url)
        ben.join("ben")
        ben.page.evaluate(
            """async () => {
                for (let i = 1; i <= 70; i++) {
                    const r = await fetch('/msg', {method: 'POST',
                        body: new URLSearchParams({user: 'ben', msg: 'message ' + i, session: '0'})});
                    if (r.status !== 200) throw new Error('msg ' + i + ': ' + r.status);
                }
            }""")
        ann = self.open_page(localhost(daemon.url), viewport={"width": 900, "height": 600})
        page = ann.page
        page.keyboard.press("Tab")
        self.assertEqual(page.evaluate(ACTIVE_ID), "nickname")
        page.keyboard.type("ann")
        page.keyboard.press("Enter")
        ann.wait_joined()
        page.wait_for_function(f"() => ({ACTIVE_ID})() === 'chat'")
        page.keyboard.type("first line")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("second line")
        ann.send_with(lambda: page.keyboard.press("Enter"))
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('#box .line')).some(l => l.textContent === 'ann first line\\nsecond line')")

        # Shift+Tab from the composer reaches "Load older messages", then the conversation,
        # which scrolls with the keys (at its top, older messages load by themselves).
        self.assertEqual(page.evaluate("() => document.querySelectorAll('#box .event').length"), 52)
        self.assertEqual(page.evaluate(ACTIVE_ID), "chat")
        page.keyboard.press("Shift+Tab")
        # The button scrolls into view, which starts the load by itself: it may be done
        # already (and focus moved on to the conversation), else Enter is harmless.
        self.assertIn(page.evaluate(ACTIVE_ID), ("older", "box"))
        self.assertFocusVisible(page)
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.querySelectorAll('#box .event').length === 73")
        # The start is reached: the button is gone and focus stays in the conversation.
        self.assertFalse(page.is_visible("#older"))
        self.assertTrue(page.is_visible("#history-start"))
        self.assertEqual(page.evaluate(ACTIVE_ID), "box")
        self.assertFocusVisible(page)
        page.keyboard.press("End")
        page.wait_for_function(
            "() => { const b = document.getElementById('box');"
            " return b.scrollHeight - b.scrollTop - b.clientHeight < 2; }")

        # The "change" button is in the tab order; Escape closes the form again.
        page.focus("#changenick")
        self.assertFocusVisible(page)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => ({ACTIVE_ID})() === 'nickname'")
        self.assertEqual(page.input_value("#nickname"), "ann")
        page.keyboard.press("Escape")
        page.wait_for_function(f"() => ({ACTIVE_ID})() === 'changenick'")
        self.assertFalse(page.is_visible("#nickname"))
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => ({ACTIVE_ID})() === 'nickname'")
        page.keyboard.type("anna")
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.getElementById('myname').textContent === 'anna'")
        ann.wait_joined()

        # New messages while scrolled up: the jump button is reachable and brings the end.
        page.evaluate("() => { document.getElementById('box').scrollTop = 0; }")
        ben.say("are you there?")
        page.locator("#jump").wait_for(state="visible")
        page.focus("#jump")
        self.assertFocusVisible(page)
        page.keyboard.press("Enter")
        page.wait_for_function(
            "() => { const b = document.getElementById('box');"
            " return b.scrollHeight - b.scrollTop - b.clientHeight < 2; }")
        page.wait_for_function(f"() => ({ACTIVE_ID})() === 'chat'")
        self.assertEqual(page.input_value("#chat"), "")   # the Enter did not reach it
        self.assertFalse(page.is_visible("#jump"))
        self.assertPageClean(ann, ben)

    def assertFocusVisible(self, page) -> None:
        outline = page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return {style: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }")
        self.assertNotEqual(outline["style"], "none")
        self.assertGreaterEqual(outline["width"], 2)
