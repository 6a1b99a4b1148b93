"""The configuration contract (DESIGN.md): one TOML file, typed and validated.

Validation is pydantic v2 with `extra="forbid"`, so an unknown key is an error and
every problem is reported with the dotted path of its key. Secrets may be written as
`"${ENV_VAR}"` or given as `<key>_file = "/path"`; they are held as `SecretStr`, and
no problem message ever repeats a value.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

import phonenumbers
from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = Path("config/bridge.toml")

# Keys whose value may come from `<key>_file`; their values never appear in messages.
SECRET_KEYS = frozenset({"password", "password_hash", "api_key", "callback_token", "admin_token"})
_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse_networks(value: Any) -> Any:
    """ "10.0.0.0/8" strings to networks; host bits allowed ("10.1.2.3/8")."""
    if isinstance(value, list):
        return [ipaddress.ip_network(v, strict=False) if isinstance(v, str) else v for v in value]
    return value


Networks = Annotated[list[IpNetwork], BeforeValidator(_parse_networks)]

_HTTP_URL = TypeAdapter(AnyHttpUrl)


def _http_url(value: str) -> str:
    """An absolute http(s) URL with a host (pydantic's URL rules), kept as written:
    "api.kaleyra.io" fails here, at load, with its key's path, instead of failing
    every send later."""
    try:
        _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        raise ValueError(f"must be an http:// or https:// URL with a host ({reason})") from None
    if not urlsplit(value).hostname or any(c.isspace() for c in value):
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


# Every URL of the config is one of these: an endpoint used as written, or a base
# that paths are appended to (kept without its trailing "/").
HttpUrl = Annotated[str, AfterValidator(_http_url)]
BaseUrl = Annotated[HttpUrl, AfterValidator(lambda value: value.rstrip("/"))]


class ConfigError(Exception):
    """A configuration that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- sections ------------------------------------------------------------------------


class SmppSettings(Section):
    host: str = "0.0.0.0"
    port: int = Field(2775, ge=0, le=65535)
    system_id: str = Field("SMPPBRIDGE", min_length=1, max_length=15)
    tls_port: int | None = Field(None, ge=0, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    window: int = Field(100, ge=1, le=10000)
    enquire_link_interval: float = Field(30, gt=0)
    inactivity_timeout: float = Field(300, gt=0)
    bind_timeout: float = Field(30, gt=0)
    response_timeout: float = Field(30, gt=0)
    shutdown_timeout: float = Field(10, ge=0)
    max_command_length: int = Field(65536 + 16, ge=64, le=1 << 20)
    max_sessions: int = Field(10000, ge=1)
    reassembly_timeout: float = Field(300, gt=0, description="seconds a concatenated set may take to complete")
    receipt_retry_base: float = Field(2.0, gt=0, description="first delay after a refused or unanswered receipt")
    receipt_max_attempts: int = Field(20, ge=1)
    proxy_protocol: bool = Field(
        False, description="expect a PROXY protocol v1/v2 header (HAProxy send-proxy) on the plain SMPP port"
    )
    proxy_trusted_networks: Networks = Field(
        default_factory=list,
        description="peers that must send a PROXY header (empty: every peer); others connect directly",
    )
    proxy_header_timeout: float = Field(5, gt=0, description="seconds a PROXY header may take to arrive")

    @model_validator(mode="after")
    def _tls_pair(self) -> SmppSettings:
        if self.tls_port is not None and (self.tls_cert is None or self.tls_key is None):
            raise ValueError("tls_port needs tls_cert and tls_key")
        return self


class SecuritySettings(Section):
    """Limits for a port that faces networks we do not control."""

    bind_failures: int = Field(5, ge=1, description="failed binds (per address or per system_id) that lock out")
    bind_failure_window: float = Field(60, gt=0, description="seconds in which those failures count")
    lockout: float = Field(300, ge=0, description="seconds a locked-out address or system_id is refused (0 = off)")
    pdu_timeout: float = Field(30, gt=0, description="seconds a started PDU may take to arrive completely")
    write_stall_timeout: float = Field(60, gt=0, description="seconds a peer may read nothing before it is cut off")
    max_pending_sets: int = Field(1000, ge=1, description="incomplete concatenated sets per account")
    max_queued_receipts: int = Field(100_000, ge=1, description="receipts waiting per account before ESME_RMSGQFUL")


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: BaseUrl = "http://127.0.0.1:8080"
    admin_token: SecretStr | None = Field(
        None, description="bearer token of the admin API under /admin/ (unset: the admin API is off)"
    )

    @field_validator("admin_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("at least 16 characters (a long random string)")
        return value


class StoreSettings(Section):
    url: str = "sqlite:///state/bridge.db"
    retention: float = Field(7 * 86400, gt=0, description="seconds a finished message is kept")
    synchronous: Literal["full", "normal"] = "full"
    prefix: str = Field(
        "smpp-bridge", min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$", description="Redis: prefix of every key"
    )
    instance_ttl: float = Field(
        10,
        ge=0.5,
        description="Redis: seconds without a heartbeat before an instance counts as gone and the others take "
        "over its outbox, receipts, binds and poll leases",
    )
    redis_timeout: float = Field(5, gt=0, description="Redis: seconds one command may take before it counts as failed")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not (value.startswith("sqlite:///") or value.startswith(("redis://", "rediss://"))):
            raise ValueError("must be sqlite:///relative.db, sqlite:////absolute.db or redis://...")
        if value.startswith("sqlite:///") and len(value) == len("sqlite:///"):
            raise ValueError("sqlite URL has no path")
        if value.startswith("sqlite:///") and (":memory:" in value or "mode=memory" in value):
            # The writer process and the readers would each get a database of their own,
            # and every accepted message would be lost at exit.
            raise ValueError("an in-memory SQLite store would lose every accepted message; give a file path")
        return value

    @property
    def sqlite_path(self) -> Path | None:
        """sqlite:///state/x.db -> state/x.db (relative to the working directory);
        sqlite:////var/x.db -> /var/x.db."""
        if not self.url.startswith("sqlite:///"):
            return None
        return Path(self.url[len("sqlite:///") :])


class OutboxSettings(Section):
    """Store-and-forward (`ack = "stored"` accounts)."""

    limit: int = Field(100_000, ge=1, description="queued messages before ESME_RMSGQFUL")
    concurrency: int = Field(256, ge=1, description="HTTP requests in flight from the outbox")
    burst: int = Field(
        100_000,
        ge=0,
        description="backlog a burst of stored submits may build while the outbox holds back for it "
        "(at most `limit`); beyond it the outbox sends at full concurrency again; 0 = never hold back",
    )
    max_attempts: int = Field(50, ge=1)
    max_age: float = Field(86400, gt=0, description="seconds before an unsent message fails")
    backoff_base: float = Field(1.0, gt=0)
    backoff_max: float = Field(300, gt=0)


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console text on a terminal, JSON lines otherwise (systemd, Docker)"
    )


class Account(Section):
    system_id: str = Field(min_length=1, max_length=15)
    password: SecretStr | None = None
    password_hash: SecretStr | None = None
    allowed_networks: Networks = Field(
        default_factory=lambda: [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    )
    max_binds: int = Field(4, ge=1)
    throughput: float = Field(500, ge=0, description="submits per second; 0 = unlimited")
    ack: Literal["upstream", "stored"] = "upstream"
    message_id_format: Literal["decimal", "hex"] = "decimal"
    default_charset: Literal["gsm0338", "latin1", "ascii"] = "gsm0338"
    ia5_charset: Literal["auto", "ascii", "gsm0338"] = Field(
        "auto",
        description="meaning of data_coding 1 (IA5): auto = GSM 03.38 when the octets hold GSM-only codes "
        "(node-smpp sends GSM under 1), ASCII otherwise",
    )
    intermediate_esm_class: Literal[0x04, 0x20] = Field(
        0x04,
        description="esm_class of intermediate notifications (ENROUTE, registered_delivery bit 4): "
        "0x04 as a delivery receipt (what most clients parse) or 0x20 intermediate delivery notification (v3.4 5.2.12)",
    )
    default_country: str | None = Field(
        None,
        description="ISO 3166-1 alpha-2 country of this account's national numbers (TON 2, or TON 0 valid only as "
        "national); without it a national number is never given a guessed country",
    )
    ton0_reading: Literal["international", "national"] = Field(
        "international",
        description="a TON 0 destination valid both as international and as national in default_country is read as "
        "this (national: `6621234567` on an MX account is Hermosillo, not Bangkok's +66 2123 4567)",
    )
    route: str | None = None

    @field_validator("default_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f'{value!r} is not an ISO 3166-1 alpha-2 country code with a numbering plan (e.g. "MX")')
        return code

    @model_validator(mode="after")
    def _one_password(self) -> Account:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError("give exactly one of password and password_hash")
        if self.password is not None and len(self.password.get_secret_value()) > 8:
            raise ValueError("password: SMPP passwords are at most 8 characters")
        return self


class ProviderBase(Section):
    timeout: float = Field(10, gt=0, description="seconds for one HTTP request")
    connect_timeout: float = Field(5, gt=0)
    max_connections: int = Field(64, ge=1)
    flash_fallback: Literal["normal", "reject"] = "normal"
    circuit_failures: int = Field(5, ge=1, description="failures in a row that open the circuit")
    circuit_reset: float = Field(30, gt=0, description="seconds the circuit stays open before a trial")
    coalesce_window: float = Field(
        0, ge=0, le=60, description="seconds identical texts from one account wait to share one request (0 = off)"
    )
    coalesce_max: int = Field(0, ge=0, description="recipients per coalesced request (0 = the API's maximum)")
    callback_allowed_networks: Networks = Field(
        default_factory=list, description="source addresses allowed to call this provider's callback URL (empty: any)"
    )
    check_interval: float = Field(
        300,
        ge=0,
        description="seconds between two access checks in the daemon (credentials, reachability; shown in "
        "/readyz); the first comes after at most 60 s; 0 = never",
    )


class SimulatorProvider(ProviderBase):
    type: Literal["simulator"]
    delivery_delay: float = Field(1.0, ge=0)
    reject_prefixes: list[str] = ["999"]
    fail_prefixes: list[str] = ["998"]
    expire_prefixes: list[str] = ["997"]
    silent_prefixes: list[str] = ["996"]
    record_path: str = ""
    intermediate: bool = Field(False, description="also report ENROUTE before the final state")
    latency: float = Field(0, ge=0, description="seconds each send takes, like an HTTP round trip")


class ContactaProvider(ProviderBase):
    type: Literal["contacta"]
    base_url: BaseUrl = Field(description="API base URL; the paths /v2/sms/send and /v2/flash/send are appended")
    username: str = Field(description="first half of the HTTP Basic pair")
    password: SecretStr = Field(description="second half of the HTTP Basic pair (the API key)")
    sender: str = Field("", description="`sender` when source_addr is not allowed; empty = none (account default)")
    receipt_timeout: float = Field(
        600, ge=0, description="no DLR API: seconds after acceptance until the synthetic receipt; 0 = none"
    )
    receipt_state: Literal["UNKNOWN", "ACCEPTD", "DELIVRD"] = Field(
        "UNKNOWN", description="state of the synthetic receipt (final, like every one of the three)"
    )
    method: Literal["POST", "GET"] = Field(
        "POST", description="POST with a JSON body (recommended by Contacta) or GET with query parameters"
    )
    number_format: Literal["national", "international"] = Field(
        "national", description="`phone` as 10 national digits (SMS México) or E.164 without + (SMS Global)"
    )
    allowed_senders: list[str] = Field(
        default_factory=list,
        description='source_addr values passed on as `sender` ("*" = any valid sender ID); any other gets `sender`',
    )
    length_unit: Literal["septets", "characters"] = Field(
        "septets", description="what the 160 limit of `msg` counts: GSM septets (one SMS) or characters (the schema)"
    )


# Kaleyra's pods by API host, and the route types each takes (document 001: "For
# customers in the Indian region, the available SMS Types are OTP, Transactional (TNX),
# Transactional DND (TXND), and Marketing (MKT). For Europe, America, and Singapore
# regions, only OTP and Default ..."; the API value is TXN, PROVIDERS.md 3.1).
KALEYRA_PODS: dict[str, str] = {
    "api.in.kaleyra.io": "IN",
    "api.ap.kaleyra.io": "SG",
    "api.kaleyra.io": "SG",
    "api.eu.kaleyra.io": "EU",
    "api.na.kaleyra.ai": "NA",
}
KALEYRA_SMS_TYPES: dict[str, frozenset[str]] = {
    "IN": frozenset({"OTP", "TXN", "TXND", "MKT"}),
    "SG": frozenset({"OTP", "DEFAULT"}),
    "EU": frozenset({"OTP", "DEFAULT"}),
    "NA": frozenset({"OTP", "DEFAULT"}),
}
# Which endpoint takes which parameter (PROVIDERS.md 3.1, from Kaleyra's pages): `ref`
# and the inline `callback` object belong to /messages, `ref_custom` to /sms;
# `callback_profile_id` to both.
KALEYRA_REFERENCE_FIELDS = {"sms": "ref_custom", "messages": "ref"}
KALEYRA_CALLBACK_MODES = {"sms": ("profile", "none"), "messages": ("object", "profile", "none")}
KALEYRA_POLL_WITHOUT_CALLBACKS = 30  # default poll_interval when no callback will come


def kaleyra_region(base_url: str) -> str | None:
    """The pod of a Kaleyra base URL (IN, SG, EU, NA); None for any other host."""
    host = re.sub(r"^https?://", "", base_url).split("/")[0].split(":")[0].lower()
    return KALEYRA_PODS.get(host)


class KaleyraProvider(ProviderBase):
    type: Literal["kaleyra"]
    base_url: BaseUrl
    sid: str
    api_key: SecretStr
    sender: str
    sms_type: str = Field(
        description="route type, required: IN pod OTP | TXN | TXND | MKT; SG/EU/NA pods OTP | DEFAULT"
    )
    callback_token: SecretStr | None = Field(
        None, description="secret part of our callback URL; needed unless callback_mode = none"
    )
    poll_interval: float = Field(
        300,
        ge=0,
        description="seconds without a final callback before status polling starts (default 30 without "
        "callbacks); 0 = no polling",
    )
    endpoint: Literal["sms", "messages"] = Field(
        "sms", description="send path: /v1/{sid}/sms (current) or /v1/{sid}/messages (older, still documented)"
    )
    body_format: Literal["json", "form"] = Field(
        "json",
        description="send body: JSON (document 001: content-type 'The only allowed value is application/json') "
        "or form fields (what the curl samples post; not what the document allows)",
    )
    reference_field: Literal["ref", "ref_custom", "none"] = Field(
        "ref_custom",  # /sms's; _endpoint_defaults puts in the endpoint's own
        description="parameter carrying our message id: ref_custom (/sms, the default there), "
        "ref (/messages, the default there) or none",
    )
    callback_mode: Literal["object", "profile", "none"] = Field(
        "none",  # _endpoint_defaults puts in the endpoint's own
        description='how the send asks for a callback: callback={"url","method"} (object, /messages only), '
        "callback_profile_id (profile, URL registered in the Kaleyra console) or none (polling only); "
        "default: object on /messages, profile on /sms when callback_profile_id is set, else none",
    )
    callback_method: Literal["GET", "POST"] = Field("POST", description="method Kaleyra calls our callback URL with")
    callback_profile_id: str = Field("", description="the callback profile id when callback_mode = profile")
    callback_fields: dict[Literal["id", "status", "status_trace", "recipient", "timestamp"], list[str]] = Field(
        default_factory=dict, description="extra callback parameter names to look for, tried before the built-in ones"
    )
    allowed_senders: list[str] = Field(
        default_factory=list,
        description='source_addr values passed on as `sender` ("*" = any); any other source_addr gets `sender`',
    )
    max_parts: int = Field(
        0, ge=0, description="longest text in SMS parts (153 GSM / 67 UCS-2 chars each) sent; 0 = no bridge-side limit"
    )
    poll_batch: int = Field(50, ge=1, le=100, description="message ids per status request")
    poll_interval_max: float = Field(3600, gt=0, description="longest wait between two polls of one message")
    poll_requests_per_minute: int = Field(60, ge=1, description="status requests per minute at most")
    pending_max_age: float = Field(72 * 3600, gt=0, description="seconds without a final state before giving up")
    pending_final_state: Literal["UNKNOWN", "EXPIRED"] = Field(
        "UNKNOWN", description="state reported for a message still without a final state after pending_max_age"
    )

    @model_validator(mode="before")
    @classmethod
    def _endpoint_defaults(cls, raw: Any) -> Any:
        """reference_field and callback_mode default to what the endpoint takes."""
        if not isinstance(raw, dict):
            return raw
        endpoint = raw.get("endpoint", "sms")
        if endpoint not in KALEYRA_REFERENCE_FIELDS:
            return raw  # the Literal reports it
        filled = dict(raw)
        filled.setdefault("reference_field", KALEYRA_REFERENCE_FIELDS[endpoint])
        if "callback_mode" not in filled:
            profile = filled.get("callback_profile_id")
            filled["callback_mode"] = "object" if endpoint == "messages" else ("profile" if profile else "none")
        if filled["callback_mode"] == "none":  # polling is the only way: start it sooner
            filled.setdefault("poll_interval", KALEYRA_POLL_WITHOUT_CALLBACKS)
        return filled

    @field_validator("sms_type")
    @classmethod
    def _sms_type(cls, value: str) -> str:
        value = value.strip().upper()
        if value == "TNX":
            raise ValueError('"TNX" is how document 001 misspells it: the route type is "TXN"')
        return value

    @model_validator(mode="after")
    def _documented_combinations(self) -> KaleyraProvider:
        region = kaleyra_region(self.base_url)
        allowed = KALEYRA_SMS_TYPES[region] if region else frozenset().union(*KALEYRA_SMS_TYPES.values())
        if self.sms_type not in allowed:
            where = f"the {region} pod ({self.base_url})" if region else "any Kaleyra pod"
            raise ValueError(
                f"sms_type: {self.sms_type!r} is not a route type of {where}; use one of {sorted(allowed)}"
            )
        documented_reference = KALEYRA_REFERENCE_FIELDS[self.endpoint]
        if self.reference_field not in (documented_reference, "none"):
            raise ValueError(
                f"reference_field: {self.reference_field!r} is not a parameter of /{self.endpoint} "
                f"(it takes {documented_reference!r}); set endpoint or reference_field accordingly"
            )
        if self.callback_mode not in KALEYRA_CALLBACK_MODES[self.endpoint]:
            raise ValueError(
                f"callback_mode: the inline callback object is a /messages parameter, not one of /{self.endpoint}; "
                "use a callback profile (callback_profile_id) or polling (callback_mode = none)"
            )
        if self.callback_mode == "profile" and not self.callback_profile_id:
            raise ValueError('callback_mode = "profile" needs callback_profile_id')
        if self.callback_mode != "none" and self.callback_token is None:
            raise ValueError(f"callback_token: needed for callbacks (callback_mode = {self.callback_mode!r})")
        if self.callback_mode == "none" and self.poll_interval <= 0:
            raise ValueError(
                "poll_interval: without callbacks (callback_mode = none) polling is the only way to "
                "receipts; it must be above 0"
            )
        return self


class FlashSmsProvider(ProviderBase):
    type: Literal["flashsms"]
    base_url: BaseUrl
    api_key: SecretStr
    sender: str = Field("", description="senderId when source_addr is not allowed; empty = the first approved one")
    poll_interval: float = Field(30, gt=0, description="seconds from send to the first status poll")
    requests_per_minute: int = Field(
        100, ge=1, description="API requests (sends and polls together) in any rate_window seconds, at most"
    )
    rate_window: float = Field(
        60, gt=0, description="seconds requests_per_minute counts over (60: document 002's minute; tests shorten it)"
    )
    max_recipients: int = Field(
        1000, ge=1, le=1000, description="recipients one coalesced request may carry (document 002: at most 1000)"
    )
    pending_max_age: float = Field(72 * 3600, gt=0, description="seconds without a final state before giving up")
    pending_final_state: Literal["EXPIRED", "UNKNOWN"] = Field(
        "EXPIRED", description="state reported for a message still PENDING/SENT after pending_max_age"
    )
    auth_header: Literal["bearer", "x-api-key"] = Field(
        "bearer", description="Authorization: Bearer <key> (recommended) or X-API-Key: <key>"
    )
    allowed_senders: list[str] = Field(
        default_factory=list,
        description='source_addr values passed on as senderId ("*" = any); any other source_addr gets `sender`',
    )
    campaign_name: str = Field(
        "bridge-{id}", description="campaignName sent with each message ({id} = our message id); empty = none"
    )
    credits_status: Literal["ESME_RSUBMITFAIL", "ESME_RX_T_APPN"] = Field(
        "ESME_RSUBMITFAIL", description="command_status for HTTP 402 (insufficient credits)"
    )
    max_chars: int = Field(918, ge=1, le=918, description="longest GSM 03.38 text sent")
    max_chars_unicode: int = Field(
        918, ge=0, le=918, description="longest text with characters outside GSM 03.38; 0 = refuse such text"
    )
    poll_endpoint: Literal["recipients", "status"] = Field(
        "recipients", description="GET /sms/:id/recipients (per phone) or /sms/status/:id (whole request)"
    )
    poll_interval_max: float = Field(3600, gt=0, description="longest wait between two polls of one message")
    poll_requests_per_minute: int = Field(
        50, ge=1, description="share of requests_per_minute polls may use, so that sends keep room"
    )
    rate_limit_wait: float = Field(
        5, ge=0, description="seconds a send waits for room under the rate limit before ESME_RTHROTTLED"
    )


class SkycoreProvider(ProviderBase):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: Literal["skycore"]
    url: HttpUrl = Field(description="the account's API endpoint URL (Skycore gives it; every action is a POST to it)")
    api_key: SecretStr = Field(description="the x-api-key header (case-sensitive)")
    from_: str = Field(
        alias="from", pattern=r"^\+?\d{3,15}$", description="short code, toll-free or 10DLC number (with country code)"
    )
    from_mask: str = Field("", max_length=11, description="alphanumeric sender mask (not in the USA); empty = none")
    callback_token: SecretStr = Field(description="postback URL: {public_url}/callbacks/<name>/<callback_token>")
    campaign_ref: str = Field("", description='"campaign-ref" of every message (accounts with Enforce Campaign Check)')
    click_tracking: bool = Field(False, description='send "click-tracking": true (URLs become tracked short links)')
    allowed_senders: list[str] = Field(
        default_factory=list,
        description='source_addr values passed on ("*" = any): digits as `from`, letters as `from-mask`',
    )
    plus_prefix: bool = Field(
        True, description="`to` as + and the country code (every request example of document 003); false = digits only"
    )
    max_parts: int = Field(
        10, ge=0, description="longest text in SMS parts (153 GSM / 67 UCS-2 chars each) sent; 0 = no bridge-side limit"
    )
    final_timeout: float = Field(
        48 * 3600, ge=0, description="seconds without a final postback before the message ends UNKNOWN; 0 = never"
    )


ProviderSettings = Annotated[
    SimulatorProvider | ContactaProvider | KaleyraProvider | FlashSmsProvider | SkycoreProvider,
    Field(discriminator="type"),
]
# The one list of provider types: the `type` of each member of the union above.
# Connectors (bridge.providers) and HTTP doubles (bridge.simulators) are found by it.
PROVIDER_TYPES: tuple[str, ...] = tuple(
    get_args(model.model_fields["type"].annotation)[0] for model in get_args(get_args(ProviderSettings)[0])
)
BUILTIN_PROVIDER = "simulator"  # in-process, no HTTP API (and so no HTTP double)
HTTP_PROVIDER_TYPES = tuple(kind for kind in PROVIDER_TYPES if kind != BUILTIN_PROVIDER)


class RouteMatch(Section):
    destination_prefix: str | list[str] | None = Field(
        None, description="E.164 digits the destination starts with (country code first; a leading + is dropped)"
    )
    system_id: str | list[str] | None = None
    flash: bool | None = None

    @field_validator("destination_prefix")
    @classmethod
    def _digits(cls, value: str | list[str] | None) -> str | list[str] | None:
        def prefix(text: str) -> str:
            digits = text.removeprefix("+")
            if not (digits.isascii() and digits.isdigit()):
                raise ValueError(f'{text!r} is not E.164 digits (country code first, e.g. "52")')
            return digits

        if value is None:
            return None
        return prefix(value) if isinstance(value, str) else [prefix(v) for v in value]

    @property
    def prefixes(self) -> tuple[str, ...]:
        return _as_tuple(self.destination_prefix)

    @property
    def system_ids(self) -> tuple[str, ...]:
        return _as_tuple(self.system_id)


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class Route(Section):
    name: str = Field(min_length=1)
    match: RouteMatch = RouteMatch()
    providers: list[str] = Field(min_length=1)


class Config(Section):
    smpp: SmppSettings = SmppSettings()
    security: SecuritySettings = SecuritySettings()
    http: HttpSettings = HttpSettings()
    store: StoreSettings = StoreSettings()
    outbox: OutboxSettings = OutboxSettings()
    log: LogSettings = LogSettings()
    accounts: list[Account] = Field(default_factory=list)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Config:
        problems: list[str] = []
        seen: set[str] = set()
        for i, account in enumerate(self.accounts):
            if account.system_id in seen:
                problems.append(f"accounts[{i}].system_id: duplicate system_id")
            seen.add(account.system_id)
        route_names = [route.name for route in self.routes]
        for i, route in enumerate(self.routes):
            if route_names.count(route.name) > 1:
                problems.append(f"routes[{i}].name: duplicate route name")
            for j, name in enumerate(route.providers):
                if name not in self.providers:
                    problems.append(f"routes[{i}].providers[{j}]: no provider named {name!r}")
        for i, account in enumerate(self.accounts):
            if account.route is not None and account.route not in route_names and account.route not in self.providers:
                problems.append(f"accounts[{i}].route: no route or provider named {account.route!r}")
        flashsms_keys: dict[str, str] = {}
        for name, provider in self.providers.items():
            if isinstance(provider, FlashSmsProvider):
                first = flashsms_keys.setdefault(provider.api_key.get_secret_value(), name)
                if first != name:  # its rate limit is per key, and each entry counts its own requests
                    problems.append(
                        f"providers.{name}.api_key: the same key as providers.{first}; FlashSMS allows "
                        "100 requests a minute per key and each provider entry counts only its own"
                    )
        if problems:
            raise ConfigError(problems)
        return self

    def account(self, system_id: str) -> Account | None:
        for account in self.accounts:
            if account.system_id == system_id:
                return account
        return None


# -- loading -------------------------------------------------------------------------


def load_config(path: Path | str, environ: dict[str, str] | None = None) -> Config:
    """Read, resolve secrets and validate. Raises ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return parse_config(raw, environ)


def parse_config(raw: dict[str, Any], environ: dict[str, str] | None = None) -> Config:
    problems: list[str] = []
    resolved = _resolve_secrets(raw, os.environ if environ is None else environ, "", problems)
    try:
        config = Config.model_validate(resolved)
    except ValidationError as exc:
        problems.extend(p for p in _describe(exc) if p.split(":")[0] not in _locations(problems))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def _locations(problems: list[str]) -> set[str]:
    return {problem.split(":")[0] for problem in problems}


def _describe(exc: ValidationError) -> Iterator[str]:
    for error in exc.errors(include_input=False, include_url=False):
        ctx_error = (error.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ConfigError):
            yield from ctx_error.problems
            continue
        location = _path(error["loc"])
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        yield f"{location}: {message}" if location else message


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in PROVIDER_TYPES and out.startswith("providers."):
            continue  # pydantic's discriminator step, not a key the user wrote
        else:
            out += f".{part}" if out else str(part)
    return out


def _resolve_secrets(node: Any, environ: Any, where: str, problems: list[str]) -> Any:
    """Replace "${VAR}" strings with the environment and `<key>_file` with file contents."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = f"{where}.{key}" if where else key
            stem = key[: -len("_file")] if key.endswith("_file") else None
            if stem in SECRET_KEYS:
                if stem in node:
                    problems.append(f"{here}: give {stem} or {key}, not both")
                    continue
                out[stem] = _read_secret_file(value, here, problems)
            else:
                out[key] = _resolve_secrets(value, environ, here, problems)
        return out
    if isinstance(node, list):
        return [_resolve_secrets(v, environ, f"{where}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str):
        match = _ENV_REFERENCE.match(node)
        if match:
            name = match.group(1)
            if name not in environ:
                problems.append(f"{where}: environment variable {name} is not set")
                return ""
            return environ[name]
    return node


def _read_secret_file(value: Any, where: str, problems: list[str]) -> str:
    if not isinstance(value, str):
        problems.append(f"{where}: must be a file path")
        return ""
    try:
        return Path(value).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        problems.append(f"{where}: cannot read {value} ({exc.strerror})")
        return ""


def permission_warnings(path: Path | str) -> list[str]:
    """Warnings for a config file others may read (it may hold secrets)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return []
    if mode & stat.S_IROTH:
        return [f"{path}: readable by every user; it may hold secrets (chmod o-r)"]
    return []
