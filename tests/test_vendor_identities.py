"""The store's side of "vendor identities belong to one partner", on SQLite and PostgreSQL.

Provisioning claims each identity a request would reuse or bind (links of kind
``identity``) before any upstream write, and releases only what it claimed when the
flow created nothing; ``Store.claim`` tells the two apart, and its primary key lets one
partner win a race.  The end-to-end attacks run in ``plugins/*/tests/test_identities.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import Conflict
from gateway.store import Store

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]
FEED = "dxfeed-account:6ddbec14-dd36-4358-adbb-80421d044ba3"


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'identities.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(store_url)
    for code in ("P1", "P2"):
        await opened.upsert_partner(code)
    yield opened
    await opened.close()


async def test_a_claim_says_whether_it_made_the_link(store: Store) -> None:
    assert await store.claim("P1", "dxtrade", "identity", FEED) is True
    assert await store.claim("P1", "dxtrade", "identity", FEED) is False  # held already
    with pytest.raises(Conflict) as refused:
        await store.claim("P2", "dxtrade", "identity", FEED)
    assert "P1" not in refused.value.message
    assert await store.owners("dxtrade", "identity", [FEED]) == ["P1"]
    # The same value on another platform is another identity.
    assert await store.claim("P2", "ctrader", "identity", FEED) is True
    assert [link.external_id for link in await store.links_of_partner("P1")] == [FEED]


async def test_one_partner_wins_a_race_for_an_identity(store: Store) -> None:
    async def claim(partner: str) -> str | None:
        try:
            await store.claim(partner, "ctrader", "identity", "ctid-email:a@example.com")
        except Conflict:
            return None
        return partner

    winners = [w for w in await asyncio.gather(*(claim(p) for p in ["P1", "P2"] * 5)) if w]
    assert len(set(winners)) == 1
    owners = await store.owners("ctrader", "identity", ["ctid-email:a@example.com"])
    assert owners == [winners[0]]


async def test_a_released_claim_is_free_again(store: Store) -> None:
    assert await store.claim("P1", "dxtrade", "identity", FEED)
    assert await store.unlink("dxtrade", "identity", FEED)
    assert await store.claim("P2", "dxtrade", "identity", FEED) is True
