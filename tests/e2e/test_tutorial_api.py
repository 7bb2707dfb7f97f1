"""A page written exactly like the Orbited tutorial's still chats with the shipped page.

The tutorial's page connects first with ``Orbited.connect(chat_event, name, "/cherrychat",
"0")``, then sends ``GET /join?user=`` and ``GET /msg?ie_nocache=N&user=&msg=`` with raw
XMLHttpRequests, and shows each payload with innerHTML. It runs on the chat's own origin:
the test opens a URL of the daemon and writes the tutorial's document into it (the context
bypasses the daemon's Content-Security-Policy, which rightly forbids the tutorial's inline
script), so it loads the daemon's orbited.js like the tutorial's page did.
"""

from __future__ import annotations

from pathlib import Path

from tests.e2e.base import BrowserTestCase, localhost
from tests.e2e.support import WAIT_MS

# The tutorial's chat.html with its chat.js (tests/e2e/tutorial/static, as the tutorial wrote
# them: inline handlers and all), apart from loading orbited.js from the chat's own origin.
TUTORIAL_JS = (Path(__file__).resolve().parent / "tutorial" / "static" / "chat.js").read_text(encoding="utf-8")
TUTORIAL_PAGE = """<!DOCTYPE html>
<html>
  <head>
    <title>CherryChat</title>
    <script src="/static/orbited.js"></script>
    <script>
{tutorial_js}
    </script>
  </head>
  <body>
    <input type="text" id="nickname">
    <input type="button" value="nickname" onclick="connect();">
    <div id="box"></div>
    <input type="text" id="chat">
    <input type="submit" value="chat" onclick="send_msg();">
  </body>
</html>
""".replace("{tutorial_js}", TUTORIAL_JS)

TUTORIAL_EVENTS_JS = "() => Array.from(document.querySelectorAll('#box .event'), e => e.textContent)"


class TutorialApiTests(BrowserTestCase):
    def open_tutorial_page(self, base: str, query: str = ""):
        context = self.browser.context(bypass_csp=True)
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        # Any URL of the daemon gives the origin; `query` reaches orbited.js through it.
        page.goto(f"{base}/healthz{query}")
        page.set_content(TUTORIAL_PAGE)
        page.wait_for_function("() => typeof Orbited === 'object' && typeof connect === 'function'")
        return page, dialogs

    def wait_tutorial_events(self, page, expected: list[str]) -> None:
        try:
            page.wait_for_function(
                f"e => JSON.stringify(({TUTORIAL_EVENTS_JS})()) === JSON.stringify(e)",
                arg=expected, timeout=WAIT_MS)
        except Exception:
            raise AssertionError(
                f"the tutorial page shows {page.evaluate(TUTORIAL_EVENTS_JS)}, expected {expected}"
            ) from None

    def chat_with_shipped_page(self, query: str = "") -> None:
        daemon = self.start_daemon()
        tutorial, dialogs = self.open_tutorial_page(localhost(daemon.url), query)
        tutorial.fill("#nickname", "tut")
        tutorial.click("input[value=nickname]")
        self.wait_tutorial_events(tutorial, ["tut joined"])

        shipped = self.open_page(daemon.url)
        shipped.join("ship")
        expected = ["tut joined", "ship joined"]
        self.wait_tutorial_events(tutorial, expected)
        shipped.wait_lines(expected)

        tutorial.fill("#chat", "hello from the tutorial")
        tutorial.click("input[value=chat]")
        expected.append("tut hello from the tutorial")
        shipped.wait_lines(expected)
        self.wait_tutorial_events(tutorial, expected)

        shipped.say("hello from the page")
        expected.append("ship hello from the page")
        self.wait_tutorial_events(tutorial, expected)
        shipped.wait_lines(expected)
        self.assertEqual(dialogs, [])
        self.assertPageClean(shipped)

    def test_tutorial_page_chats_with_shipped_page(self) -> None:
        """The best transport, picked by orbited.js."""
        self.chat_with_shipped_page()

    def test_tutorial_page_over_iframe(self) -> None:
        """The tutorial's own transport, the hidden iframe."""
        self.chat_with_shipped_page("?transport=iframe")
