from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main
from bridge.config import parse_config
from bridge.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.yaml")
    return caught.value.message


def test_example_config_is_valid() -> None:
    config = parse_config((ROOT / "config.example.yaml").read_text(), "config.example.yaml")
    assert config.mqtt.base_topic == "lockbridge"


def test_empty_config_gives_defaults() -> None:
    config = parse_config("", "empty.yaml")
    assert config.mqtt.port == 1883
    assert config.zigbee.enabled is False


def test_error_names_key_and_line() -> None:
    message = error_of("mqtt:\n  host: broker\n  port: seventy\n")
    assert message.startswith("test.yaml:3: mqtt.port:")
    assert "integer" in message


def test_unknown_option_is_located() -> None:
    assert error_of("mqtt:\n  hots: x\n") == "test.yaml:2: mqtt.hots: unknown option"


def test_several_errors_are_all_reported() -> None:
    message = error_of("log_level: LOUD\nzigbee:\n  radio: carrier-pigeon\n  channel: 99\n")
    lines = message.splitlines()
    assert lines[0].startswith("test.yaml:1: log_level:")
    assert any(line.startswith("test.yaml:3: zigbee.radio:") for line in lines)
    assert any(line.startswith("test.yaml:4: zigbee.channel:") for line in lines)


def test_invalid_yaml_is_located() -> None:
    assert error_of("mqtt:\n  host: [unclosed\n").startswith("test.yaml:")


def test_top_level_must_be_a_mapping() -> None:
    assert "mapping" in error_of("- a\n- b\n")


def test_bad_base_topic_and_duplicate_alias() -> None:
    assert "mqtt.base_topic" in error_of("mqtt:\n  base_topic: 'a/#'\n")
    message = error_of("locks:\n  zigbee-01:\n    alias: door\n  zigbee-02:\n    alias: door\n")
    assert "alias 'door'" in message


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    config = parse_config(f"mqtt:\n  password_file: {secret}\n")
    assert config.mqtt.resolved_password() == "s3cret"
    monkeypatch.setenv("LOCKBRIDGE_MQTT_PASSWORD", "from-env")
    assert parse_config("").mqtt.resolved_password() == "from-env"
    config = parse_config("mqtt:\n  password: inline\n")
    assert "inline" not in repr(config)
    assert "inline" not in str(config.summary())
    assert "both" in error_of(f"mqtt:\n  password: x\n  password_file: {secret}\n")


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("zigbee:\n  enabled: true\n  radio: simulator\n")
    assert main(["check-config", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("mqtt:\n  port: 0\n")
    assert main(["check-config", str(bad)]) == 2
    assert f"{bad}:2: mqtt.port:" in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
