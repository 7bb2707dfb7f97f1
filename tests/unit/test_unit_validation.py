"""Unit tests of cherrychat.validation and cherrychat.sessions."""

from __future__ import annotations

import re

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from cherrychat import sessions, validation
from cherrychat.errors import BadRequest, TooLarge


class NicknameTests(SynchronousTestCase):
    def assertRefused(self, value):
        with self.assertRaises(BadRequest, msg=repr(value)) as caught:
            validation.nickname(value)
        self.assertEqual(caught.exception.code, 400)
        self.assertNotIn("\n", caught.exception.reason)

    def test_missing_or_empty(self):
        self.assertRefused(None)
        self.assertRefused("")

    def test_length_bound_is_in_characters(self):
        for name in ["a", "a" * 32, "é" * 32, "\U0001F600" * 32, "日本語"]:
            self.assertEqual(validation.nickname(name), name)
        for name in ["a" * 33, "é" * 33, "\U0001F600" * 33]:
            self.assertRefused(name)

    def test_control_characters(self):
        for char in ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ud800"]:
            self.assertRefused(f"an{char}n")

    def test_comma(self):
        self.assertRefused("ann,ben")
        self.assertRefused("ann, 0, /cherrychat")

    def test_leading_or_trailing_space(self):
        self.assertRefused(" ann")
        self.assertRefused("ann ")
        self.assertRefused("   ")
        self.assertEqual(validation.nickname("ann lee"), "ann lee")

    def test_html_is_allowed_and_left_to_escaping(self):
        self.assertEqual(validation.nickname("<b>&'\""), "<b>&'\"")


class MessageTests(SynchronousTestCase):
    def assertRefused(self, value, error=BadRequest, code=400):
        with self.assertRaises(error, msg=repr(value)) as caught:
            validation.message(value)
        self.assertEqual(caught.exception.code, code)

    def test_missing_or_empty(self):
        self.assertRefused(None)
        self.assertRefused("")

    def test_size_bound_is_in_utf8_bytes(self):
        accepted = ["x", "x" * 4096, "é" * 2048, "€" * 1365 + "x", "\U0001F600" * 1024]
        self.assertEqual([len(t.encode("utf-8")) for t in accepted], [1, 4096, 4096, 4096, 4096])
        for text in accepted:
            self.assertEqual(validation.message(text), text)
        refused = ["x" * 4097, "é" * 2048 + "x", "€" * 1365 + "xx", "\U0001F600" * 1024 + "x"]
        self.assertEqual([len(t.encode("utf-8")) for t in refused], [4097] * 4)
        for text in refused:
            self.assertRefused(text, TooLarge, 413)
        # 2048 characters of two bytes each: few characters, too many bytes.
        self.assertRefused("é" * 2049, TooLarge, 413)

    def test_tab_and_newline_allowed_other_controls_refused(self):
        self.assertEqual(validation.message("a\tb\nc"), "a\tb\nc")
        for char in ["\x00", "\r", "\x1b", "\x7f", "\u2028", "\u2029"]:
            self.assertRefused(f"a{char}b")

    def test_only_whitespace_is_empty(self):
        self.assertRefused(" ")
        self.assertRefused("\n\t")


class SessionLabelTests(SynchronousTestCase):
    def test_default_is_zero(self):
        self.assertEqual(validation.session_label(None), "0")
        self.assertEqual(validation.session_label(""), "0")

    def test_valid_labels(self):
        for label in ["0", "1", "tab-2", "a.b_c", "x" * 32]:
            self.assertEqual(validation.session_label(label), label)

    def test_invalid_labels(self):
        for label in ["x" * 33, "a b", "a,b", "a/b", "é", "0\n", "a, 0, /x"]:
            with self.assertRaises(BadRequest, msg=repr(label)):
                validation.session_label(label)


class EventIdTests(SynchronousTestCase):
    def test_absent(self):
        self.assertIsNone(validation.event_id(None))
        self.assertIsNone(validation.event_id(""))

    def test_valid_forms(self):
        self.assertEqual(validation.event_id("0"), 0)
        self.assertEqual(validation.event_id("17"), 17)
        self.assertEqual(validation.event_id("007"), 7)
        self.assertEqual(validation.event_id(str(2**53)), 2**53)

    def test_invalid_forms(self):
        for value in ["-1", "+1", " 1", "1 ", "1.0", "1e3", "abc", "0x10", "１", "²",
                      str(2**53 + 1), "1" * 17, "nan"]:
            with self.assertRaises(BadRequest, msg=repr(value)) as caught:
                validation.event_id(value)
            self.assertEqual(caught.exception.reason, "invalid parameter: last_event_id")


class PositiveIntTests(SynchronousTestCase):
    def test_default_and_clamping(self):
        self.assertEqual(validation.positive_int(None, "limit", 50, 1000), 50)
        self.assertEqual(validation.positive_int("", "limit", 50, 1000), 50)
        self.assertEqual(validation.positive_int("7", "limit", 50, 1000), 7)
        self.assertEqual(validation.positive_int("5000", "limit", 50, 1000), 1000)

    def test_invalid(self):
        for value in ["-1", "x", "1.5", "1" * 10, "١"]:
            with self.assertRaises(BadRequest, msg=repr(value)) as caught:
                validation.positive_int(value, "limit", 50, 1000)
            self.assertEqual(caught.exception.reason, "invalid parameter: limit")


def make_request(cookie: bytes | None = None) -> Request:
    """A real twisted.web Request on a dummy channel, as the site would build one."""
    request = Request(DummyChannel(), False)
    if cookie is not None:
        request.received_cookies[sessions.COOKIE_NAME] = cookie
    return request


class SessionTests(SynchronousTestCase):
    def test_a_client_without_cookie_gets_one(self):
        request = make_request()
        token = sessions.session_of(request)
        self.assertEqual(len(request.cookies), 1)
        cookie = request.cookies[0].decode("ascii")
        attributes = [part.strip() for part in cookie.split(";")]
        self.assertEqual(attributes[0], f"cherrychat_session={token}")
        lowered = {a.lower() for a in attributes[1:]}
        self.assertIn("httponly", lowered)
        self.assertIn("samesite=strict", lowered)
        self.assertIn("path=/", lowered)
        # At least 128 random bits: 43 url-safe base64 characters hold 258.
        self.assertRegex(token, r"\A[A-Za-z0-9_-]{43,}\Z")

    def test_the_cookie_is_set_once_per_response(self):
        request = make_request()
        first = sessions.session_of(request)
        second = sessions.session_of(request)
        self.assertEqual(first, second)
        self.assertEqual(len(request.cookies), 1)

    def test_tokens_are_fresh(self):
        tokens = {sessions.session_of(make_request()) for _ in range(20)}
        self.assertEqual(len(tokens), 20)

    def test_a_well_formed_cookie_is_kept(self):
        token = sessions.new_token()
        request = make_request(token.encode("ascii"))
        self.assertEqual(sessions.session_of(request), token)
        self.assertEqual(request.cookies, [])

    def test_a_malformed_cookie_is_replaced(self):
        good = sessions.new_token()
        for bad in [b"", b"0", b"ann", good[:-1].encode(), (good + "A").encode(),
                    good[:-1].encode() + b".", good[:-1].encode() + b"\xff"]:
            request = make_request(bad)
            token = sessions.session_of(request)
            self.assertNotEqual(token.encode(), bad)
            self.assertRegex(token, r"\A[A-Za-z0-9_-]{43}\Z")
            self.assertEqual(len(request.cookies), 1, bad)
            self.assertTrue(request.cookies[0].startswith(b"cherrychat_session=" + token.encode()))

    def test_session_in_the_url_never_grants_identity(self):
        victim = sessions.new_token()
        request = make_request()
        request.args = {b"session": [victim.encode()], b"cherrychat_session": [victim.encode()]}
        self.assertNotEqual(sessions.session_of(request), victim)

    def test_secure_flag_follows_the_connection(self):
        request = make_request()
        request.isSecure = lambda: True
        sessions.session_of(request)
        self.assertIn(b"secure", request.cookies[0].lower())
        request = make_request()
        sessions.session_of(request)
        self.assertFalse(re.search(rb";\s*secure", request.cookies[0].lower()))


class NicknameLookAlikeTests(SynchronousTestCase):
    """Nicknames are NFKC-normalized; what a reader cannot see, or what turns the text
    around it, is refused; nickname_identity() is the key of case-insensitive uniqueness."""

    def test_nfkc_folds_compatibility_forms(self):
        self.assertEqual(validation.nickname("Ａｎｎ"), "Ann")
        self.assertEqual(validation.nickname("ﬁsh"), "fish")
        self.assertEqual(validation.nickname("e\u0301"), "\u00e9")  # composed

    def test_invisible_format_and_bidi_characters_are_refused(self):
        for char in ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "\u202a", "\u2066",
                     "\u2069", "\u061c", "\u200e", "\u200f", "\ue000", "\U000f0000", "\u0378", "\u3164",
                     "\u115f", "\ufe0f", "\U000e0001", "\u034f", "\u180e"]:
            with self.assertRaises(BadRequest, msg=repr(char)) as caught:
                validation.nickname(f"an{char}n")
            self.assertEqual(caught.exception.reason, "nickname contains invisible or text-direction characters")

    def test_nfkc_cannot_smuggle_a_comma_or_a_long_name(self):
        with self.assertRaises(BadRequest):
            validation.nickname("a\uff0cb")  # full-width comma becomes a comma
        with self.assertRaises(BadRequest):
            validation.nickname("\u3392" * 12)  # each one becomes three characters

    def test_identity_is_case_insensitive_and_normalized(self):
        self.assertEqual(validation.nickname_identity("Ann"), "ann")
        self.assertEqual(validation.nickname_identity("ＡＮＮ"), "ann")
        self.assertEqual(validation.nickname_identity("Straße"), validation.nickname_identity("STRASSE"))
        self.assertNotEqual(validation.nickname_identity("ann"), validation.nickname_identity("anne"))

    def test_label_limit_refusal(self):
        error = validation.too_many_labels()
        self.assertEqual(error.code, 429)
        self.assertEqual(error.reason, f"too many connection labels for this nickname (at most {validation.MAX_LABELS_PER_NICKNAME})")
