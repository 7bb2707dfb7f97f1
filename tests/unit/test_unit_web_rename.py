"""POST /nick (renaming in one step) and GET /history?before=ID, through the web resource."""

from __future__ import annotations

from cherrychat.redis_chat import RedisChatRoom
from tests.unit.test_unit_web import WebTestCase


class NickTests(WebTestCase):
    def setUp(self):
        super().setUp()
        self.ann = self.browser()
        self.assertEqual(self.fetch("POST", "/join", self.ann, data={"user": "ann"}).code, 200)
        self.ben = self.browser()
        self.assertEqual(self.fetch("POST", "/join", self.ben, data={"user": "ben"}).code, 200)

    def check(self, code, data, browser=None, **kwargs):
        before = self.state()
        answer = self.fetch("POST", "/nick", browser or self.ann, data=data, **kwargs)
        self.assertRefusal(answer, code)
        self.assertDaemonHeaders(answer)
        self.assertEqual(self.state(), before, f"/nick {data} changed the daemon's state")
        return answer

    def test_rename(self):
        answer = self.fetch("POST", "/nick", self.ann, data={"user": "ann", "new": "anna", "session": "0"})
        self.assertEqual((answer.code, answer.text), (200, "renamed\n"))
        self.assertEqual(self.history()[-1], "ann is now anna")
        self.assertEqual(self.fetch("GET", "/who").json(), {"members": ["anna", "ben"]})
        # The old name is free at once; the new one is ann's to speak with.
        self.assertEqual(self.fetch("POST", "/join", self.browser(), data={"user": "ann"}).code, 200)
        self.assertEqual(self.fetch("POST", "/msg", self.ann, data={"user": "anna", "msg": "hi"}).code, 200)
        # A repeated request (its answer was lost) is harmless.
        again = self.fetch("POST", "/nick", self.ann, data={"user": "ann", "new": "anna"})
        self.assertEqual((again.code, again.text), (200, "already renamed\n"))

    def test_hostile_names_are_escaped(self):
        answer = self.fetch("POST", "/nick", self.ann, data={"user": "ann", "new": "<img src=x>"})
        self.assertEqual(answer.code, 200)
        self.assertEqual(self.history()[-1], "ann is now &lt;img src=x&gt;")

    def test_refusals(self):
        self.check(400, {"user": "ann"})
        self.check(400, {"user": "ann", "new": ""})
        self.check(400, {"new": "anna"})
        self.check(400, {"user": "ann", "new": "a,b"})
        self.check(400, {"user": "ann", "new": "a" * 33})
        self.check(400, {"user": "ann", "new": " anna"})
        self.check(400, {"user": "ann", "new": "anna", "session": "a b"})
        self.check(403, {"user": "ben", "new": "benjamin"})      # not ann's
        self.check(403, {"user": "zed", "new": "zara"})          # nobody's
        self.check(409, {"user": "ann", "new": "ben"})           # taken
        self.check(403, {"user": "ann", "new": "anna"}, headers={"Origin": "http://elsewhere.example"})

    def test_only_post(self):
        before = self.state()
        self.assertRefusal(self.fetch("GET", "/nick?user=ann&new=anna", self.ann), 405)
        self.assertEqual(self.state(), before)

    def test_connections_under_the_old_name_are_sent_away(self):
        response, chunks = self.open_stream("/cherrychat?user=ann&session=0&transport=sse", self.ann)
        self.assertEqual(response.code, 200)
        self.open_stream("/cherrychat?user=ben&session=0&transport=sse", self.ben)
        self.assertEqual(len(self.comet.connections), 2)
        self.assertEqual(self.fetch("POST", "/nick", self.ann, data={"user": "ann", "new": "anna"}).code, 200)
        self.assertIn(b'"type":"reconnect"', b"".join(chunks))
        self.assertEqual(self.hub.listener_count("ann, 0, /cherrychat"), 0)
        self.assertEqual(self.hub.listener_count("ben, 0, /cherrychat"), 1)

    def test_with_redis_renaming_is_unavailable(self):
        self.patch(self.chat, "rename", lambda *args: RedisChatRoom.rename(self.chat, *args))  # type: ignore[arg-type]
        answer = self.check(503, {"user": "ann", "new": "anna"})
        self.assertEqual(answer.text, "renaming is not available with --redis\n")


class HistoryBeforeTests(WebTestCase):
    def setUp(self):
        super().setUp()
        self.ann = self.browser()
        self.fetch("POST", "/join", self.ann, data={"user": "ann"})
        for n in range(2, 11):   # ids 2 to 10
            self.chat.msg("ann", self.ann.session, f"m{n}")

    def ids(self, query):
        answer = self.fetch("GET", "/history" + query)
        self.assertEqual(answer.code, 200, answer.body)
        return [event["id"] for event in answer.json()["events"]]

    def test_pages_back_oldest_first(self):
        self.assertEqual(self.ids("?limit=3"), [8, 9, 10])
        self.assertEqual(self.ids("?limit=3&before=8"), [5, 6, 7])
        self.assertEqual(self.ids("?limit=3&before=5"), [2, 3, 4])
        self.assertEqual(self.ids("?limit=3&before=2"), [1])
        self.assertEqual(self.ids("?limit=3&before=1"), [])
        self.assertEqual(self.ids("?before=4"), [1, 2, 3])
        self.assertEqual(self.ids("?limit=2&before=999999"), [9, 10])

    def test_only_retained_events(self):
        channel = self.hub.channel(self.chat.location)
        channel.max_events = 3
        self.chat.msg("ann", self.ann.session, "m11")   # messages 9, 10, 11 are retained
        # The join notice is retained apart from the messages (presence never pushes the
        # conversation out), so it is still there before them.
        self.assertEqual(self.ids("?before=11"), [1, 9, 10])
        self.assertEqual(self.ids("?before=9"), [1])

    def test_bad_before(self):
        for before in ["abc", "0", "-1", "1.5", "9" * 10, "%ff", "1e3"]:
            answer = self.fetch("GET", "/history?before=" + before)
            self.assertRefusal(answer, 400)
            self.assertIn("before", answer.text)
