"""The pure parts of the per-client limits: who a client is, waits, the frame bucket."""

from __future__ import annotations

import pytest

from conversation.config import Settings
from conversation.limits import (
    Client,
    FrameBucket,
    Identity,
    client_address,
    ip_identity,
    limit_key,
    parse_networks,
    rate_limited,
    wait_text,
)

LOOPBACK = parse_networks("127.0.0.1, ::1")


@pytest.mark.parametrize(
    ("peer", "real_ip", "forwarded", "expected"),
    [
        # Not a trusted proxy: its headers are not believed.
        ("203.0.113.9", "198.51.100.1", "198.51.100.2", "203.0.113.9"),
        # nginx on loopback names the client.
        ("127.0.0.1", "198.51.100.1", None, "198.51.100.1"),
        ("::1", "2001:db8::5", None, "2001:db8::5"),
        # Without X-Real-IP: the last address of X-Forwarded-For that is not a proxy's.
        ("127.0.0.1", None, "198.51.100.7, 198.51.100.1, 127.0.0.1", "198.51.100.1"),
        # Unreadable headers are not believed.
        ("127.0.0.1", "not an address", "nor this", "127.0.0.1"),
        ("127.0.0.1", None, None, "127.0.0.1"),
    ],
)
def test_client_address(
    peer: str, real_ip: str | None, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, real_ip, forwarded, LOOPBACK) == expected


def test_trusted_networks() -> None:
    networks = parse_networks("10.0.0.0/8,172.16.0.0/12")
    assert client_address("10.1.2.3", "198.51.100.4", None, networks) == "198.51.100.4"
    assert client_address("127.0.0.1", "198.51.100.4", None, networks) == "127.0.0.1"


def test_an_ipv6_client_counts_as_its_64() -> None:
    assert ip_identity("2001:db8:1:2::1") == ip_identity("2001:db8:1:2:ffff::9")
    assert ip_identity("2001:db8:1:2::1") != ip_identity("2001:db8:1:3::1")
    assert ip_identity("::ffff:198.51.100.1") == ip_identity("198.51.100.1")
    assert ip_identity("198.51.100.1") != ip_identity("198.51.100.2")


def test_identities_and_keys_hold_no_address_or_credential() -> None:
    cookie = "c" * 43
    client = Client.of("198.51.100.1", browser=cookie, session_id="s" * 32)
    assert [i.kind for i in client.identities] == ["ip", "browser", "session"]
    for identity in client.identities:
        key = limit_key("chat", "t", identity)
        assert key == f"chat:l:t:{{{identity.digest}}}"
        assert "198.51" not in key and cookie not in key
    # The same value as another kind is another identity.
    assert Identity.of("browser", "x") != Identity.of("session", "x")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1, "1 s"), (59, "59 s"), (60, "1 min"), (61, "2 min"), (3600, "1 h"), (5400, "1 h 30 min")],
)
def test_wait_text(seconds: int, text: str) -> None:
    assert wait_text(seconds) == text


def test_refusals_say_which_limit_whose_and_when() -> None:
    turns = rate_limited("turns", "session", 30, 12_001)
    assert turns.code == "rate_limited" and turns.retry_after == 13
    assert "30 messages" in turns.message and "this session" in turns.message
    assert "13 s" in turns.message and "not saved" in turns.message
    tokens = rate_limited("tokens", "ip", 1000, 3_600_000)
    assert tokens.retry_after == 3600 and "1000 tokens" in tokens.message
    assert "your network address" in tokens.message and "1 h" in tokens.message
    # Never less than a second, even when the wait is all but over.
    assert rate_limited("generations", "browser", 2, 0).retry_after == 1


def test_frame_bucket() -> None:
    bucket = FrameBucket(rate=2.0, burst=3)
    assert [bucket.take(10.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(10.0) == pytest.approx(0.5)
    assert bucket.take(10.25) == pytest.approx(0.25)
    assert bucket.take(10.5) == 0.0
    # Idle time refills it up to the burst, no further.
    assert [bucket.take(100.0) for _ in range(4)][-1] == pytest.approx(0.5)


def test_the_frame_cap_is_the_longest_message_in_utf8_and_its_envelope() -> None:
    settings = Settings(max_message_chars=100)
    assert 400 < settings.ws_max_frame_bytes <= 400 + 1024
