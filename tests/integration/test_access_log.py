"""The access log: a line per request by default, none with --no-access-log."""

from __future__ import annotations

import io

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.integration.daemon import start_daemon, stop_daemon


class AccessLogTests(TestCase):
    @inlineCallbacks
    def lines_logged(self, *arguments: str):
        service, base = yield start_daemon(*arguments)
        try:
            log = io.StringIO()
            service.site._logFile = log
            for path in ("/healthz", "/who"):
                response = yield treq.get(base + path, persistent=False)
                self.assertEqual(response.code, 200)
                yield response.content()
            return log.getvalue().splitlines()
        finally:
            yield stop_daemon(service)

    @inlineCallbacks
    def test_a_line_per_request_by_default(self):
        lines = yield self.lines_logged()
        self.assertEqual(len(lines), 2, lines)
        self.assertIn('"GET /healthz HTTP/1.1" 200', lines[0])
        self.assertIn('"GET /who HTTP/1.1" 200', lines[1])

    @inlineCallbacks
    def test_none_with_no_access_log(self):
        lines = yield self.lines_logged("--no-access-log")
        self.assertEqual(lines, [])
