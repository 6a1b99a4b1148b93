"""Routing: which providers, in which order, carry a message.

`[[routes]]` are tried in order; the first whose `match` fits (destination prefix,
system_id, flash) wins. Otherwise the account's `route` names a route or a provider.
No route -> None, which the pipeline answers with ESME_RINVDSTADR.

`destination_prefix` is matched against the E.164 digits of the normalised number
(country code first). A national number of unknown country (an account without
`default_country`) has no country code, so it never matches a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import Account, Config, Route
from bridge.core.numbers import Number


@dataclass(frozen=True, slots=True)
class Resolved:
    name: str
    providers: tuple[str, ...]


def route_matches(route: Route, system_id: str, number: Number, flash: bool) -> bool:
    match = route.match
    if match.prefixes and not (number.international and number.digits.startswith(match.prefixes)):
        return False
    if match.system_ids and system_id not in match.system_ids:
        return False
    return match.flash is None or match.flash == flash


class Router:
    def __init__(self, config: Config) -> None:
        self._routes = list(config.routes)
        self._by_name = {route.name: route for route in config.routes}
        self._providers = set(config.providers)

    def resolve(self, account: Account, number: Number, flash: bool) -> Resolved | None:
        for route in self._routes:
            if route_matches(route, account.system_id, number, flash):
                return Resolved(route.name, tuple(route.providers))
        if account.route is None:
            return None
        named = self._by_name.get(account.route)
        if named is not None:
            return Resolved(named.name, tuple(named.providers))
        if account.route in self._providers:
            return Resolved(account.route, (account.route,))
        return None
