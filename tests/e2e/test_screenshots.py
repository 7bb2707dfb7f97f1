"""Screenshots of the page in its states, written to tests/e2e/screenshots/ for people."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost

CONVERSATION = [
    ("ann", "Hi Ben! Did the daemon come back after the restart?"),
    ("ben", "It did, and the page picked up where it left off."),
    ("ann", "Nice. No duplicates either?"),
    ("ben", "None: every event has an id and the page resumes after the last one."),
    ("ann", "Then let's ship it."),
]


class ScreenshotTests(BrowserTestCase):
    def test_screenshots(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), viewport={"width": 960, "height": 600})
        ann.page.wait_for_function("() => document.getElementById('members')")
        ann.screenshot("welcome")

        ann.join("ann")
        ben = self.open_page(daemon.url, viewport={"width": 360, "height": 740},
                             is_mobile=True, has_touch=True, device_scale_factor=2)
        ben.join("ben")
        pages = {"ann": ann, "ben": ben}
        expected = ["ann joined", "ben joined"]
        for name, text in CONVERSATION:
            pages[name].say(text)
            expected.append(f"{name} {text}")
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        ann.page.wait_for_function("() => document.querySelectorAll('#members li').length === 2")
        ben.page.wait_for_function("() => document.querySelectorAll('#members li').length === 2")
        ann.page.focus("#chat")
        ann.page.mouse.move(0, 0)   # no button left in its hover colour
        ann.screenshot("chat-desktop")
        ben.screenshot("chat-phone")

        taken = self.open_page(daemon.url, viewport={"width": 960, "height": 600})
        taken.page.fill("#nickname", "ann")
        taken.page.click("#nickbutton")
        taken.page.locator("#notice").wait_for(state="visible")
        taken.page.mouse.move(0, 0)
        taken.screenshot("nickname-taken")

        daemon.stop()
        ann.wait_status("reconnecting")
        ann.screenshot("reconnecting")
