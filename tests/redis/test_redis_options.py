"""--redis URL parsing and option checking (no Redis needed)."""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from cherrychat.redis_backplane import RedisAddress, RedisKeys, parse_redis_url
from cherrychat.tap import Options


class RedisURLTests(SynchronousTestCase):
    def test_host_port_database_and_credentials(self):
        self.assertEqual(parse_redis_url("redis://127.0.0.1:6380/2"), RedisAddress("127.0.0.1", 6380, 2))
        self.assertEqual(parse_redis_url("redis://redis.internal"), RedisAddress("redis.internal", 6379, 0))
        self.assertEqual(
            parse_redis_url("redis://chat:s%40cret@[::1]:6379/0"),
            RedisAddress("::1", 6379, 0, password="s@cret", username="chat"),
        )

    def test_bad_urls_are_refused(self):
        for url in ("http://127.0.0.1:6379/0", "redis://", "redis://host/zero", "127.0.0.1:6379"):
            self.assertRaises(ValueError, parse_redis_url, url)

    def test_the_option_checks_the_url_and_is_off_by_default(self):
        options = Options()
        options.parseOptions([])
        self.assertIsNone(options["redis"])
        options = Options()
        options.parseOptions(["--redis", "redis://127.0.0.1:6379/1"])
        self.assertEqual(options["redis"], "redis://127.0.0.1:6379/1")
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--redis", "localhost:6379"])

    def test_databases_do_not_share_a_channel(self):
        self.assertNotEqual(RedisKeys(db=0).channel, RedisKeys(db=1).channel)
        self.assertEqual(RedisKeys().history("/cherrychat"), "cherrychat:history:/cherrychat")
