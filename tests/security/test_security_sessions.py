"""Sessions and nickname ownership on every transport, and TLS with a certificate made here."""

from __future__ import annotations

import datetime
import os
import re
import shutil
import tempfile
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.ssl import Certificate
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS

from cherrychat import sessions
from tests.integration.integration_support import ChatTestCase
from tests.security.security_support import MemoryDaemon, cookie_of

TRANSPORTS = ("websocket", "sse", "xhrstream", "iframe", "longpoll")


class TokenTests(SynchronousTestCase):
    def test_tokens_are_256_bits_from_secrets(self) -> None:
        calls = []
        real = sessions.secrets.token_urlsafe
        self.patch(sessions.secrets, "token_urlsafe", lambda n: calls.append(n) or real(n))
        tokens = {sessions.new_token() for _ in range(100)}
        self.assertEqual(calls, [32] * 100)  # 32 bytes = 256 bits
        self.assertEqual(len(tokens), 100)
        self.assertTrue(all(re.fullmatch(r"[A-Za-z0-9_-]{43}", t) for t in tokens))

    def test_cookie_flags_and_no_session_from_the_url(self) -> None:
        daemon = MemoryDaemon(self)
        first = daemon.request("GET", "/healthz")
        cookie = first.header(b"set-cookie")
        assert cookie is not None
        self.assertIn(b"HttpOnly", cookie)
        self.assertIn(b"SameSite=strict", cookie)
        self.assertIn(b"Path=/", cookie)
        self.assertNotIn(b"Secure", cookie)  # plain HTTP; see TLSTests for Secure
        ann = cookie_of(first)
        token = ann.split("=", 1)[1]
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        self.assertEqual(daemon.request("POST", "/join", {**form, "Cookie": ann}, b"user=ann").code, 200)
        before = daemon.state()
        # Naming ann's token anywhere in the URL grants nothing.
        self.assertEqual(daemon.request("GET", f"/msg?user=ann&msg=x&cherrychat_session={token}").code, 403)
        self.assertEqual(daemon.request("GET", f"/msg?user=ann&msg=x&session={token[:32]}").code, 403)
        self.assertEqual(daemon.request("GET", f"/msg?user=ann&msg=x&session={token}").code, 400)  # not a label
        # A malformed cookie is replaced, never trusted.
        answer = daemon.request("GET", "/msg?user=ann&msg=x", {"Cookie": "cherrychat_session=" + token[:-1] + "!"})
        self.assertEqual(answer.code, 403)
        self.assertNotEqual(cookie_of(answer), ann)
        self.assertEqual(daemon.state(), before)


class ImpersonationTests(ChatTestCase):
    """Another browser session naming a held nickname: 403 on every transport, 409 on
    /join, 403 on /msg; nothing is delivered or changed."""

    @inlineCallbacks
    def browser(self):
        """A browser holding a session cookie, from its first request."""
        browser = self.add_browser(self.base)
        yield browser.get("/healthz")
        return browser

    @inlineCallbacks
    def test_every_transport_refuses_another_sessions_nickname(self):
        ann, eve = (yield self.browser()), (yield self.browser())
        self.assertEqual((yield ann.post("/join", user="ann")), (200, "joined\n"))
        history = self.service.hub.channel("/cherrychat").last_id
        for transport in TRANSPORTS:
            client, status = yield self.connect(eve, "ann", transport)
            self.assertEqual(status, 403, transport)
            self.assertEqual(client.messages, [])
        self.assertEqual((yield eve.post("/join", user="ann"))[0], 409)
        self.assertEqual((yield eve.get("/msg", user="ann", msg="as ann"))[0], 403)
        self.assertEqual((yield eve.post("/msg", user="ann", msg="as ann"))[0], 403)
        self.assertEqual(self.service.hub.channel("/cherrychat").last_id, history)
        self.assertEqual(self.service.chat.holder_of("ann"), ann.cookie_header().decode().split("=", 1)[1])
        self.assertEqual(self.service.hub.listener_count("ann, 0, /cherrychat"), 0)


def make_certificate(directory: str) -> tuple[str, bytes]:
    """A self-signed certificate for localhost and 127.0.0.1; returns the PEM path and PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path = os.path.join(directory, "server.pem")
    with open(path, "wb") as pem:
        pem.write(key_pem + cert_pem)
    return path, cert_pem


class TLSTests(TestCase):
    """``--listen ssl:...``: the chat over TLS, and the session cookie is Secure there."""

    timeout = 30

    @inlineCallbacks
    def test_tls_listener_and_secure_cookie(self):
        from tests.integration.daemon import start_daemon, stop_daemon

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        pem, cert_pem = make_certificate(directory)
        service, _ = yield start_daemon("--listen", f"ssl:0:interface=127.0.0.1:privateKey={pem}")
        self.addCleanup(stop_daemon, service)
        port = (yield service.listeners[1].when_listening()).getHost().port
        policy = BrowserLikePolicyForHTTPS(trustRoot=Certificate.loadPEM(cert_pem))
        from twisted.web.client import HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        http = HTTPClient(Agent(reactor, contextFactory=policy, pool=pool))
        base = f"https://localhost:{port}"
        response = yield http.get(base + "/static/chat.html")
        yield response.content()
        self.assertEqual(response.code, 200)
        cookie = response.headers.getRawHeaders(b"set-cookie")[0]
        self.assertIn(b"; Secure", cookie)
        self.assertIn(b"HttpOnly", cookie)
        session = cookie.split(b";")[0]
        headers = {b"Cookie": [session], b"Content-Type": [b"application/x-www-form-urlencoded"],
                   b"Origin": [base.encode()]}
        response = yield http.post(base + "/join", data=urlencode({"user": "ann"}).encode(), headers=headers)
        self.assertEqual((response.code, (yield response.text())), (200, "joined\n"))
        response = yield http.get(base + "/history?limit=5")
        self.assertIn("ann joined", (yield response.text()))
        # A page of the http:// origin is another site for the https:// daemon.
        headers[b"Origin"] = [f"http://localhost:{port}".encode()]
        response = yield http.post(base + "/msg", data=b"user=ann&msg=x", headers=headers)
        yield response.content()
        self.assertEqual(response.code, 403)
