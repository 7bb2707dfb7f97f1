"""Screenshots of the page in its states, at 1280x800 and 360x740, written to
tests/e2e/screenshots/ (gitignored) for people to look at; docs/screenshot.png is
chat-desktop.png."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 360, "height": 740}

CONVERSATION = [
    ("ann", "Hi Ben! Did the daemon come back after the restart?"),
    ("ben", "It did, and the page picked up where it left off."),
    ("ben", "No duplicates either: every event has an id and the page resumes after the last one."),
    ("ann", "Great.\nRelease notes are at https://example.org/cherrychat/releases (draft)."),
    ("ben", "Then let's ship it!"),
]


class ScreenshotTests(BrowserTestCase):
    def test_screenshots(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), viewport=DESKTOP)
        ann.page.wait_for_function("() => document.getElementById('members')")
        ann.screenshot("welcome-desktop")

        ann.join("ann")
        ben = self.open_page(daemon.url, viewport=PHONE, is_mobile=True, has_touch=True,
                             device_scale_factor=2)
        ben.join("ben")
        pages = {"ann": ann, "ben": ben}
        expected = ["ann joined", "ben joined"]
        for name, text in CONVERSATION:
            pages[name].say(text)
            expected.append(f"{name} {text}")
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        for page in (ann, ben):
            page.page.wait_for_function("() => document.querySelectorAll('#members li').length === 2")
        ann.page.fill("#chat", "Shipping now.\nI'll write when it is out.")
        ann.page.dispatch_event("#chat", "input")
        ann.page.mouse.move(0, 0)   # no button left in its hover colour
        ann.screenshot("chat-desktop")
        ben.screenshot("chat-phone")
        ann.page.fill("#chat", "")

        # Ben scrolls up; new messages arrive: the marker and the jump button.
        for n in range(12):
            ann.say(f"Release step {n + 1} done.")
        ben.page.wait_for_function("() => document.querySelectorAll('#box .event').length >= 19")
        ben.page.evaluate("() => { document.getElementById('box').scrollTop = 0; }")
        ann.say("And the tag is pushed.")
        ben.page.locator("#jump").wait_for(state="visible")
        ben.page.evaluate("() => { const b = document.getElementById('box'); b.scrollTop = b.scrollHeight - b.clientHeight - 200; }")
        ben.screenshot("new-messages-phone")

        # "You are ann · change", then the form to change it.
        ann.page.click("#changenick")
        ann.page.fill("#nickname", "anna")
        ann.screenshot("rename-desktop")

        taken = self.open_page(daemon.url, viewport=DESKTOP)
        taken.page.fill("#nickname", "ben")
        taken.page.click("#nickbutton")
        taken.page.locator("#notice").wait_for(state="visible")
        taken.page.mouse.move(0, 0)
        taken.screenshot("nickname-taken-desktop")

        daemon.stop()
        ben.wait_status("reconnecting")
        ben.screenshot("reconnecting-phone")
