"""QST's tables as data: the settings section, the error texts and the close codes."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from brokergraph_qst.session import CLOSE_CODES, SERVER_ERRORS, refusal
from brokergraph_qst.settings import QstSettings

from gateway.contract import (
    BrokerGraphError,
    Conflict,
    InsufficientFunds,
    NotFound,
    Outcome,
    ProtocolError,
    Secret,
    SettingsError,
    UpstreamBusy,
    UpstreamRejected,
    UpstreamUnavailable,
)

SECTION: dict[str, Any] = {
    "url": "wss://127.0.0.1:7008/",
    "username": "demo-trader",
    "password": Secret("demo-pass"),  # as the gateway hands a secret-looking key over
    "client_unique_id": "6a1f0c1e-0000-4000-8000-000000000001",
}


def test_settings_defaults_and_the_hashed_secret() -> None:
    settings = QstSettings.from_section("qst", SECTION)
    assert (settings.ack_timeout_seconds, settings.max_subscriber_lag) == (10.0, 1000)
    assert settings.order_entry_provider == "QOR"
    assert settings.poll_followed_seconds is None, "QST's notifications keep streams live"
    config = settings.session_config()
    assert config.password_hash == hashlib.sha256(b"demo-pass").hexdigest()
    assert (config.request_timeout, config.ready_wait, config.busy_backoff) == (10.0, 5.0, 30.0)
    assert (config.backoff_initial, config.backoff_max) == (0.2, 10.0)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"timout_seconds": 5}, "unknown keys ['timout_seconds']"),
        ({"url": None}, "url is required"),
        ({"ack_timeout_seconds": 0}, "ack_timeout_seconds must be a number > 0"),
        ({"max_subscriber_lag": 2.5}, "max_subscriber_lag must be a whole number"),
        ({"order_entry_provider": "XYZ"}, "order_entry_provider must be one of ['PTS', 'QOR']"),
    ],
    ids=["typo", "missing", "zero", "fraction", "provider"],
)
def test_settings_refuse_what_would_be_silently_wrong(change: dict[str, Any], named: str) -> None:
    section = {k: v for k, v in {**SECTION, **change}.items() if v is not None}
    with pytest.raises(SettingsError) as refused:
        QstSettings.from_section("qst", section)
    assert "[connectors.qst]" in str(refused.value)
    assert named in str(refused.value)
    assert "demo-pass" not in str(refused.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Order #115300 not found", NotFound),
        ("Invalid account id: 400001", NotFound),
        ("Order #115300 is not working (Filled)", Conflict),
        ("Insufficient margin", InsufficientFunds),
        (
            "Insufficient buying power: initial margin 105000.00 USD"
            " would exceed equity 100000.00 USD",
            InsufficientFunds,
        ),
        # A vendor limit, not the caller's money: refused with QST's reason.
        ("Order quantity 100000.0 exceeds the maximum order size 500 for ESZ26", UpstreamRejected),
        ("Order Entry connection is not established", UpstreamUnavailable),
        ("Invalid price: 1000.10", UpstreamRejected),
        ("Internal server error (503)", UpstreamUnavailable),
    ],
)
def test_qst_texts_become_our_errors_with_the_text_as_message(
    text: str, error: type[BrokerGraphError]
) -> None:
    raised = refusal(text)
    assert type(raised) is error
    assert raised.message == text
    expected = {"platform": "qst", "vendorMessage": text}
    if SERVER_ERRORS.rule_for(text=text).outcome is Outcome.UNKNOWN:
        expected["outcome"] = "UNKNOWN"  # it may have been applied: a write says so
    assert raised.details == expected


def test_only_a_failure_inside_qst_leaves_the_outcome_unknown() -> None:
    assert SERVER_ERRORS.rule_for(text="Internal server error (503)").outcome is Outcome.UNKNOWN
    assert SERVER_ERRORS.rule_for(text="Invalid price: 1").outcome is Outcome.NOT_APPLIED
    assert refusal("").message == "no reason given"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (1000, UpstreamUnavailable),
        (1006, UpstreamUnavailable),
        (4001, ProtocolError),
        (4101, UpstreamBusy),
        (4102, UpstreamUnavailable),
    ],
)
def test_close_codes(code: int, error: type[BrokerGraphError]) -> None:
    lost = CLOSE_CODES.error(code=code)
    assert type(lost) is error
    expected: dict[str, object] = {"platform": "qst", "vendorCode": code}
    if CLOSE_CODES.rule_for(code=code).outcome is Outcome.UNKNOWN:
        expected["outcome"] = "UNKNOWN"  # requests in flight on the socket may have applied
    assert lost.details == expected
