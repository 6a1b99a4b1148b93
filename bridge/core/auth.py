"""Bind authentication against `[[accounts]]`: system_id, network, password, lockout.

Passwords in the config are compared in constant time; `password_hash` values are
argon2 hashes (argon2-cffi), verified off the event loop since the KDF is meant to
be slow.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bridge.config import Account, Config, IpNetwork
from bridge.smpp.constants import Status

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_hash(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class BindDecision:
    status: Status
    account: Account | None
    reason: str
    locked_now: tuple[str, ...] = ()  # lockouts this failure started ("address", "system_id")


class Authenticator:
    def __init__(self, config: Config) -> None:
        s = config.security
        self.guard = BindGuard(s.bind_failures, s.bind_failure_window, s.lockout)
        self.reload(config)

    def reload(self, config: Config) -> None:
        self._accounts = {account.system_id: account for account in config.accounts}
        s = config.security
        self.guard.configure(s.bind_failures, s.bind_failure_window, s.lockout)

    def account(self, system_id: str) -> Account | None:
        return self._accounts.get(system_id)

    async def check(self, system_id: str, password: str, peer_host: str, now: float) -> BindDecision:
        """Lockout, account, network and password (`now` is monotonic). `max_binds` is
        the caller's to count, after this await."""
        keys = guard_keys(peer_host, system_id)
        if self.guard.locked(keys, now) is not None:
            return BindDecision(Status.ESME_RBINDFAIL, None, "locked out after repeated bind failures")
        decision = await self._verify(system_id, password, peer_host)
        if decision.status is not Status.ESME_ROK:
            newly = self.guard.failed(keys, now)
            return BindDecision(decision.status, None, decision.reason, tuple(k.split(":")[0] for k in newly))
        self.guard.succeeded(keys)
        return decision

    async def _verify(self, system_id: str, password: str, peer_host: str) -> BindDecision:
        account = self._accounts.get(system_id)
        if account is None:
            return BindDecision(Status.ESME_RINVSYSID, None, "unknown system_id")
        if not address_allowed(account.allowed_networks, peer_host):
            return BindDecision(Status.ESME_RBINDFAIL, None, "address not in allowed_networks")
        if not await _password_ok(account, password):
            return BindDecision(Status.ESME_RINVPASWD, None, "wrong password")
        return BindDecision(Status.ESME_ROK, account, "ok")


def address_allowed(networks: Iterable[IpNetwork], host: str | None) -> bool:
    """Is `host` (an IP address string, IPv4-mapped IPv6 included) in `networks`?"""
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


async def _password_ok(account: Account, password: str) -> bool:
    if account.password is not None:
        return hmac.compare_digest(account.password.get_secret_value().encode(), password.encode())
    assert account.password_hash is not None
    hashed = account.password_hash.get_secret_value()
    return await asyncio.get_running_loop().run_in_executor(None, verify_hash, hashed, password)


class BindGuard:
    """Locks out an address or a system_id after repeated bind failures.

    `failures` failed binds within `window` seconds, counted separately per peer
    address and per system_id, refuse further binds from it for `lockout` seconds
    (ESME_RBINDFAIL, without checking the password, so guessing gets nowhere).
    Fed with the clock; no timers.
    """

    def __init__(self, failures: int, window: float, lockout: float) -> None:
        self.configure(failures, window, lockout)
        self._recent: dict[str, list[float]] = {}
        self._locked_until: dict[str, float] = {}

    def configure(self, failures: int, window: float, lockout: float) -> None:
        self.failures = failures
        self.window = window
        self.lockout = lockout

    def locked(self, keys: tuple[str, ...], now: float) -> str | None:
        """The first of `keys` that is locked out now, or None."""
        for key in keys:
            until = self._locked_until.get(key)
            if until is not None:
                if now < until:
                    return key
                del self._locked_until[key]
        return None

    def failed(self, keys: tuple[str, ...], now: float) -> list[str]:
        """Count a failure against each key; returns the keys that just got locked."""
        if self.lockout <= 0:
            return []
        newly: list[str] = []
        for key in keys:
            times = [t for t in self._recent.get(key, ()) if now - t < self.window]
            times.append(now)
            if len(times) >= self.failures:
                self._locked_until[key] = now + self.lockout
                self._recent.pop(key, None)
                newly.append(key)
            else:
                self._recent[key] = times
        self._forget_old(now)
        return newly

    def succeeded(self, keys: tuple[str, ...]) -> None:
        for key in keys:
            self._recent.pop(key, None)

    def _forget_old(self, now: float) -> None:
        # Bounded memory under a flood of addresses / system_ids: drop stale entries.
        if len(self._recent) > 10_000:
            self._recent = {k: v for k, v in self._recent.items() if v and now - v[-1] < self.window}
        if len(self._locked_until) > 10_000:
            self._locked_until = {k: v for k, v in self._locked_until.items() if v > now}


def guard_keys(peer_host: str, system_id: str) -> tuple[str, ...]:
    return (f"address:{peer_host}", f"system_id:{system_id}")
