"""Bind authentication against `[[accounts]]`: system_id, network, password, max_binds.

Passwords in the config are compared in constant time; `password_hash` values are
argon2 hashes (argon2-cffi), verified off the event loop since the KDF is meant to
be slow.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bridge.config import Account, Config
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


class Authenticator:
    def __init__(self, config: Config) -> None:
        self.reload(config)

    def reload(self, config: Config) -> None:
        self._accounts = {account.system_id: account for account in config.accounts}

    def account(self, system_id: str) -> Account | None:
        return self._accounts.get(system_id)

    async def check(self, system_id: str, password: str, peer_host: str, bound: int) -> BindDecision:
        """`bound` is how many sessions this system_id holds now."""
        account = self._accounts.get(system_id)
        if account is None:
            return BindDecision(Status.ESME_RINVSYSID, None, "unknown system_id")
        if not _network_allowed(account, peer_host):
            return BindDecision(Status.ESME_RBINDFAIL, None, "address not in allowed_networks")
        if not await _password_ok(account, password):
            return BindDecision(Status.ESME_RINVPASWD, None, "wrong password")
        if bound >= account.max_binds:
            return BindDecision(Status.ESME_RBINDFAIL, None, "max_binds reached")
        return BindDecision(Status.ESME_ROK, account, "ok")


def _network_allowed(account: Account, peer_host: str) -> bool:
    try:
        address = ipaddress.ip_address(peer_host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in account.allowed_networks)


async def _password_ok(account: Account, password: str) -> bool:
    if account.password is not None:
        return hmac.compare_digest(account.password.get_secret_value().encode(), password.encode())
    assert account.password_hash is not None
    hashed = account.password_hash.get_secret_value()
    return await asyncio.get_running_loop().run_in_executor(None, verify_hash, hashed, password)
