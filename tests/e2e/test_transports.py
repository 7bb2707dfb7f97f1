"""Two people chat over each transport, forced with ?transport=, with plain and hostile text."""

from __future__ import annotations

from tests.e2e.base import BrowserTestCase, localhost

# Text that would run or break something if the page ever treated it as HTML.
HOSTILE_NICKNAMES = [
    "<img src=x onerror=alert(1)>",
    # Right-to-left letters, but no bidi control: a nickname with one is refused (400).
    "\"'&; مرحبا שלום 🍒",
]
HOSTILE_MESSAGES = [
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "\"'&;",
    "\u202eمرحبا بالعالم — שלום עולם",
    "🍒🎉 👩🏽‍💻 ok",
    "<b>bold?</b> &amp; <i onmouseover=alert(1)>x</i>",
    "javascript:alert(1) [x](javascript:alert(1)) <a href=\"javascript:alert(1)\">y</a> https://example.org/ok",
    "\u202edesrever ton https://example.org/\u202e",
    "W" * 4096,   # 4 KiB of one word
]


class TransportChecks:
    """The checks every transport must pass; subclasses name the transport."""

    transport = ""

    def test_chat_both_ways(self) -> None:
        """Every message shows in both windows, once, in order."""
        daemon = self.start_daemon()
        ann = self.open_page(localhost(daemon.url), self.transport)
        ben = self.open_page(daemon.url, self.transport)
        ann.join("ann")
        ann.wait_lines(["ann joined"])
        ben.join("ben")
        expected = ["ann joined", "ben joined"]
        ann.wait_lines(expected)
        ben.wait_lines(expected)

        script = [
            (ann, "ann", "hello ben"),
            (ben, "ben", "hi ann"),
            (ann, "ann", "how are you?"),
            (ann, "ann", "all well here"),
            (ben, "ben", "fine, thanks!"),
        ]
        for page, name, text in script:
            page.say(text)
            expected.append(f"{name} {text}")
        ann.wait_lines(expected)
        ben.wait_lines(expected)

        for page in (ann, ben):
            self.assertEqual(page.page.get_attribute("#status", "data-transport"), self.transport)
        self.assertPageClean(ann, ben)

    def test_hostile_text(self) -> None:
        """Markup, script, quotes, right-to-left text and emoji show as text and run nothing."""
        daemon = self.start_daemon()
        first, second = HOSTILE_NICKNAMES
        one = self.open_page(localhost(daemon.url), self.transport)
        two = self.open_page(daemon.url, self.transport)
        one.join(first)
        two.join(second)
        expected = [f"{first} joined", f"{second} joined"]
        for i, text in enumerate(HOSTILE_MESSAGES):
            page, name = (one, first) if i % 2 == 0 else (two, second)
            page.say(text)
            expected.append(f"{name} {text}")
        one.wait_lines(expected)
        two.wait_lines(expected)

        for page in (one, two):
            counts = page.page.evaluate(
                "() => ({img: document.querySelectorAll('#box img').length,"
                " script: document.querySelectorAll('#box script').length,"
                " b: document.querySelectorAll('#box b, #box i').length})"
            )
            self.assertEqual(counts, {"img": 0, "script": 0, "b": 0})
            members = page.page.evaluate(
                "() => Array.from(document.querySelectorAll('#members li'), e => e.textContent)"
            )
            self.assertEqual(sorted(members), sorted(HOSTILE_NICKNAMES))
            # Only http(s) text becomes a link, and a safe one; names and texts are isolated.
            links = page.page.evaluate(
                "() => Array.from(document.querySelectorAll('#box a'), a => [a.protocol, a.rel, a.target])")
            self.assertEqual(links, [["https:", "noopener noreferrer", "_blank"]] * 2)
            isolated = page.page.evaluate(
                "() => Array.from(document.querySelectorAll('#box .event.message'), e =>"
                " e.querySelector('.sender').tagName + ' ' + e.querySelector('.text').dir)")
            self.assertEqual(set(isolated), {"BDI auto"})
            # Nothing widens the page or the conversation.
            widths = page.page.evaluate(
                "() => [document.scrollingElement.scrollWidth - window.innerWidth,"
                " document.getElementById('box').scrollWidth - document.getElementById('box').clientWidth]")
            self.assertEqual(widths, [0, 0])
        self.assertPageClean(one, two)


class WebSocketTests(TransportChecks, BrowserTestCase):
    transport = "websocket"


class SseTests(TransportChecks, BrowserTestCase):
    transport = "sse"


class XhrStreamTests(TransportChecks, BrowserTestCase):
    transport = "xhrstream"


class IframeTests(TransportChecks, BrowserTestCase):
    transport = "iframe"


class LongPollTests(TransportChecks, BrowserTestCase):
    transport = "longpoll"
