"""The ``[connectors.ctrader]`` settings section, read and checked once at start.

Read by the contract's :class:`~gateway.contract.ConnectorSettings`: an unknown key
(a typo such as ``timout_seconds``) stops the connector at start, the manager
``login`` may be given as a digits string (environment variables are strings), and
the password arrives as a ``Secret`` and is revealed only here.  The TLS keys
(``verify_tls``, ``ca_file``, ``allow_plaintext``) come from
:class:`~gateway.contract.TlsSettings`: cTrader is HTTPS-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar

from gateway.contract import TlsSettings, setting

__all__ = ["CTraderSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CTraderSettings(TlsSettings):
    """What the connector needs; defaults follow cTrader's guidance (see the README)."""

    url: str
    #: The manager (cBroker) login.
    login: int
    password: str
    #: The White Label (brokerName).
    broker_name: str
    #: environmentName of cTID links: live / demo.
    environment: str = "live"
    timeout_seconds: float = 10.0
    #: The Reporting API's base (``https://HOST:PORT``, serving ``/repo/…``), ``url`` when
    #: unset: its balance-history snapshot settles a money write whose answer was lost.
    reporting_url: str | None = None
    #: Look-back before ``from`` for deals of positions opened earlier (closedPositions
    #: filters on position creation time); 0 reads the period only.
    deals_lookback_days: int = setting(90, minimum=-1)
    #: closedPositions windows fetched at once.
    window_concurrency: int = 4
    #: How long a window read waits for other accounts' reads of the same window (a
    #: page's analytics): more than ``single_read_limit`` of them make one call
    #: without ``login`` instead of one each.
    window_batch_seconds: float = 0.005
    #: Batches of at most this many accounts read each trader (4.2); larger ones make
    #: one list call (4.3); 0 always lists.
    single_read_limit: int = setting(3, minimum=-1)
    preferred_language: str = "EN"
    default_group: str = "Default"
    default_currency: str = "USD"
    default_leverage: Decimal = Decimal(100)
    #: A createTrader without an idempotencyKey identical to one this connector finished
    #: for the same e-mail and partner this recently is refused as a double submit
    #: (CONFLICT naming its account); 0 turns the check off.
    double_submit_seconds: float = 600.0
    #: How long the gateway keeps a closedPositions window that can no longer change
    #: (it lies in the past and no position opened in it is still open).
    final_window_cache_seconds: float = 86400.0
    #: 4.9 (check a trader password): the path was never recovered, this one is inferred;
    #: ``{login}`` is the trader login.
    check_password_path: str = "/v2/webserv/traders/{login}/checkpassword"
    #: 4.14-4.22 (attributes): paths and keys were not recovered; this prefix (with
    #: ``/traders/list``, ``/traders``, ``/traders/delete``) is inferred.
    attributes_path: str = "/v2/webserv/attributes"
    #: How long the symbol list (6.1: each symbol's category and asset class, for the
    #: analytics' rankings) is kept: read once per this TTL, not once per account.
    symbols_cache_seconds: float = 3600.0
    #: Put an account's money in USD with its closing deals' ``usdConversionRate`` /
    #: (``closePrice`` * ``depositConversionRate``): cTrader documents the columns, not
    #: that formula (inferred), so false reports every non-USD account unconverted.
    deal_conversion_rates: bool = True

    url_settings: ClassVar[tuple[str, ...]] = ("url", "reporting_url")

    def __post_init__(self) -> None:
        # cTrader's deposit assets are upper case; compare like with like.
        object.__setattr__(self, "default_currency", self.default_currency.upper())

    @property
    def is_live(self) -> bool:
        return not self.environment.lower().startswith("demo")
