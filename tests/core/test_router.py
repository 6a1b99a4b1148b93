"""Router: routes in config order, the first match wins; otherwise the account's own
route (a route name or a provider name); no route is None. The configs are written
by hand, the expected routes read off them."""

from __future__ import annotations

from typing import Any

from bridge.config import Config, parse_config
from bridge.core.numbers import Number
from bridge.core.router import Resolved, Router

PROVIDERS = {name: {"type": "simulator"} for name in ("a", "b", "c")}


def config(routes: list[dict[str, Any]], account_route: str | None = None) -> Config:
    account: dict[str, Any] = {"system_id": "esme1", "password": "pw"}
    if account_route is not None:
        account["route"] = account_route
    other = {"system_id": "other", "password": "pw"}
    return parse_config({"providers": PROVIDERS, "routes": routes, "accounts": [account, other]})


def resolve(cfg: Config, destination: str, flash: bool = False, system_id: str = "esme1") -> Resolved | None:
    """`destination`: E.164 digits (what the pipeline made of the destination_addr)."""
    account = cfg.account(system_id)
    assert account is not None
    return Router(cfg).resolve(account, Number(destination), flash)


def test_the_first_matching_route_wins_in_config_order() -> None:
    cfg = config(
        [
            {"name": "mx", "match": {"destination_prefix": ["52", "521"]}, "providers": ["a", "b"]},
            {"name": "mx-mobile", "match": {"destination_prefix": "521"}, "providers": ["c"]},
            {"name": "rest", "providers": ["b"]},
        ]
    )
    assert resolve(cfg, "5215512345678") == Resolved("mx", ("a", "b"))  # the longer prefix comes later
    assert resolve(cfg, "4917012345") == Resolved("rest", ("b",))


def test_system_id_and_flash_narrow_a_match() -> None:
    cfg = config(
        [
            {"name": "flash", "match": {"flash": True}, "providers": ["c"]},
            {"name": "mine", "match": {"system_id": ["esme1"]}, "providers": ["a"]},
            {"name": "others", "providers": ["b"]},
        ]
    )
    assert resolve(cfg, "4917012345", flash=True) == Resolved("flash", ("c",))
    assert resolve(cfg, "4917012345") == Resolved("mine", ("a",))
    assert resolve(cfg, "4917012345", system_id="other") == Resolved("others", ("b",))


def test_without_a_matching_route_the_accounts_route_names_a_route_or_a_provider() -> None:
    routes = [{"name": "de", "match": {"destination_prefix": "49"}, "providers": ["a"]}]
    assert resolve(config(routes, account_route="de"), "4412345678") == Resolved("de", ("a",))
    assert resolve(config(routes, account_route="c"), "4412345678") == Resolved("c", ("c",))
    assert resolve(config(routes), "4412345678") is None
