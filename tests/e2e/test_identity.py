"""Identity: "You are ann · change" after joining, and renaming in one step over each
transport (the old name free at once, the room told "ann is now anna")."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost

MEMBERS = "() => Array.from(document.querySelectorAll('#members li'), e => e.textContent)"


class RenameChecks:
    transport = ""

    def rename(self, page, new: str) -> None:
        page.page.click("#changenick")
        page.page.wait_for_function("() => document.activeElement.id === 'nickname'")
        page.page.fill("#nickname", new)
        with page.page.expect_response(lambda r: r.url.endswith("/nick")) as answer:
            page.page.press("#nickname", "Enter")
        self.assertEqual(answer.value.status, 200, answer.value.text())

    def test_rename(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), self.transport)
        ben = self.open_page(daemon.url, self.transport)
        ann.join("ann")
        ben.join("ben")
        ann.say("before")
        self.rename(ann, "anna")
        ann.wait_joined()
        self.assertEqual(ann.page.text_content("#myname"), "anna")
        self.assertTrue(ann.page.is_visible("#whoami"))
        self.assertFalse(ann.page.is_visible("#nickform"))
        expected = ["ann joined", "ben joined", "ann before", "ann is now anna"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        # Everyone's member list loses the old name at once (no presence timeout).
        for page in (ann, ben):
            page.page.wait_for_function(f"() => JSON.stringify(({MEMBERS})()) === '[\"anna\",\"ben\"]'")
        self.assertEqual(ann.page.get_attribute("#box .event.rename bdi:first-child", "dir"), None)
        self.assertEqual(ann.page.locator("#box .event.rename bdi").all_text_contents(), ["ann", "anna"])

        # The old name is free now: someone else takes it at once.
        other = self.open_page(daemon.url, self.transport)
        other.join("ann")
        ann.say("after")
        ben.say("welcome, both")
        expected += ["ann joined", "anna after", "ben welcome, both"]
        for page in (ann, ben):
            page.wait_lines(expected)
        other.wait_lines(expected)
        # Messages under the new name are ann's own; the remembered name is the new one.
        own = "() => Array.from(document.querySelectorAll('#box .event.own .line'), e => e.textContent)"
        self.assertEqual(ann.page.evaluate(own), ["ann before", "anna after"])
        ann.page.reload()
        ann.wait_joined()
        self.assertEqual(ann.page.text_content("#myname"), "anna")
        self.assertPageClean(ann, ben, other)


class RenameTests(RenameChecks, BrowserTestCase):
    def test_after_joining_you_are_ann(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(daemon.url)
        self.assertTrue(ann.page.is_visible("#nickform"))
        self.assertFalse(ann.page.is_visible("#whoami"))
        ann.join("<i>ann</i>")
        whoami = " ".join(ann.page.text_content("#whoami").split())
        self.assertEqual(whoami, "You are <i>ann</i> · change nickname")
        self.assertEqual(ann.page.locator("#whoami bdi").count(), 1)
        self.assertFalse(ann.page.is_visible("#nickform"))
        ann.page.click("#changenick")
        self.assertTrue(ann.page.is_visible("#nickform"))
        self.assertEqual(ann.page.text_content("#nickbutton"), "Rename")
        ann.page.click("#nickcancel")
        self.assertFalse(ann.page.is_visible("#nickform"))
        self.assertEqual(ann.page.text_content("#myname"), "<i>ann</i>")

    def test_renaming_to_a_taken_name_keeps_the_old_one(self) -> None:
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url))
        ben = self.open_page(daemon.url)
        ann.join("ann")
        ben.join("ben")
        ann.page.click("#changenick")
        ann.page.fill("#nickname", "ben")
        with ann.page.expect_response(lambda r: r.url.endswith("/nick")) as answer:
            ann.page.press("#nickname", "Enter")
        self.assertEqual(answer.value.status, 409)
        notice = ann.page.locator("#notice")
        notice.wait_for(state="visible")
        self.assertIn("taken", notice.text_content())
        ann.wait_joined()
        self.assertTrue(ann.page.is_visible("#nickform"))   # to try another name
        ann.page.keyboard.press("Escape")
        self.assertEqual(ann.page.text_content("#myname"), "ann")
        ann.say("still ann")
        expected = ["ann joined", "ben joined", "ann still ann"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)
        ben.page.wait_for_function(f"() => JSON.stringify(({MEMBERS})()) === '[\"ann\",\"ben\"]'")


class WebSocketRenameTests(RenameChecks, BrowserTestCase):
    transport = "websocket"


class SseRenameTests(RenameChecks, BrowserTestCase):
    transport = "sse"


class XhrStreamRenameTests(RenameChecks, BrowserTestCase):
    transport = "xhrstream"


class IframeRenameTests(RenameChecks, BrowserTestCase):
    transport = "iframe"


class LongPollRenameTests(RenameChecks, BrowserTestCase):
    transport = "longpoll"
