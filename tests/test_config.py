"""The configuration contract of DESIGN.md, parsed and validated as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config, parse_config, permission_warnings

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "CONTACTA_KEY": "ck-123",
    "KALEYRA_API_KEY": "kk-456",
    "FLASHSMS_API_KEY": "bms_live_789",
    "SKYCORE_API_KEY": "sk-000",
}


def problems(raw: dict, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, environ or {})
    return info.value.problems


def minimal(**extra: object) -> dict:
    raw: dict = {
        "accounts": [{"system_id": "esme1", "password": "secret1", "route": "sim"}],
        "providers": {"sim": {"type": "simulator"}},
    }
    raw.update(extra)
    return raw


def test_the_design_contract_parses_exactly_as_written() -> None:
    config = load_config(ROOT / "config/example-full.toml", SECRETS)
    assert config.smpp.port == 2775 and config.smpp.window == 100
    assert config.providers["contacta"].password.get_secret_value() == "ck-123"  # type: ignore[union-attr]
    assert config.providers["skycore"].from_ == "60856"  # type: ignore[union-attr]
    assert config.routes[0].match.prefixes == ("52",)
    assert config.accounts[0].throughput == 500
    assert config.accounts[0].default_country == "MX"
    assert config.store.sqlite_path == Path("/var/lib/smpp-bridge/bridge.db")


def test_the_default_config_is_valid() -> None:
    config = load_config(ROOT / "config/bridge.toml", {})
    assert [p.type for p in config.providers.values()] == ["simulator"]
    assert config.store.sqlite_path == Path("state/bridge.db")


def test_unknown_keys_are_errors_with_their_path() -> None:
    raw = minimal(smpp={"prot": 1})
    raw["accounts"][0]["colour"] = "red"
    raw["providers"]["sim"]["speed"] = 3
    assert sorted(problems(raw)) == [
        "accounts[0].colour: unknown key",
        "providers.sim.speed: unknown key",
        "smpp.prot: unknown key",
    ]


def test_bad_values_name_their_key() -> None:
    raw = minimal(smpp={"port": 70000}, log={"format": "xml"})
    raw["accounts"][0]["ack"] = "later"
    found = problems(raw)
    assert any(p.startswith("smpp.port:") for p in found)
    assert any(p.startswith("log.format:") for p in found)
    assert any(p.startswith("accounts[0].ack:") for p in found)


def test_references_are_checked() -> None:
    raw = minimal(routes=[{"name": "r", "providers": ["nope"]}])
    raw["accounts"][0]["route"] = "missing"
    assert sorted(problems(raw)) == [
        "accounts[0].route: no route or provider named 'missing'",
        "routes[0].providers[0]: no provider named 'nope'",
    ]


def test_env_secret_resolved_and_missing_env_reported() -> None:
    raw = minimal()
    raw["accounts"][0]["password"] = "${ESME_PW}"
    assert parse_config(raw, {"ESME_PW": "pw"}).accounts[0].password.get_secret_value() == "pw"  # type: ignore[union-attr]
    assert problems(raw) == ["accounts[0].password: environment variable ESME_PW is not set"]


def test_file_secret(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("filepw\n")
    raw = minimal()
    del raw["accounts"][0]["password"]
    raw["accounts"][0]["password_file"] = str(secret)
    assert parse_config(raw, {}).accounts[0].password.get_secret_value() == "filepw"  # type: ignore[union-attr]
    raw["accounts"][0]["password_file"] = str(tmp_path / "absent")
    [problem] = problems(raw)
    assert problem.startswith("accounts[0].password_file: cannot read")


def test_secret_values_never_appear_in_problems() -> None:
    raw = minimal()
    raw["accounts"][0]["password"] = "waytoolongsecret"
    raw["providers"]["k"] = {
        "type": "kaleyra",
        "base_url": "x",
        "sid": "s",
        "api_key": 12345,
        "sender": "S",
        "callback_token": "tok-SECRET",
    }
    text = "\n".join(problems(raw))
    assert "waytoolongsecret" not in text and "tok-SECRET" not in text and "12345" not in text


def test_account_needs_exactly_one_password_form() -> None:
    raw = minimal()
    raw["accounts"][0]["password_hash"] = "$argon2id$..."
    assert problems(raw) == ["accounts[0]: give exactly one of password and password_hash"]


def test_world_readable_config_is_warned(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("")
    path.chmod(0o644)
    assert permission_warnings(path)
    path.chmod(0o640)
    assert permission_warnings(path) == []
