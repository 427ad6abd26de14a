"""A simulated Zigbee door lock with a keypad: real Door Lock cluster (0x0101) behaviour.

It keeps true lock state (bolt, door, battery, PIN slots with user status and type,
week-day and year-day schedules), answers the Door Lock commands, and when someone
uses its keypad or knob it reports the change and sends an operation event
notification, as real locks do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import zigpy.types as t
from zigpy.zcl import foundation
from zigpy.zcl.clusters.closures import (
    DoorLock,
    DoorState,
    LockState,
    OperationEvent,
    OperationEventSource,
    ProgrammingEvent,
    UserStatus,
    UserType,
)
from zigpy.zcl.clusters.general import Basic, Ota, PowerConfiguration

from simulators.zigbee.node import Reply, SimCluster, SimEndpoint, SimNode

DOOR_LOCK_DEVICE_TYPE = 0x000A
LOCK_ENDPOINT = 1
NO_USER = 0xFFFF
# ZCL Door Lock status codes of set_pin_code_response.
PIN_MEMORY_FULL = 0x02
PIN_DUPLICATE = 0x03
ZIGBEE_EPOCH = datetime(2000, 1, 1)

Cmd = DoorLock.ServerCommandDefs
Rsp = DoorLock.ClientCommandDefs
Attr = DoorLock.AttributeDefs


@dataclass(slots=True)
class PinSlot:
    status: int
    user_type: int
    pin: str = field(repr=False)


@dataclass(slots=True)
class LockSettings:
    """What differs between lock models: the simulator config, per lock."""

    slots: int = 30
    min_pin_length: int = 4
    max_pin_length: int = 8
    week_day_schedules: int = 7
    year_day_schedules: int = 2
    masked_codes: bool = False
    manufacturer: str = "lockbridge"
    model: str = "SimLock Z1"


@dataclass(slots=True)
class LockData:
    """The lock's persistent state (what survives the lock losing its link)."""

    lock_state: int = LockState.Locked
    door_state: int = DoorState.Closed
    battery: int = 100
    online: bool = True
    pins: dict[int, PinSlot] = field(default_factory=dict)
    week_day: dict[str, list[int]] = field(default_factory=dict)
    year_day: dict[str, list[int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pins"] = {str(slot): dataclasses.asdict(pin) for slot, pin in self.pins.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockData:
        pins = {int(slot): PinSlot(**pin) for slot, pin in data.get("pins", {}).items()}
        return cls(**{**data, "pins": pins})


def local_seconds(moment: datetime) -> int:
    return int((moment.replace(tzinfo=None) - ZIGBEE_EPOCH).total_seconds())


class SimDoorLock(SimNode):
    """A battery-powered keypad lock (an end device with a Door Lock server cluster)."""

    def __init__(
        self,
        ieee: t.EUI64,
        nwk: int,
        settings: LockSettings,
        data: LockData,
        *,
        clock: Callable[[], datetime],
        send: Reply,
        changed: Callable[[], None],
    ) -> None:
        self.settings = settings
        self.data = data
        self.frames_received = 0
        self._clock = clock
        self._send = send
        self._held: list[t.ZigbeePacket] | None = None
        self._changed = changed
        self._door = SimCluster(DoorLock)
        self._power = SimCluster(PowerConfiguration)
        basic = SimCluster(
            Basic,
            {
                Basic.AttributeDefs.zcl_version.id: 8,
                Basic.AttributeDefs.app_version.id: 1,
                Basic.AttributeDefs.manufacturer.id: settings.manufacturer,
                Basic.AttributeDefs.model.id: settings.model,
                Basic.AttributeDefs.power_source.id: 0x03,  # battery
            },
        )
        ota = SimCluster(Ota, {Ota.AttributeDefs.current_file_version.id: 0x00010002})
        endpoint = SimEndpoint(
            LOCK_ENDPOINT,
            DOOR_LOCK_DEVICE_TYPE,
            servers={
                Basic.cluster_id: basic,
                PowerConfiguration.cluster_id: self._power,
                DoorLock.cluster_id: self._door,
            },
            clients={Ota.cluster_id: ota},
        )
        super().__init__(ieee, nwk, [endpoint])
        self._door.attributes.update(
            {
                Attr.lock_type.id: 0x00,
                Attr.actuator_enabled.id: 1,
                Attr.num_of_total_users_supported.id: settings.slots,
                Attr.num_of_pin_users_supported.id: settings.slots,
                Attr.num_of_week_day_schedules_supported_per_user.id: settings.week_day_schedules,
                Attr.num_of_year_day_schedules_supported_per_user.id: settings.year_day_schedules,
                Attr.max_pin_len.id: settings.max_pin_length,
                Attr.min_pin_len.id: settings.min_pin_length,
                Attr.send_pin_ota.id: 0 if settings.masked_codes else 1,
            }
        )
        self._sync_attributes()

    def _sync_attributes(self) -> None:
        self._door.attributes[Attr.lock_state.id] = self.data.lock_state
        self._door.attributes[Attr.door_state.id] = self.data.door_state
        self._power.attributes[PowerConfiguration.AttributeDefs.battery_percentage_remaining.id] = (
            self.data.battery * 2
        )
        self._power.attributes[PowerConfiguration.AttributeDefs.battery_voltage.id] = (
            24 + self.data.battery * 6 // 100
        )

    # Radio side

    def cluster_command(
        self,
        packet: t.ZigbeePacket,
        header: foundation.ZCLHeader,
        payload: bytes,
        cluster: SimCluster,
        reply: Reply,
    ) -> None:
        if cluster is not self._door or header.command_id not in DoorLock.server_commands:
            super().cluster_command(packet, header, payload, cluster, reply)
            return
        definition = DoorLock.server_commands[header.command_id]
        try:
            request, _ = definition.schema.deserialize(payload)
        except (ValueError, KeyError):
            self._default_response(packet, header, foundation.Status.MALFORMED_COMMAND, reply)
            return
        handler = getattr(self, f"_cmd_{definition.name}", None)
        if handler is None:
            super().cluster_command(packet, header, payload, cluster, reply)
            return
        # Like firmware, answer the command first and report what it changed afterwards.
        self._held = []
        try:
            response_name, fields = handler(request)
            response = getattr(Rsp, response_name)
            self._respond(packet, header, response.id, response.schema(**fields).serialize(), reply)
        finally:
            held, self._held = self._held, None
        self._changed()
        for frame in held:
            reply(frame)

    def _cmd_lock_door(self, _: Any) -> tuple[str, dict[str, Any]]:
        self._move(LockState.Locked, OperationEventSource.RF, OperationEvent.Lock, NO_USER)
        return "lock_door_response", {"status": foundation.Status.SUCCESS}

    def _cmd_unlock_door(self, _: Any) -> tuple[str, dict[str, Any]]:
        self._move(LockState.Unlocked, OperationEventSource.RF, OperationEvent.Unlock, NO_USER)
        return "unlock_door_response", {"status": foundation.Status.SUCCESS}

    def _cmd_unlock_with_timeout(self, _: Any) -> tuple[str, dict[str, Any]]:
        self._move(LockState.Unlocked, OperationEventSource.RF, OperationEvent.Unlock, NO_USER)
        return "unlock_with_timeout_response", {"status": foundation.Status.SUCCESS}

    def _cmd_toggle_door(self, _: Any) -> tuple[str, dict[str, Any]]:
        if self.data.lock_state == LockState.Locked:
            self._move(LockState.Unlocked, OperationEventSource.RF, OperationEvent.Unlock, NO_USER)
        else:
            self._move(LockState.Locked, OperationEventSource.RF, OperationEvent.Lock, NO_USER)
        return "toggle_door_response", {"status": foundation.Status.SUCCESS}

    def _valid_slot(self, user_id: int) -> bool:
        return 0 <= user_id < self.settings.slots

    def _cmd_set_pin_code(self, req: Any) -> tuple[str, dict[str, Any]]:
        status = self.store_pin(
            int(req.user_id), str(req.pin_code), int(req.user_status), int(req.user_type)
        )
        return "set_pin_code_response", {"status": foundation.Status(status)}

    def store_pin(self, slot: int, pin: str, user_status: int, user_type: int) -> int:
        """Program a slot as the keypad's firmware would; returns a ZCL set-PIN status."""
        rules_ok = (
            self.settings.min_pin_length <= len(pin) <= self.settings.max_pin_length
            and pin.isdigit()
        )
        if not self._valid_slot(slot):
            return PIN_MEMORY_FULL
        if not rules_ok or user_status not in (UserStatus.Enabled, UserStatus.Disabled):
            return foundation.Status.FAILURE
        if any(other.pin == pin for number, other in self.data.pins.items() if number != slot):
            return PIN_DUPLICATE
        self.data.pins[slot] = PinSlot(user_status, user_type, pin)
        return foundation.Status.SUCCESS

    def _cmd_get_pin_code(self, req: Any) -> tuple[str, dict[str, Any]]:
        slot = self.data.pins.get(int(req.user_id))
        if slot is None:
            return "get_pin_code_response", {
                "user_id": req.user_id,
                "user_status": UserStatus.Available,
                "user_type": UserType.Not_Supported,
                "code": "",
            }
        return "get_pin_code_response", {
            "user_id": req.user_id,
            "user_status": UserStatus(slot.status),
            "user_type": UserType(slot.user_type),
            # A lock that does not send PINs over the air answers with an empty code.
            "code": "" if self.settings.masked_codes else slot.pin,
        }

    def _cmd_clear_pin_code(self, req: Any) -> tuple[str, dict[str, Any]]:
        user_id = int(req.user_id)
        if not self._valid_slot(user_id):
            return "clear_pin_code_response", {"status": foundation.Status.FAILURE}
        self.data.pins.pop(user_id, None)
        self._clear_schedules(user_id)
        return "clear_pin_code_response", {"status": foundation.Status.SUCCESS}

    def _cmd_clear_all_pin_codes(self, _: Any) -> tuple[str, dict[str, Any]]:
        self.data.pins.clear()
        self.data.week_day.clear()
        self.data.year_day.clear()
        return "clear_all_pin_codes_response", {"status": foundation.Status.SUCCESS}

    def _cmd_set_user_status(self, req: Any) -> tuple[str, dict[str, Any]]:
        slot = self.data.pins.get(int(req.user_id))
        if slot is None or int(req.user_status) not in (UserStatus.Enabled, UserStatus.Disabled):
            return "set_user_status_response", {"status": foundation.Status.FAILURE}
        slot.status = int(req.user_status)
        return "set_user_status_response", {"status": foundation.Status.SUCCESS}

    def _cmd_get_user_status(self, req: Any) -> tuple[str, dict[str, Any]]:
        slot = self.data.pins.get(int(req.user_id))
        status = UserStatus(slot.status) if slot else UserStatus.Available
        return "get_user_status_response", {"user_id": req.user_id, "user_status": status}

    def _cmd_set_user_type(self, req: Any) -> tuple[str, dict[str, Any]]:
        slot = self.data.pins.get(int(req.user_id))
        if slot is None:
            return "set_user_type_response", {"status": foundation.Status.FAILURE}
        slot.user_type = int(req.user_type)
        return "set_user_type_response", {"status": foundation.Status.SUCCESS}

    def _cmd_get_user_type(self, req: Any) -> tuple[str, dict[str, Any]]:
        slot = self.data.pins.get(int(req.user_id))
        user_type = UserType(slot.user_type) if slot else UserType.Not_Supported
        return "get_user_type_response", {"user_id": req.user_id, "user_type": user_type}

    @staticmethod
    def _schedule_key(user_id: int, schedule_id: int) -> str:
        return f"{user_id}:{schedule_id}"

    def _clear_schedules(self, user_id: int) -> None:
        for table in (self.data.week_day, self.data.year_day):
            for key in [k for k in table if k.startswith(f"{user_id}:")]:
                del table[key]

    def _cmd_set_week_day_schedule(self, req: Any) -> tuple[str, dict[str, Any]]:
        ok = (
            self._valid_slot(int(req.user_id))
            and req.schedule_id < self.settings.week_day_schedules
            and req.start_hour < 24
            and req.end_hour < 24
            and req.start_minute < 60
            and req.end_minute < 60
            and (req.start_hour, req.start_minute) < (req.end_hour, req.end_minute)
        )
        if not ok:
            return "set_week_day_schedule_response", {"status": foundation.Status.INVALID_VALUE}
        key = self._schedule_key(int(req.user_id), int(req.schedule_id))
        self.data.week_day[key] = [
            int(req.days_mask),
            int(req.start_hour),
            int(req.start_minute),
            int(req.end_hour),
            int(req.end_minute),
        ]
        return "set_week_day_schedule_response", {"status": foundation.Status.SUCCESS}

    def _cmd_get_week_day_schedule(self, req: Any) -> tuple[str, dict[str, Any]]:
        entry = self.data.week_day.get(self._schedule_key(int(req.user_id), int(req.schedule_id)))
        fields: dict[str, Any] = {"schedule_id": req.schedule_id, "user_id": req.user_id}
        if entry is None:
            return "get_week_day_schedule_response", {
                **fields,
                "status": foundation.Status.NOT_FOUND,
            }
        names = ("days_mask", "start_hour", "start_minute", "end_hour", "end_minute")
        return "get_week_day_schedule_response", {
            **fields,
            "status": foundation.Status.SUCCESS,
            **dict(zip(names, entry, strict=True)),
        }

    def _cmd_clear_week_day_schedule(self, req: Any) -> tuple[str, dict[str, Any]]:
        self.data.week_day.pop(self._schedule_key(int(req.user_id), int(req.schedule_id)), None)
        return "clear_week_day_schedule_response", {"status": foundation.Status.SUCCESS}

    def _cmd_set_year_day_schedule(self, req: Any) -> tuple[str, dict[str, Any]]:
        ok = (
            self._valid_slot(int(req.user_id))
            and req.schedule_id < self.settings.year_day_schedules
            and req.local_start_time < req.local_end_time
        )
        if not ok:
            return "set_year_day_schedule_response", {"status": foundation.Status.INVALID_VALUE}
        key = self._schedule_key(int(req.user_id), int(req.schedule_id))
        self.data.year_day[key] = [int(req.local_start_time), int(req.local_end_time)]
        return "set_year_day_schedule_response", {"status": foundation.Status.SUCCESS}

    def _cmd_get_year_day_schedule(self, req: Any) -> tuple[str, dict[str, Any]]:
        entry = self.data.year_day.get(self._schedule_key(int(req.user_id), int(req.schedule_id)))
        fields: dict[str, Any] = {"schedule_id": req.schedule_id, "user_id": req.user_id}
        if entry is None:
            return "get_year_day_schedule_response", {
                **fields,
                "status": foundation.Status.NOT_FOUND,
            }
        return "get_year_day_schedule_response", {
            **fields,
            "status": foundation.Status.SUCCESS,
            "local_start_time": t.LocalTime(entry[0]),
            "local_end_time": t.LocalTime(entry[1]),
        }

    def _cmd_clear_year_day_schedule(self, req: Any) -> tuple[str, dict[str, Any]]:
        self.data.year_day.pop(self._schedule_key(int(req.user_id), int(req.schedule_id)), None)
        return "clear_year_day_schedule_response", {"status": foundation.Status.SUCCESS}

    # The person at the door

    def keypad_entry(self, pin: str) -> None:
        match = next((number for number, slot in self.data.pins.items() if slot.pin == pin), None)
        keypad = OperationEventSource.Keypad
        if match is None or self.data.pins[match].status != UserStatus.Enabled:
            self._notify(keypad, OperationEvent.UnlockFailureInvalidPINorID, NO_USER)
        elif not self._within_schedule(match, self.data.pins[match]):
            self._notify(keypad, OperationEvent.UnlockFailureInvalidSchedule, match)
        else:
            self._move(LockState.Unlocked, keypad, OperationEvent.Unlock, match)
        self._changed()

    def _within_schedule(self, user_id: int, slot: PinSlot) -> bool:
        now = self._clock()
        if slot.user_type == UserType.Week_Day_Schedule_User:
            minute = now.hour * 60 + now.minute
            day_bit = 1 << ((now.weekday() + 1) % 7)  # ZCL: bit 0 is Sunday
            return any(
                days & day_bit and sh * 60 + sm <= minute < eh * 60 + em
                for key, (days, sh, sm, eh, em) in self.data.week_day.items()
                if key.startswith(f"{user_id}:")
            )
        if slot.user_type == UserType.Year_Day_Schedule_User:
            seconds = local_seconds(now)
            return any(
                start <= seconds < end
                for key, (start, end) in self.data.year_day.items()
                if key.startswith(f"{user_id}:")
            )
        return slot.user_type in (UserType.Unrestricted, UserType.Master_User)

    def manual(self, *, lock: bool) -> None:
        if lock:
            self._move(
                LockState.Locked, OperationEventSource.Manual, OperationEvent.Manual_Lock, NO_USER
            )
        else:
            self._move(
                LockState.Unlocked,
                OperationEventSource.Manual,
                OperationEvent.Manual_Unlock,
                NO_USER,
            )
        self._changed()

    def door(self, *, is_open: bool) -> None:
        self.data.door_state = DoorState.Open if is_open else DoorState.Closed
        self._sync_attributes()
        self._report(self._door, DoorLock.cluster_id, Attr.door_state.id)
        self._changed()

    def set_battery(self, level: int) -> None:
        self.data.battery = level
        self._sync_attributes()
        self._report(
            self._power,
            PowerConfiguration.cluster_id,
            PowerConfiguration.AttributeDefs.battery_percentage_remaining.id,
        )
        self._changed()

    def add_code_at_keypad(self, slot: int, pin: str) -> int:
        """A code programmed on the lock itself (by its master code), not by the bridge."""
        status = self.store_pin(slot, pin, UserStatus.Enabled, UserType.Unrestricted)
        if status == foundation.Status.SUCCESS:
            frame = Rsp.programming_event_notification.schema(
                program_event_source=OperationEventSource.Keypad,
                program_event_code=ProgrammingEvent.PINCodeAdded,
                user_id=slot,
                pin="",
                user_type=UserType.Unrestricted,
                user_status=UserStatus.Enabled,
                local_time=t.LocalTime(local_seconds(self._clock())),
                data="",
            ).serialize()
            self._command_out(Rsp.programming_event_notification.id, frame)
            self._changed()
        return status

    # Frames out

    def _move(
        self, state: LockState, source: OperationEventSource, event: OperationEvent, user: int
    ) -> None:
        self.data.lock_state = state
        self._sync_attributes()
        self._report(self._door, DoorLock.cluster_id, Attr.lock_state.id)
        self._notify(source, event, user)

    def _notify(self, source: OperationEventSource, event: OperationEvent, user: int) -> None:
        # Real locks may put the PIN into this frame; this one never does.
        frame = Rsp.operation_event_notification.schema(
            operation_event_source=source,
            operation_event_code=event,
            user_id=user,
            pin="",
            local_time=t.LocalTime(local_seconds(self._clock())),
            data="",
        ).serialize()
        self._command_out(Rsp.operation_event_notification.id, frame)

    def _command_out(self, command_id: int, body: bytes) -> None:
        tsn = self.next_tsn()
        header = foundation.ZCLHeader.cluster(
            tsn=tsn, command_id=command_id, direction=foundation.Direction.Server_to_Client
        )
        self._send_out(
            self.unsolicited(LOCK_ENDPOINT, DoorLock.cluster_id, header.serialize() + body, tsn)
        )

    def _send_out(self, packet: t.ZigbeePacket) -> None:
        if self._held is not None:
            self._held.append(packet)
        else:
            self._send(packet)

    def _report(self, cluster: SimCluster, cluster_id: int, attrid: int) -> None:
        tsn = self.next_tsn()
        header = foundation.ZCLHeader.general(
            tsn=tsn,
            command_id=foundation.GeneralCommand.Report_Attributes,
            direction=foundation.Direction.Server_to_Client,
        )
        value = cluster.read(attrid).value
        assert value is not None
        body = t.uint16_t(attrid).serialize() + value.serialize()
        self._send_out(self.unsolicited(LOCK_ENDPOINT, cluster_id, header.serialize() + body, tsn))

    def true_slots(self) -> list[dict[str, Any]]:
        return [
            {
                "slot": number,
                "status": UserStatus(slot.status).name.lower(),
                "user_type": UserType(slot.user_type).name.lower(),
                "code": slot.pin,
                "schedules": {
                    "week_day": [
                        v for k, v in self.data.week_day.items() if k.startswith(f"{number}:")
                    ],
                    "year_day": [
                        v for k, v in self.data.year_day.items() if k.startswith(f"{number}:")
                    ],
                },
            }
            for number, slot in sorted(self.data.pins.items())
        ]
