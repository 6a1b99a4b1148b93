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
    assert config.providers["contacta"].password.get_secret_value() == "ck-123"  # type: ignore[union-attr]  # a contacta's
    assert config.providers["skycore"].from_ == "60856"  # type: ignore[union-attr]  # a skycore's
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
    assert parse_config(raw, {"ESME_PW": "pw"}).accounts[0].password.get_secret_value() == "pw"  # type: ignore[union-attr]  # set above
    assert problems(raw) == ["accounts[0].password: environment variable ESME_PW is not set"]


def test_file_secret(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("filepw\n")
    raw = minimal()
    del raw["accounts"][0]["password"]
    raw["accounts"][0]["password_file"] = str(secret)
    assert parse_config(raw, {}).accounts[0].password.get_secret_value() == "filepw"  # type: ignore[union-attr]  # set above
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


# -- URLs: one type for every URL of the config -------------------------------------

PROVIDER_URLS = {
    "contacta": ("base_url", {"username": "u", "password": "p"}),
    "kaleyra": ("base_url", {"sid": "s", "api_key": "k", "sender": "S", "sms_type": "TXN", "callback_token": "t"}),
    "flashsms": ("base_url", {"api_key": "k"}),
    "skycore": ("url", {"api_key": "k", "from": "60856", "callback_token": "t"}),
}


@pytest.mark.parametrize("kind", sorted(PROVIDER_URLS))
@pytest.mark.parametrize("url", ["api.kaleyra.io", "ftp://api.example.com", "https://", "http://:80/x", "https://a b"])
def test_a_provider_url_that_would_fail_every_send_fails_at_load_with_its_path(kind: str, url: str) -> None:
    key, required = PROVIDER_URLS[kind]
    raw = minimal()
    raw["providers"]["up"] = {"type": kind, key: url, **required}
    [problem] = problems(raw)
    assert problem.startswith(f"providers.up.{key}: must be an http:// or https:// URL")


@pytest.mark.parametrize("url", ["example.org", "mailto:ops@example.org", "http:///callbacks"])
def test_public_url_is_checked_the_same_way(url: str) -> None:
    [problem] = problems(minimal(http={"public_url": url}))
    assert problem.startswith("http.public_url: must be an http:// or https:// URL")


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///file:x?mode=memory&cache=shared", "sqlite:///"])
def test_a_store_that_would_not_keep_messages_fails_at_load(url: str) -> None:
    [problem] = problems(minimal(store={"url": url}))
    assert problem.startswith("store.url: ")
    assert "memory" in problem or "no path" in problem


def test_base_urls_lose_their_trailing_slash_and_endpoints_are_kept_as_written() -> None:
    raw = minimal(http={"public_url": "https://bridge.example.org/"})
    raw["providers"]["k"] = {"type": "kaleyra", "base_url": "https://api.in.kaleyra.io/", **PROVIDER_URLS["kaleyra"][1]}
    raw["providers"]["s"] = {"type": "skycore", "url": "https://api.skycore.com/API/v3/", **PROVIDER_URLS["skycore"][1]}
    config = parse_config(raw, {})
    assert config.http.public_url == "https://bridge.example.org"
    assert config.providers["k"].base_url == "https://api.in.kaleyra.io"  # type: ignore[union-attr]  # a kaleyra's
    assert config.providers["s"].url == "https://api.skycore.com/API/v3/"  # type: ignore[union-attr]  # a skycore's


def test_every_provider_type_has_a_connector_and_every_http_one_a_double() -> None:
    from bridge.config import HTTP_PROVIDER_TYPES, PROVIDER_TYPES
    from bridge.providers import connector_class
    from bridge.simulators import SIMULATORS, build_simulator

    assert set(SIMULATORS) == set(HTTP_PROVIDER_TYPES)
    assert set(PROVIDER_TYPES) == {"simulator", "contacta", "kaleyra", "flashsms", "skycore"}
    assert [connector_class(kind).kind for kind in PROVIDER_TYPES] == list(PROVIDER_TYPES)
    for kind in HTTP_PROVIDER_TYPES:
        assert build_simulator(kind) is not None
    with pytest.raises(KeyError):
        connector_class("nosuch")
    problem = problems(minimal(providers={"sim": {"type": "nosuch"}}))[0]
    assert problem.startswith("providers.sim")
