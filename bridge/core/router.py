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
    """Each route's Resolved is made once, with the config: `resolve` runs once per
    message and only picks one."""

    def __init__(self, config: Config) -> None:
        self._routes = [(route, Resolved(route.name, tuple(route.providers))) for route in config.routes]
        by_name = {route.name: resolved for route, resolved in self._routes}
        # The account's own `route`: a route's name first, else a provider's.
        self._named = {name: Resolved(name, (name,)) for name in config.providers} | by_name

    def resolve(self, account: Account, number: Number, flash: bool) -> Resolved | None:
        for route, resolved in self._routes:
            if route_matches(route, account.system_id, number, flash):
                return resolved
        if account.route is None:
            return None
        return self._named.get(account.route)
