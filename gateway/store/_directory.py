"""Partners and link owners held in memory, so authorisation reads no database.

Every account-scoped request asks who owns the account and what that partner is;
both change only through the store's own partner and link methods.  A gateway's store
loads both tables once its services share the event log (:meth:`Directory.follow`)
and updates this copy after each change commits — and tells the other replicas: each
notice names one changed key, and a replica re-reads that key from the database (the
truth) rather than trusting the notice, so duplicates and reordering do no harm.

What memory does not hold is read from the database (and then remembered), so an
object another replica has just linked, or a partner it has just created, is found at
once.  A removal (unlink, deleted partner) reaches another replica with its notice
(milliseconds on Redis): until then that replica still answers with the old owner.
Should the follow break beyond what the log can replay, the copy is reloaded whole;
until it is, every lookup goes to the database.  As a backstop for a notice that could
not be appended at all, a following replica reloads the whole copy every
:data:`REFRESH_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.events import EventLog, InProcessEventLog

from ._records import PartnerRecord

__all__ = ["Directory", "LinkKey", "PartnerChange"]

logger = logging.getLogger("gateway.store.directory")

#: (platform, kind, external id)
LinkKey = tuple[str, str, str]
#: The event-log topic of the notices (under the cluster's namespace).
TOPIC = "store-directory"
#: A following replica reloads the whole copy this often (seconds), whatever it heard.
REFRESH_SECONDS = 60.0
#: After the follow broke, wait this long before following again.
RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class PartnerChange:
    """The partner ``code`` changed (created, updated or deleted, its links with it)."""

    code: str


@dataclass(frozen=True, slots=True)
class LinkChange:
    """The owner of one platform object changed (linked or unlinked)."""

    key: LinkKey


#: What a directory reads from the database: everything, one partner, some owners.
LoadAll = Callable[[], Awaitable[tuple[dict[str, PartnerRecord], dict[LinkKey, str]]]]
LoadPartner = Callable[[str], Awaitable[tuple[PartnerRecord | None, dict[LinkKey, str]]]]
LoadOwner = Callable[[LinkKey], Awaitable[str | None]]


class Directory:
    """The in-memory copy; ``ready`` False means "ask the database"."""

    def __init__(self, load_all: LoadAll, load_partner: LoadPartner, load_owner: LoadOwner) -> None:
        self._load_all = load_all
        self._load_partner = load_partner
        self._load_owner = load_owner
        self.partners: dict[str, PartnerRecord] = {}
        self.owners: dict[LinkKey, str] = {}
        self.ready = False
        self._log: EventLog | None = None
        self._task: asyncio.Task[None] | None = None
        #: Whether the current break was logged (once per break, not per retry).
        self._warned = False
        #: Counts changes applied: what a database read found is remembered only if
        #: nothing changed while it ran (else a removal could be undone by it).
        self.generation = 0

    async def load(self) -> None:
        self.partners, self.owners = await self._load_all()
        self.generation += 1
        self.ready = True

    # -- this replica's changes (called after they committed) -----------------------

    async def partner_changed(self, code: str, record: PartnerRecord | None) -> None:
        self.generation += 1
        if record is None:
            self.partners.pop(code, None)
            # Deleting a partner deletes its links.
            for key in [key for key, owner in self.owners.items() if owner == code]:
                del self.owners[key]
        else:
            self.partners[code] = record
        await self._tell(PartnerChange(code))

    async def owner_changed(self, key: LinkKey, owner: str | None) -> None:
        self.generation += 1
        if owner is None:
            self.owners.pop(key, None)
        else:
            self.owners[key] = owner
        await self._tell(LinkChange(key))

    async def _tell(self, notice: PartnerChange | LinkChange) -> None:
        if self._log is None:
            return
        try:
            await self._log.append(TOPIC, notice)
        except Exception:
            # Committed already: the other replicas pick it up at their next reload.
            logger.exception("could not tell the other replicas of %r", notice)

    # -- the other replicas' changes --------------------------------------------------

    def follow(self, log: EventLog) -> None:
        """Load the copy and apply the notices other replicas append to ``log`` (an
        in-process log has no other replica: loading is all)."""
        if self._task is not None:
            return
        if isinstance(log, InProcessEventLog):
            self._task = asyncio.create_task(self._load_once(), name="store directory load")
            return
        self._log = log
        self._task = asyncio.create_task(self._follow(log), name="store directory follower")

    async def _load_once(self) -> None:
        try:
            await self.load()
        except Exception as error:  # the database answers every lookup meanwhile
            self._broken(error)

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._log = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(self, log: EventLog) -> None:
        while True:
            try:
                # The head before the reload: a change committed during it is replayed.
                after = await log.head(TOPIC)
                await self.load()
                self._warned = False
                async with log.follow(TOPIC, after=after) as follower:
                    while True:
                        try:
                            async with asyncio.timeout(REFRESH_SECONDS):
                                entry = await anext(follower)
                        except TimeoutError:
                            break  # reload (a notice may never have been appended)
                        except StopAsyncIteration:
                            return  # the log closed: the gateway is stopping
                        await self._apply(entry.event)
            except asyncio.CancelledError:
                raise
            except RuntimeError as error:
                if "closed" in str(error):
                    return
                self._broken(error)
            except Exception as error:
                self._broken(error)
            await asyncio.sleep(RETRY_SECONDS)

    def _broken(self, error: Exception) -> None:
        self.ready = False
        if not self._warned:
            self._warned = True
            logger.warning(
                "following the store directory broke (%s): the database answers until it "
                "is reloaded",
                error,
            )

    async def _apply(self, notice: object) -> None:
        self.generation += 1  # before the read: a remembered miss from before it is void
        if isinstance(notice, PartnerChange):
            record, owned = await self._load_partner(notice.code)
            if record is None:
                self.partners.pop(notice.code, None)
            else:
                self.partners[notice.code] = record
            stale = [k for k, owner in self.owners.items() if owner == notice.code]
            for key in stale:
                if key not in owned:
                    del self.owners[key]
            self.owners.update(owned)
        elif isinstance(notice, LinkChange):
            owner = await self._load_owner(notice.key)
            if owner is None:
                self.owners.pop(notice.key, None)
            else:
                self.owners[notice.key] = owner

    # -- lookups ----------------------------------------------------------------------

    def remember_partners(self, records: Iterable[PartnerRecord], since: int) -> None:
        """Partners memory missed, read from the database from ``generation`` ``since``."""
        if since == self.generation:
            self.partners.update((record.code, record) for record in records)

    def remember_owners(self, owned: Iterable[tuple[LinkKey, str]], since: int) -> None:
        """Owners memory missed, read from the database from ``generation`` ``since``."""
        if since == self.generation:
            self.owners.update(owned)

    def owners_of(self, platform: str, kind: str, external_ids: Iterable[str]) -> list[str | None]:
        owners = self.owners
        return [owners.get((platform, kind, external_id)) for external_id in external_ids]

    def partners_of(self, codes: Sequence[str]) -> list[PartnerRecord | None]:
        partners = self.partners
        return [partners.get(code) for code in codes]
