"""Configuration: YAML validated by pydantic, with errors that name the key and the line."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from bridge.errors import ConfigError
from bridge.util import time_zone

TOPIC_SEGMENT = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
LOCK_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = False


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    base_topic: str = "lockbridge"
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60
    expose_codes: bool = True
    tls: TlsConfig = TlsConfig()
    reconnect_max_delay: Annotated[float, Field(gt=0, le=600)] = 30.0

    @field_validator("base_topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not TOPIC_SEGMENT.match(value):
            raise ValueError("must be topic levels of letters, digits, '_' or '-' joined by '/'")
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give either password or password_file, not both")
        return self

    def resolved_password(self) -> str | None:
        """The password from the config, `password_file`, or $LOCKBRIDGE_MQTT_PASSWORD."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            try:
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise ConfigError(
                    f"mqtt.password_file: cannot read {self.password_file}: {err.strerror}"
                ) from err
        return os.environ.get("LOCKBRIDGE_MQTT_PASSWORD")


class ZigbeeSimulatorConfig(_Strict):
    locks: Annotated[int, Field(ge=0, le=500)] = 1
    latency_ms: Annotated[float, Field(ge=0, le=10_000)] = 20.0
    slots: Annotated[int, Field(ge=1, le=250)] = 30
    min_pin_length: Annotated[int, Field(ge=1, le=16)] = 4
    max_pin_length: Annotated[int, Field(ge=1, le=16)] = 8
    masked_codes: bool = False
    week_day_schedules: Annotated[int, Field(ge=0, le=20)] = 7
    year_day_schedules: Annotated[int, Field(ge=0, le=20)] = 2
    seed: int | None = None


class SerialConfig(_Strict):
    path: str = "/dev/ttyUSB0"
    baudrate: int | None = None
    flow_control: Literal["hardware", "software"] | None = None


class ZigbeeConfig(_Strict):
    enabled: bool = False
    radio: Literal["simulator", "znp", "ezsp", "deconz", "zigate", "xbee"] = "znp"
    device: SerialConfig = SerialConfig()
    channel: Annotated[int, Field(ge=11, le=26)] | None = None
    pan_id: Annotated[int, Field(ge=0, le=0xFFFE)] | None = None
    network_key: SecretStr | None = None
    database: str = "zigbee.db"
    command_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    simulator: ZigbeeSimulatorConfig = ZigbeeSimulatorConfig()

    @field_validator("network_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"([0-9A-Fa-f]{2}:){15}[0-9A-Fa-f]{2}", value.get_secret_value()
        ):
            raise ValueError("must be 16 hex bytes separated by ':'")
        return value


class ZWaveSimulatorConfig(_Strict):
    # Start the simulated Z-Wave JS stack (npm packages in simulators/zwave) instead of
    # connecting to `url`.
    enabled: bool = False
    locks: Annotated[int, Field(ge=0, le=50)] = 1
    slots: Annotated[int, Field(ge=1, le=250)] = 10
    masked_codes: bool = False
    bulk_codes: bool = False
    week_day_schedules: Annotated[int, Field(ge=0, le=20)] = 7
    year_day_schedules: Annotated[int, Field(ge=0, le=20)] = 2
    # Add one lock with a real fingerprint (Yale YRD256) described by the device database.
    real_model: bool = False


class ZWaveConfig(_Strict):
    enabled: bool = False
    url: Annotated[str, Field(pattern=r"^wss?://")] = "ws://127.0.0.1:3000"
    command_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    # How long start-up waits for the server and the locks' interviews.
    ready_timeout: Annotated[float, Field(gt=0, le=600)] = 60.0
    reconnect_max_delay: Annotated[float, Field(gt=0, le=600)] = 30.0
    # Longest keypad code the locks take (the User Code CC allows 4 to 10 digits; most locks 8).
    max_code_length: Annotated[int, Field(ge=4, le=10)] = 8
    # Bridge only these node ids (default: every node with Door Lock CC).
    nodes: list[Annotated[int, Field(ge=1, le=4000)]] | None = None
    simulator: ZWaveSimulatorConfig = ZWaveSimulatorConfig()


class BleSimulatorConfig(_Strict):
    locks: Annotated[int, Field(ge=0, le=200)] = 1
    latency_ms: Annotated[float, Field(ge=0, le=10_000)] = 20.0
    # Keypad codes each simulated lock holds.
    slots: Annotated[int, Field(ge=1, le=200)] = 100
    security_pin: Annotated[int, Field(ge=0, le=9999)] = 1234
    # Unpaired simulated locks start in pairing mode, as if their button had been held.
    pairing_mode: bool = True
    # The simulated locks' own time zone, in which they enforce keypad time limits.
    timezone: str = "UTC"
    seed: int | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class BleConfig(_Strict):
    enabled: bool = False
    backend: Literal["bluez", "simulator"] = "bluez"
    adapter: str = "hci0"
    # The locks' admin security PIN (Nuki app: Manage Smart Lock > Features > Security PIN),
    # needed for keypad codes and the activity log; also from $LOCKBRIDGE_NUKI_SECURITY_PIN.
    security_pin: SecretStr | None = None
    # Pair with every Nuki seen in pairing mode, without `lockbridge ble pair`.
    pair_in_pairing_mode: bool = False
    keypad_slots: Annotated[int, Field(ge=1, le=200)] = 100
    connect_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    command_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    retries: Annotated[int, Field(ge=0, le=10)] = 3
    retry_delay: Annotated[float, Field(ge=0, le=60)] = 0.5
    # A lock whose beacon was not heard for this many seconds is shown offline.
    offline_after: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    simulator: BleSimulatorConfig = BleSimulatorConfig()

    @field_validator("security_pin")
    @classmethod
    def _pin(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(r"[0-9]{1,5}", value.get_secret_value()):
            raise ValueError("must be the lock's numeric security PIN")
        return value

    def resolved_security_pin(self) -> int | None:
        if self.security_pin is not None:
            return int(self.security_pin.get_secret_value())
        from_env = os.environ.get("LOCKBRIDGE_NUKI_SECURITY_PIN", "")
        if from_env.isdigit():
            return int(from_env)
        if self.backend == "simulator":
            return self.simulator.security_pin
        return None


class HomeAssistantConfig(_Strict):
    enabled: bool = True
    discovery_prefix: str = "homeassistant"

    @field_validator("discovery_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not TOPIC_SEGMENT.match(value):
            raise ValueError("must be topic levels of letters, digits, '_' or '-' joined by '/'")
        return value


class LockOverride(_Strict):
    alias: str | None = None
    name: str | None = None
    # Slots the bridge may program, inclusive; default: every slot the lock has.
    managed_slots: tuple[Annotated[int, Field(ge=0)], Annotated[int, Field(ge=0)]] | None = None
    # The lock's time zone for schedules; default: the site's `timezone`.
    timezone: str | None = None
    # Treat the lock as write-only (it hides codes), whatever it reports.
    masked_codes: bool = False

    @field_validator("managed_slots")
    @classmethod
    def _range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[0] > value[1]:
            raise ValueError("the first slot must not be after the last")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return _check_zone(value) if value is not None else None

    @field_validator("alias")
    @classmethod
    def _alias(cls, value: str | None) -> str | None:
        if value is not None and not LOCK_ID.match(value):
            raise ValueError("must be 1-64 letters, digits, '_' or '-'")
        return value


def _check_zone(value: str) -> str:
    time_zone(value)
    return value


class CodesConfig(_Strict):
    """The code-slot manager."""

    # Failed attempts on a lock before a code shows failed_to_set/remove_on_device.
    max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    retry_base_delay: Annotated[float, Field(gt=0, le=600)] = 2.0
    retry_max_delay: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    # Pause between the reads of a lock's first slot scan, so a battery lock is not flooded.
    scan_delay: Annotated[float, Field(ge=0, le=60)] = 0.2


class WebPassThrottleConfig(_Strict):
    """How the web pass server slows down clients that guess tokens."""

    # Unknown tokens from one client address within `window` seconds before it is blocked.
    max_failures: Annotated[int, Field(ge=1, le=1000)] = 5
    window: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    # Seconds a blocked client gets 429 Too Many Requests.
    block: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    # Client addresses remembered at most; the oldest are forgotten first.
    max_clients: Annotated[int, Field(ge=16, le=1_000_000)] = 10_000


class WebPassConfig(_Strict):
    """Shareable links that lock and unlock chosen locks for a bounded time (SPEC §7)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8380
    # The base URL put in links, as guests reach the bridge (e.g. through a reverse proxy);
    # default: http://<host>:<port>.
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")] | None = None
    # Longest validity window (ends_at - starts_at) a pass may have.
    max_duration: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=30)
    # Seconds a client may take to send one request.
    request_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    throttle: WebPassThrottleConfig = WebPassThrottleConfig()

    def base_url(self, bound_port: int | None = None) -> str:
        """`public_url`, else the listening address (with the port actually bound, if known)."""
        if self.public_url is not None:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{bound_port or self.port}"


class Config(_Strict):
    mqtt: MqttConfig = MqttConfig()
    state_dir: Path = Path("/var/lib/lockbridge")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    command_timeout: Annotated[float, Field(gt=0, le=120)] = 15.0
    event_history: Annotated[int, Field(ge=10, le=1_000_000)] = 10_000
    simulator_control: bool = False
    # The site's IANA time zone, for recurring windows of locks without their own.
    timezone: str = "UTC"
    codes: CodesConfig = CodesConfig()
    homeassistant: HomeAssistantConfig = HomeAssistantConfig()
    zigbee: ZigbeeConfig = ZigbeeConfig()
    zwave: ZWaveConfig = ZWaveConfig()
    ble: BleConfig = BleConfig()
    web_pass: WebPassConfig = WebPassConfig()
    locks: dict[str, LockOverride] = {}

    @field_validator("timezone")
    @classmethod
    def _site_zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _unique_aliases(self) -> Config:
        seen: dict[str, str] = {}
        for native_id, override in self.locks.items():
            if override.alias is None:
                continue
            if override.alias in seen:
                raise ValueError(
                    f"alias {override.alias!r} is used by both {seen[override.alias]!r} and {native_id!r}"
                )
            seen[override.alias] = native_id
        return self

    def summary(self) -> dict[str, Any]:
        """The config without secrets, for `bridge/info`."""
        return {
            "base_topic": self.mqtt.base_topic,
            "mqtt": {"host": self.mqtt.host, "port": self.mqtt.port, "tls": self.mqtt.tls.enabled},
            "expose_codes": self.mqtt.expose_codes,
            "drivers": [name for name in ("zigbee", "zwave", "ble") if getattr(self, name).enabled],
            "simulator_control": self.simulator_control,
            "web_pass": self.web_pass.enabled,
        }


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read: {err.strerror}") from err
    return parse_config(text, str(path))


def parse_config(text: str, source: str = "<config>") -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from err
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the configuration must be a mapping of options")
    lines = _key_lines(node)
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, lines, source)) from None


def _key_lines(node: yaml.Node | None, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Map each key path of a composed YAML document to its 1-based line."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key_path = (*path, str(key_node.value))
            lines[key_path] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key_path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            item_path = (*path, str(index))
            lines[item_path] = item.start_mark.line + 1
            lines.update(_key_lines(item, item_path))
    return lines


def _describe(err: ValidationError, lines: dict[tuple[str, ...], int], source: str) -> str:
    messages = []
    for issue in err.errors(include_url=False, include_input=False):
        loc = tuple(str(part) for part in issue["loc"])
        line = None
        for depth in range(len(loc), 0, -1):
            if loc[:depth] in lines:
                line = lines[loc[:depth]]
                break
        where = f"{source}:{line}" if line else source
        key = ".".join(loc) or "(top level)"
        message = issue["msg"]
        if issue["type"] == "extra_forbidden":
            message = "unknown option"
        messages.append(f"{where}: {key}: {message}")
    return "\n".join(messages)
