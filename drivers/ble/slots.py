"""Keypad codes of Nuki locks as code slots, and the news fetched when a beacon flags a change.

One call of the code-slot manager is one Nuki command (plus the challenge that every
secured command needs). Reads are answered from one listing of the lock's codes, fetched
again only after a write or when the lock signals a change: the first scan of a lock
costs one listing, not one read per slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.driver import SlotReading, SlotWrite
from bridge.errors import CodeSlotError, UnsupportedError
from drivers.ble.identity import native_id
from drivers.ble.nuki import commands, wire
from drivers.ble.nuki.const import Completion, ErrorCode, LogType
from drivers.ble.nuki.keypad import code_number, time_limit
from drivers.ble.nuki.session import Credentials, NukiRefusal, NukiSession

if TYPE_CHECKING:
    from drivers.ble.driver import BleDriver

_REFUSALS = {
    ErrorCode.K_CODE_ALREADY_EXISTS: "duplicate_code_on_device",
    ErrorCode.K_TOO_MANY_ENTRIES: "no_space_for_access_code_on_device",
    ErrorCode.K_CODE_INVALID: "code_constraints_violated",
}
CODE_NAME = "lockbridge"


class KeypadSlots:
    def __init__(self, driver: BleDriver) -> None:
        self._driver = driver
        self._listings: dict[str, dict[int, wire.KeypadCode]] = {}

    def _pin(self, native: str) -> int:
        pin = self._driver.security_pin
        if pin is None:
            raise UnsupportedError(
                "keypad codes need the lock's security PIN (ble.security_pin)", lock_id=native
            )
        return pin

    async def _listing(
        self, native: str, session: NukiSession, creds: Credentials, *, adopt: bool = True
    ) -> dict[int, wire.KeypadCode]:
        self._driver.count_radio_operation(native)
        codes = await commands.list_codes(session, creds, self._pin(native))
        listing = {code.code_id: code for code in codes}
        if not adopt:
            return listing
        self._listings[native] = listing
        if self._driver.book.adopt(native, set(listing), self._driver.slot_range):
            await self._driver.book.save()
        return listing

    async def read(self, native: str, slot: int) -> SlotReading:
        listing = self._listings.get(native)
        if listing is None:
            listing = await self._driver.with_session(
                native, lambda s, c: self._listing(native, s, c), f"read slot {slot}"
            )
        code_id = self._driver.book.code_id(native, slot)
        entry = listing.get(code_id) if code_id is not None else None
        if entry is None:
            return SlotReading(slot=slot, occupied=False)
        return SlotReading(
            slot=slot, occupied=True, enabled=entry.enabled, code=f"{entry.code:06d}"
        )

    async def write(self, native: str, request: SlotWrite) -> None:
        pin = self._pin(native)
        limit = time_limit(request.schedule)
        number = code_number(request.code)
        self._listings.pop(native, None)

        async def work(session: NukiSession, creds: Credentials) -> None:
            code_id = self._driver.book.code_id(native, request.slot)
            self._driver.count_radio_operation(native)
            try:
                if code_id is not None:
                    entry = wire.KeypadCode(code_id, number, CODE_NAME, request.enabled, limit)
                    try:
                        await commands.update_code(session, creds, pin, entry)
                        return
                    except NukiRefusal as err:
                        if err.error != ErrorCode.K_BAD_PARAMETER:
                            raise
                        # The code is gone from the lock: add it afresh.
                        self._driver.book.release(native, request.slot)
                try:
                    new_id = await commands.add_code(
                        session, creds, pin, code=number, name=CODE_NAME, limit=limit
                    )
                except NukiRefusal as err:
                    if err.error != ErrorCode.K_CODE_ALREADY_EXISTS:
                        raise
                    # Perhaps our own add, whose answer a dropped link swallowed.
                    new_id = await self._orphan_with(native, session, creds, number, err)
                    self._driver.book.bind(native, request.slot, new_id)
                    await commands.update_code(
                        session,
                        creds,
                        pin,
                        wire.KeypadCode(new_id, number, CODE_NAME, request.enabled, limit),
                    )
                    return
                self._driver.book.bind(native, request.slot, new_id)
                if not request.enabled:
                    entry = wire.KeypadCode(new_id, number, CODE_NAME, False, limit)
                    await commands.update_code(session, creds, pin, entry)
            except NukiRefusal as err:
                reason = _REFUSALS.get(err.error)  # type: ignore[call-overload]
                if reason is None:
                    raise
                raise CodeSlotError(
                    f"slot {request.slot}: the lock refused the code ({reason})",
                    reason=reason,
                    lock_id=native,
                ) from err
            finally:
                await self._driver.book.save()

        await self._driver.with_session(native, work, f"write slot {request.slot}")

    async def _orphan_with(
        self,
        native: str,
        session: NukiSession,
        creds: Credentials,
        number: int,
        refusal: NukiRefusal,
    ) -> int:
        """The id of a code with this PIN that no slot owns; else the refusal stands."""
        listing = await self._listing(native, session, creds, adopt=False)
        owned = set(self._driver.book.book(native).slots.values())
        for entry in listing.values():
            if entry.code == number and entry.code_id not in owned:
                return entry.code_id
        raise refusal

    async def clear(self, native: str, slot: int) -> None:
        pin = self._pin(native)
        code_id = self._driver.book.code_id(native, slot)
        if code_id is None:
            return
        self._listings.pop(native, None)

        async def work(session: NukiSession, creds: Credentials) -> None:
            self._driver.count_radio_operation(native)
            try:
                await commands.remove_code(session, creds, pin, code_id)
            except NukiRefusal as err:
                if err.error != ErrorCode.K_BAD_PARAMETER:  # already gone is cleared
                    raise CodeSlotError(
                        f"slot {slot}: the lock did not remove the code",
                        reason="failed_to_remove_from_device",
                        lock_id=native,
                    ) from err
            self._driver.book.release(native, slot)
            await self._driver.book.save()

        await self._driver.with_session(native, work, f"clear slot {slot}")

    async def fetch_news(self, session: NukiSession, creds: Credentials) -> None:
        native = native_id(creds.address)
        sink = self._driver.sink
        self._driver.count_radio_operation(native)
        states = await commands.read_states(session, creds)
        sink.lock_status(native, commands.status_update(states))
        pin = self._driver.security_pin
        if pin is None:
            return
        book = self._driver.book.book(native)
        self._driver.count_radio_operation(native)
        entries = await commands.read_log(session, creds, pin, after=book.log_cursor)
        fresh = book.log_cursor is not None
        cursor = max((e.index for e in entries), default=book.log_cursor or 0)
        if cursor != book.log_cursor:
            book.log_cursor = cursor
            await self._driver.book.save()
        reported = False
        if fresh:
            slots = {code: slot for slot, code in book.slots.items()}
            strangers = {
                entry.code_id
                for entry in entries
                if entry.kind == LogType.KEYPAD_ACTION
                and entry.completion == Completion.SUCCESS
                and entry.code_id not in slots
            }
            if strangers:
                # A code the bridge has not seen was used: list the codes once, so that the
                # event names its slot and the manager learns of it.
                await self._listing(native, session, creds)
                slots = {code: slot for slot, code in book.slots.items()}
                for code_id in strangers & set(slots):
                    sink.slot_changed(native, slots[code_id])
            for entry in entries:
                if entry.auth_id == creds.auth_id:
                    continue  # our own command, already reported when it completed
                event = commands.log_event(entry, slots)
                if event is not None:
                    sink.lock_event(native, event)
                    reported = True
        if not reported and fresh:
            # Nothing in the log explains the change: look whether codes were changed.
            before = self._listings.get(native)
            after = await self._listing(native, session, creds)
            if before is None or set(before) - set(after):
                sink.slot_changed(native, None)
                return
            for slot, code_id in list(book.slots.items()):
                if before.get(code_id) != after.get(code_id):
                    sink.slot_changed(native, slot)
