"""SMTP transport against a real aiosmtpd server on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import email
import email.policy
import ipaddress
import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from tenacity import wait_none

from relay_core.config import Config, Smtp, parse_config
from relay_core.errors import AuthError, ConfigError, RetriableError
from relay_core.mail import (
    FileTransport,
    PermanentMailError,
    SmtpTransport,
    build_message,
    make_message_id,
    make_transport,
)
from tests.smtp import EphemeralController, serving

SUBJECT = "選考結果のご連絡（株式会社サンプル）"


class Recorder:
    """Records what arrives; `replies` are DATA answers used before the default 250."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.peers: list[tuple] = []      # one entry per connection that sent MAIL
        self.sessions: list = []
        self.replies: list[str] = []
        self.reject: set[str] = set()
        self.rcpt_attempts = 0

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if session.peer not in self.peers:
            self.peers.append(session.peer)
            self.sessions.append(server)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_attempts += 1
        if address in self.reject:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.replies:
            return self.replies.pop(0)
        self.messages.append(envelope.content)
        return "250 2.0.0 queued"


@contextmanager
def smtp_server(**kwargs) -> Iterator[tuple[Recorder, EphemeralController]]:
    handler = Recorder()
    with serving(handler, **kwargs) as controller:
        yield handler, controller


@pytest.fixture
def server() -> Iterator[tuple[Recorder, EphemeralController]]:
    with smtp_server() as running:
        yield running


def settings(port: int, **extra) -> Smtp:
    return Smtp.model_validate({"host": "127.0.0.1", "port": port, "security": "none",
                                "retries": 2, "timeout_seconds": 5, **extra})


def message(n: int = 1, to: str = "hanako@example.com"):
    return build_message(Config(), to_addr=to, to_name="山田 花子", subject=SUBJECT,
                         text=f"本文 {n}\n", html=f"<p>本文 {n}</p>",
                         message_id=make_message_id(f"test:{n}", "rejection", "example.co.jp"),
                         date=datetime(2026, 5, 1, 10, tzinfo=UTC))


def test_batch_uses_one_connection_and_logs_no_address(server, caplog):
    handler, controller = server
    caplog.set_level(logging.DEBUG, logger="relay_core")
    with SmtpTransport(settings(controller.port), wait=wait_none()) as transport:
        for n in range(5):
            transport.send(message(n))
    assert len(handler.messages) == 5
    assert len(handler.peers) == 1
    assert "relay." in caplog.text and "hanako" not in caplog.text and "本文" not in caplog.text


def test_plain_send_parses_back_with_the_kanji_subject(server):
    handler, controller = server
    with SmtpTransport(settings(controller.port), wait=wait_none()) as transport:
        transport.send(message())
    parsed = email.message_from_bytes(handler.messages[0], policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["To"].addresses[0].display_name == "山田 花子"
    assert parsed.get_body(("plain",)).get_content().strip() == "本文 1"


def test_451_is_retried_on_the_same_connection(server):
    handler, controller = server
    handler.replies = ["451 4.3.0 try again later"]
    with SmtpTransport(settings(controller.port), wait=wait_none()) as transport:
        transport.send(message())
    assert len(handler.messages) == 1 and len(handler.peers) == 1


def test_4xx_that_persists_becomes_retriable(server):
    handler, controller = server
    handler.replies = ["451 4.3.0 try again later"] * 10
    with SmtpTransport(settings(controller.port, retries=2), wait=wait_none()) as transport:
        with pytest.raises(RetriableError, match="451 4.3.0 at DATA"):
            transport.send(message())
    assert len(handler.replies) == 7   # three attempts: the first and two retries


def test_550_to_rcpt_is_permanent_and_suppresses_the_address(server):
    handler, controller = server
    handler.reject = {"gone@example.com"}
    with SmtpTransport(settings(controller.port), wait=wait_none()) as transport:
        with pytest.raises(PermanentMailError) as caught:
            transport.send(message(to="gone@example.com"))
        transport.send(message(2))   # the connection is still usable afterwards
    assert caught.value.code == 550 and caught.value.suppress_address
    assert "gone@" not in str(caught.value) and "5.1.1" in str(caught.value)
    assert handler.rcpt_attempts == 2   # not retried
    assert len(handler.messages) == 1 and len(handler.peers) == 1


def test_5xx_at_data_is_permanent_without_suppression(server):
    handler, controller = server
    handler.replies = ["554 5.7.1 message refused"]
    with SmtpTransport(settings(controller.port), wait=wait_none()) as transport:
        with pytest.raises(PermanentMailError) as caught:
            transport.send(message())
    assert caught.value.code == 554 and not caught.value.suppress_address


def test_reconnects_when_the_server_dropped_the_connection(server):
    handler, controller = server
    with SmtpTransport(settings(controller.port, retries=0), wait=wait_none()) as transport:
        transport.send(message(1))
        controller.loop.call_soon_threadsafe(handler.sessions[0].transport.close)
        time.sleep(0.2)
        transport.send(message(2))   # no retries allowed: the reconnect is free
    assert len(handler.messages) == 2 and len(handler.peers) == 2


def test_unreachable_server_is_retriable():
    with smtp_server() as (_, controller):
        port = controller.port
    transport = SmtpTransport(settings(port, retries=1), wait=wait_none())
    with pytest.raises(RetriableError, match="2 attempts"):
        transport.send(message())


def test_rate_limit_spaces_messages(server):
    handler, controller = server
    started = time.monotonic()
    with SmtpTransport(settings(controller.port, messages_per_second=20),
                       wait=wait_none()) as transport:
        for n in range(4):
            transport.send(message(n))
    assert time.monotonic() - started >= 0.15
    assert len(handler.messages) == 4


def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"relay"
          and auth_data.password == b"s3cret")
    return AuthResult(success=ok, handled=False)   # handled=False: aiosmtpd answers 535


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("password, works", [("s3cret", True), ("wrong", False)])
def test_login(monkeypatch, password, works):
    monkeypatch.setenv("CR_TEST_SMTP_PASSWORD", password)
    with smtp_server(authenticator=authenticator, auth_require_tls=False) as (handler, controller):
        smtp = settings(controller.port, username="relay", password="env:CR_TEST_SMTP_PASSWORD")
        transport = SmtpTransport(smtp, wait=wait_none())
        if works:
            with transport:
                transport.send(message())
            assert len(handler.messages) == 1
        else:
            with pytest.raises(AuthError, match="535") as caught:
                transport.open()
            assert "wrong" not in str(caught.value) and handler.messages == []


# --- TLS -------------------------------------------------------------------------------------

def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Career Relay test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(leaf.public_bytes(pem))
    paths[2].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls(tmp_path) -> tuple[Path, ssl.SSLContext]:
    ca, cert, key = _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return ca, context


def test_starttls_with_a_verified_certificate(tls):
    ca, context = tls
    with smtp_server(tls_context=context, require_starttls=True) as (handler, controller):
        smtp = settings(controller.port, security="starttls", ca_file=str(ca))
        with SmtpTransport(smtp, wait=wait_none()) as transport:
            transport.send(message())
    assert len(handler.messages) == 1


def test_starttls_refuses_an_unverified_certificate(tls):
    _, context = tls
    with smtp_server(tls_context=context, require_starttls=True) as (handler, controller):
        transport = SmtpTransport(settings(controller.port, security="starttls"),
                                  wait=wait_none())
        with pytest.raises(ConfigError, match="could not be verified"):
            transport.send(message())
    assert handler.messages == []


def test_smtps_with_a_verified_certificate(tls):
    ca, context = tls
    with smtp_server(ssl_context=context) as (handler, controller):
        smtp = settings(controller.port, security="ssl", ca_file=str(ca))
        with SmtpTransport(smtp, wait=wait_none()) as transport:
            transport.send(message())
    assert len(handler.messages) == 1


def test_make_transport(tmp_path):
    file = make_transport(parse_config({"mail": {"outbox_dir": "out"}}, tmp_path))
    assert isinstance(file, FileTransport) and file.outbox_dir == tmp_path / "out"
    assert file.idempotent
    smtp = make_transport(parse_config({"mail": {"transport": "smtp",
                                                 "smtp": {"ca_file": "ca.pem"}}}, tmp_path))
    assert isinstance(smtp, SmtpTransport) and not smtp.idempotent
    assert smtp.settings.ca_file == str(tmp_path / "ca.pem")
