"""The agent's configuration: one validated object, refused whole (naming the field) when anything is wrong.

Sources, later ones overriding earlier ones key by key:

1. the agent's YAML file (`AgentConfig`, the full shape; see the example in docs/agent.md);
2. `risk.json`: a flat JSON object of risk limits, keys as the `.env` names in lower
   case. Money is USD, `max_gas_price` is gwei (applied to every chain), `max_slippage` is a fraction
   (0.005 = 0.5 %) and the cool-down is seconds::

       {"max_position_size": 10000, "max_total_exposure": 50000, "max_chain_exposure": 25000,
        "max_token_exposure": 20000, "max_daily_loss": 1000, "max_daily_loss_per_chain": 500,
        "max_drawdown": 2000, "max_slippage": 0.005, "max_gas_price": 300,
        "max_consecutive_failures": 5, "circuit_breaker_cooldown": 60, "daily_profit_target": 10000}

3. `strategies.json`: a flat JSON object, strategy name to its settings (the same keys as
   `StrategyConfig`)::

       {"dex_arb": {"enabled": true, "min_profit_bps": 10, "min_profit_threshold": 5.0}}

4. a `.env` file: `NAME=value` lines with the names in `ENV_NAMES` (`MAX_POSITION_SIZE`,
   `MIN_PROFIT_THRESHOLD`, `MAX_DAILY_LOSS`, ...), same units as `risk.json`. `MIN_PROFIT_THRESHOLD`
   and `MIN_PROFIT_BPS` apply to every configured strategy.

The JSON shapes above are the flat, obvious reading of the names searchers use in these files.
Unknown keys are refused in every source (a typo must not silently leave a limit at its default).
Secrets are never values: the signing keys and the API token are paths to files of mode 0600 or
stricter, checked here and read only by the code that uses them.
Live execution is off unless a chain says `live: true`.

What a chain searches is optional, so a fresh node host (the devnet) runs with nothing but its node:
`factories` (Uniswap V2/V3 factories and forks whose pools are tracked), `pricing` (USD references for
the base and native tokens), `contract` (the ArbExecutor deployed with `python -m
mevagent.executor.deploy`) and `wrapped_native`. Without factories a chain has no pool state and the
agent only follows its node; without pricing or base tokens the strategy does not run on it; without a
contract a dry run cannot simulate on chain and a live chain refuses to start (see `mevagent.app`).
"""

from __future__ import annotations

import ipaddress
import json
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mevagent.crosschain.registry import registry
from mevagent.crosschain.venues import LegVenue, unique_pools
from mevagent.pricing import PricingConfig
from mevagent.solana.config import SolanaChainConfig
from mevagent.state.config import FactoryConfig

GWEI = 10**9


class ConfigError(ValueError):
    """A configuration source is invalid; the message names the source and the field."""


class Strict(BaseModel):
    """Unknown keys are refused; immutable, so a change is a new, re-validated object (`updated`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def updated(self, changes: Mapping[str, Any]) -> Self:
        """A copy with `changes` applied, validated like the original (model_copy would skip validation)."""
        return self.model_validate({**self.model_dump(), **changes})


def _secret_file(path: Path) -> Path:
    """A file holding a secret: it must exist and be readable by its owner only (0600 or stricter)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise ValueError(f"cannot stat {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ValueError(f"{path} has mode {mode:04o}, looser than 0600: chmod 600 it")
    return path


SecretFile = Annotated[Path, AfterValidator(_secret_file)]


def read_secret(path: Path) -> bytes:
    """The secret in `path`, stripped of surrounding whitespace; the mode is checked again at read time."""
    _secret_file(path)
    value = path.read_bytes().strip()
    if not value:
        raise ValueError(f"{path} is empty")
    return value


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
UsdOrZero = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$"), AfterValidator(str.lower)]


class EndpointConfig(Strict):
    """A builder/relay (`bundle`: eth_sendBundle) or a private/sequencer RPC (`private_tx`: eth_sendRawTransaction)."""

    name: Name
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")]
    kind: Literal["bundle", "private_tx"] = "bundle"
    # mev-boost's getHeader budget is 950 ms; a bundle that is late for block N+1 is worthless anyway.
    timeout_ms: Annotated[int, Field(gt=0, le=10_000)] = 500


def _mev_boost_url(value: str) -> str:
    """mev-boost's builder API on this host or the fleet's private network: it has no authentication, so the
    agent never polls it across the internet."""
    parts = urlsplit(value)
    if parts.scheme != "http" or parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("an http://host:port URL with no credentials, query or fragment (mev-boost serves plain HTTP)")
    if parts.path not in ("", "/"):
        raise ValueError(f"no path: the builder API's status route is appended ({parts.path!r} given)")
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"host {host!r}: an IP address (loopback or private) or localhost") from None
    else:
        if address.is_unspecified or not (address.is_loopback or address.is_private):
            raise ValueError(f"host {host}: mev-boost's API is unauthenticated, so loopback or a private address only")
    try:
        parts.port  # noqa: B018 - urlsplit raises on a port out of range only when it is read
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return value.rstrip("/")


class MevBoostConfig(Strict):
    """mev-boost beside the chain's beacon node (the deploy runs it on Ethereum hosts): the agent asks its builder
    API status route on a task of its own (mevagent.executor.mevboost), for /relays/status and mev_mevboost_*."""

    url: Annotated[str, AfterValidator(_mev_boost_url)]
    # Once per slot: mev-boost's answer changes only as its relays come and go.
    poll_s: Annotated[float, Field(ge=1, le=300, allow_inf_nan=False)] = 12.0
    # With -relay-check mev-boost answers only after asking every relay (each bounded by its getHeader
    # timeout, 950 ms by default), so the wait covers that and a margin; the deploy renders getHeader + 1 s.
    timeout_ms: Annotated[int, Field(gt=0, le=15_000)] = 2_000


class ChainSync(Strict):
    """How the chain's pool store is kept (see mevagent.state.config.SyncConfig for each field's meaning)."""

    checkpoint_every_blocks: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    reorg_depth: Annotated[int, Field(ge=1, le=4096)] = 64
    reconcile_per_block: Annotated[int, Field(ge=0)] | None = None  # None: every pool, every block
    log_chunk_blocks: Annotated[int, Field(ge=1, le=100_000)] = 2000
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 1000


class LendingMarketConfig(Strict):
    """A lending market on the chain (mevagent.lending): its catalog name and where its contracts are found."""

    name: Name  # e.g. "aave_v3", "radiant"
    # aave_v3: Aave V3 and its forks; aave_v2: Aave V2 and its forks (Radiant), valued by their own rules.
    protocol: Literal["aave_v3", "aave_v2"] = "aave_v3"
    # The PoolAddressesProvider (V2: the LendingPoolAddressesProvider): the pool is read from it at start.
    addresses_provider: Address
    # Positions opened before the agent started: the Pool's user events are scanned at load from this block
    # (e.g. the Pool's deployment) to the head, in eth_getLogs chunks; None: only positions an event names later.
    history_from_block: Annotated[int, Field(ge=0)] | None = None
    # At most this many users are kept from the scan (the most recently active); their positions are read at load.
    history_max_users: Annotated[int, Field(gt=0, le=1_000_000)] = 50_000


class VenusMarketConfig(Strict):
    """A Venus core pool on the chain (mevagent.lending.venus): its Comptroller (the Unitroller)."""

    name: Name  # e.g. "venus": strategies.venus_liquidation.market
    comptroller: Address
    native_market: Address  # the vToken whose oracle price values gas and builder payments (vBNB)
    # Accounts that borrowed before the agent started: the markets' Borrow/RepayBorrow logs are scanned at load
    # from this block (e.g. the Comptroller's deployment) to the head; None: only accounts a log names later.
    history_from_block: Annotated[int, Field(ge=0)] | None = None


class FlashProviderConfig(Strict):
    """A flashloan provider that is not a lending market (mevagent.lending.providers): the Balancer V2 vault,
    a Uniswap V3 pool (`flash`) or a Uniswap V2-style pair (flash swap)."""

    name: Name  # its name in /providers/status
    protocol: Literal["balancer_v2", "uniswap_v3", "uniswap_v2"]
    address: Address  # the vault, the pool or the pair
    tokens: tuple[Address, ...] = ()  # balancer_v2: the tokens to lend (pools and pairs lend their own two)
    fork: Name = "uniswap_v2"  # uniswap_v2: the fork's fee (mevagent/amm/forks.yml) and callback

    @model_validator(mode="after")
    def _complete(self) -> Self:
        from mevagent.lending.providers import V2_FLASH_FORKS

        if self.protocol == "balancer_v2" and not self.tokens:
            raise ValueError("tokens: the Balancer vault lends many tokens: name the ones to track")
        if self.protocol == "uniswap_v2" and self.fork not in V2_FLASH_FORKS:
            raise ValueError(f"fork: flash swaps are repaid through {sorted(V2_FLASH_FORKS)} only")
        return self


class ChainConfig(Strict):
    name: Name
    # An EVM chain's EIP-155 id. Solana has none: any id distinct from the other chains' (101 is mainnet-beta's
    # customary number), reported by the agent and never checked against the node.
    chain_id: Annotated[int, Field(gt=0)]
    ipc_path: Path | None = None  # the co-located node's IPC socket: the hot path
    ws_url: Annotated[str, Field(pattern=r"^wss?://\S+$")] | None = None  # fallback when IPC is down
    # A node with neither IPC nor WebSocket (EthereumJS): plain JSON-RPC, heads polled (rpc/client.py).
    http_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    # The co-located consensus client's beacon API (L1s with one): its peer count goes on the heartbeat.
    beacon_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None
    mev_boost: MevBoostConfig | None = None  # mev-boost on this host: its status on /relays/status
    live: bool = False  # dry-run (simulate, send nothing) unless set explicitly
    max_gas_price_gwei: Annotated[float, Field(gt=0, le=100_000, allow_inf_nan=False)]
    endpoints: tuple[EndpointConfig, ...] = ()
    signing_key_file: SecretFile | None = None  # the key that signs transactions
    searcher_key_file: SecretFile | None = None  # the identity that signs X-Flashbots-Signature
    max_chain_exposure_usd: Usd | None = None  # overrides risk.max_chain_exposure_usd for this chain
    max_daily_loss_usd: Usd | None = None  # overrides risk.max_daily_loss_per_chain_usd for this chain
    # What the chain searches (all optional: see the module doc).
    factories: tuple[FactoryConfig, ...] = ()  # pools discovered from these and tracked from their logs
    contract: Address | None = None  # the deployed ArbExecutor (mevagent.executor.deploy prints it)
    wrapped_native: Address | None = None  # WETH, WBNB...: builder payments are unwrapped from its cycles
    # The chain's Uniswap V2 Router02, for the cross-chain inventory legs (mevagent.crosschain.legs).
    swap_router: Address | None = None
    # The chain's Uniswap V3 SwapRouter (@uniswap/v3-periphery; `exactInputSingle`), for legs on V3 pools.
    v3_swap_router: Address | None = None
    # Per pool the legs trade in: its router (v2_router02, v3_swap_router, swap_router02) and V3 fee tier; a pool
    # listed here goes through its own router, the others through the two above (mevagent.crosschain.venues).
    leg_venues: tuple[LegVenue, ...] = ()
    # Cycles start and end in these; when empty, the strategy's base_tokens, else wrapped_native.
    base_tokens: tuple[Address, ...] = ()
    pricing: PricingConfig | None = None  # USD values of the base and native tokens
    sync: ChainSync = ChainSync()
    pending_transactions: bool = False  # subscribe to the public mempool (chains that have one)
    lending: tuple[LendingMarketConfig, ...] = ()  # markets tracked as flashloan providers (/providers/status)
    flash_providers: tuple[FlashProviderConfig, ...] = ()  # other flashloan providers (/providers/status)
    venus: tuple[VenusMarketConfig, ...] = ()  # Venus core pools (mevagent.lending.venus_monitor)
    # /ready: the node's head and the pool state must be at most this old (several block times).
    max_head_age_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    max_state_age_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0
    # A Solana chain (mevagent.solana.config): its pools, block engines and token accounts. Its node is
    # Solana JSON-RPC at http_url and its WebSocket at ws_url; the EVM-only fields above must stay unset.
    solana: SolanaChainConfig | None = None

    @property
    def max_gas_price_wei(self) -> int:
        return int(self.max_gas_price_gwei * GWEI)

    @model_validator(mode="after")
    def _reachable_and_signable(self) -> Self:
        if self.solana is not None:
            return self._solana_complete()
        if self.ipc_path is None and self.ws_url is None and self.http_url is None:
            raise ValueError(
                "set ipc_path or ws_url (or http_url, for a node without subscriptions): the agent needs its node"
            )
        if self.live and self.signing_key_file is None:
            raise ValueError("live: true needs signing_key_file")
        if self.live and not self.endpoints:
            raise ValueError("live: true needs at least one endpoint to submit to")
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError(f"endpoint names repeat: {sorted(names)}")
        markets = [m.name for m in self.lending]
        if len(set(markets)) != len(markets):
            raise ValueError(f"lending: a market name is listed twice: {sorted(markets)}")
        venus = [m.name for m in self.venus]
        if len(set(venus)) != len(venus) or set(venus) & set(markets):
            raise ValueError(f"venus: a market name is listed twice (with lending): {sorted([*markets, *venus])}")
        providers = [*markets, *(p.name for p in self.flash_providers)]
        if len(set(providers)) != len(providers):
            raise ValueError(f"flash_providers: a provider name is listed twice (with lending): {sorted(providers)}")
        unique_pools(self.leg_venues)
        factories = [f.address for f in self.factories]
        if len(set(factories)) != len(factories):
            raise ValueError(f"factories: an address is listed twice: {sorted(factories)}")
        canonical = registry().wrapped_native(self.name, self.chain_id) if self.wrapped_native else None
        if canonical is not None and canonical.address.lower() != str(self.wrapped_native).lower():
            # Builder payments unwrap it and gas is valued in it: another token here pays from the wrong balance.
            raise ValueError(
                f"wrapped_native {self.wrapped_native} is not {canonical.id} ({canonical.address}), "
                f"the wrapped native token of chain id {self.chain_id}"
            )
        if self.pricing is not None and self.wrapped_native and self.pricing.native_token != self.wrapped_native:
            raise ValueError(
                f"pricing.native_token {self.pricing.native_token} is not wrapped_native {self.wrapped_native}: "
                "gas and builder payments are valued in the wrapped native token"
            )
        if self.pricing is not None:
            unpriced = [t for t in self.base_tokens if t not in self.pricing.tokens]
            if unpriced:
                raise ValueError(f"base_tokens {unpriced} have no entry in pricing.tokens")
        return self

    def _solana_complete(self) -> Self:
        assert self.solana is not None
        if self.http_url is None or self.ws_url is None:
            raise ValueError("solana: set http_url (Solana JSON-RPC) and ws_url (its WebSocket): the agent needs both")
        evm_only = ("ipc_path", "beacon_url", "mev_boost", "endpoints", "searcher_key_file", "factories", "contract",
                    "wrapped_native", "swap_router", "v3_swap_router", "leg_venues", "base_tokens", "pricing",
                    "lending", "flash_providers", "venus")  # fmt: skip
        given = [f for f in evm_only if f in self.model_fields_set and getattr(self, f)]
        if given or self.pending_transactions:
            raise ValueError(f"solana: {', '.join(given or ['pending_transactions'])} are EVM settings")
        if self.live and self.signing_key_file is None:
            raise ValueError("live: true needs signing_key_file (the payer's keypair, a JSON array of 64 bytes)")
        if self.live and not self.solana.block_engines:
            raise ValueError("live: true needs at least one solana.block_engines region to send bundles to")
        return self


class RiskLimits(Strict):
    """Every limit the risk gate enforces before the executor signs. Money in USD."""

    max_position_size_usd: Usd = 10_000.0  # one opportunity's notional
    max_total_exposure_usd: Usd = 50_000.0  # notional of everything in flight
    max_chain_exposure_usd: Usd = 25_000.0  # in flight on one chain (a chain may override)
    max_token_exposure_usd: Usd = 20_000.0  # in flight in one token on one chain
    max_daily_loss_usd: Usd = 1_000.0  # realized loss plus gas since 00:00 UTC, all chains
    max_daily_loss_per_chain_usd: Usd = 500.0  # the same on one chain (a chain may override)
    max_drawdown_usd: Usd = 2_000.0  # trailing: peak equity minus current equity
    max_slippage_bps: Annotated[float, Field(ge=0, le=5_000, allow_inf_nan=False)] = 50.0
    max_consecutive_failures: Annotated[int, Field(ge=1, le=1_000)] = 5  # the usual circuit breaker
    circuit_breaker_cooldown_s: Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)] = 60.0

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.max_position_size_usd > self.max_total_exposure_usd:
            raise ValueError(
                f"max_position_size_usd {self.max_position_size_usd} exceeds max_total_exposure_usd "
                f"{self.max_total_exposure_usd}: no position could ever be taken"
            )
        if self.max_daily_loss_per_chain_usd > self.max_daily_loss_usd:
            raise ValueError(
                f"max_daily_loss_per_chain_usd {self.max_daily_loss_per_chain_usd} exceeds max_daily_loss_usd "
                f"{self.max_daily_loss_usd}"
            )
        return self


class StrategyConfig(Strict):
    """What every strategy's section has; a strategy plug-in's own model (its `config`) extends it."""

    enabled: bool = True
    min_profit_bps: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 10.0  # net profit / notional
    min_profit_threshold: UsdOrZero = 5.0  # net profit in USD, after gas and builder payment
    chains: tuple[Name, ...] | None = None  # None: every configured chain

    def applies_to(self, chain: str) -> bool:
        return self.enabled and (self.chains is None or chain in self.chains)

    def check_against(self, name: str, config: AgentConfig) -> None:
        """Refuse (ValueError naming the fields) settings that contradict the rest of `config`."""


def strategy_model(name: str) -> type[StrategyConfig]:
    """The config model of the strategy plug-in called `name`; ValueError naming the known ones."""
    from mevagent.strategies import plugins  # the plug-ins import this module: resolved at validation

    found = plugins()
    if name not in found:
        raise ValueError(f"unknown strategy {name!r}; the installed strategies are {', '.join(sorted(found))}")
    return found[name].config


def _default_strategies() -> dict[str, StrategyConfig]:
    return {name: plugin.config() for name, plugin in _plugins_enabled_by_default().items()}


def _plugins_enabled_by_default() -> dict[str, Any]:
    from mevagent.strategies import plugins

    return {name: plugin for name, plugin in plugins().items() if plugin.default_on}


class GasSettings(Strict):
    priority_fee_gwei: Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)] = 1.0
    gas_limit_per_hop: Annotated[int, Field(gt=0, le=5_000_000)] = 120_000
    gas_limit_base: Annotated[int, Field(ge=21_000, le=5_000_000)] = 60_000
    # Share of gross profit paid to the builder (coinbase transfer) to win the block.
    builder_payment_share: Annotated[float, Field(ge=0, lt=1, allow_inf_nan=False)] = 0.5
    target_blocks: Annotated[int, Field(ge=1, le=25)] = 3  # bundles target blocks N+1..N+k


class EngineSettings(Strict):
    """The pipeline's queue bounds (mevagent.engine.EngineLimits)."""

    max_pool_keys: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    max_opportunities: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    max_in_flight: Annotated[int, Field(ge=1, le=1_000)] = 8  # concurrent executions


class ProfitSettings(Strict):
    daily_profit_target_usd: UsdOrZero = 10_000.0  # the daily-loss alert compares the day's loss with it


class ApiConfig(Strict):
    bind: str = "127.0.0.1"  # loopback by default: the control API is for the host's operator
    port: Annotated[int, Field(gt=0, lt=65_536)] = 8780
    token_file: SecretFile
    metrics_bind: str = "127.0.0.1"  # the plan opens 9787 to the monitoring host only
    metrics_port: Annotated[int, Field(gt=0, lt=65_536)] = 9787
    opportunities_kept: Annotated[int, Field(gt=0, le=100_000)] = 1_000
    # The same API also on this address (the host's private one), for the fleet's control plane: the
    # deploy's firewall opens it to the control host only.
    control_bind: str | None = None

    @field_validator("bind", "metrics_bind", "control_bind")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value


class DetectorRouter(Strict):
    """A router the sandwich detector decodes: which of the store's pools (fork names) its routes use."""

    v2_fork: Name = "uniswap_v2"
    v3_fork: Name = "uniswap_v3"


class DetectorChain(Strict):
    """The sandwich detector on one chain: pending swaps to these routers, scored on the chain's pools."""

    routers: dict[Address, DetectorRouter] = Field(min_length=1)
    window_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 60.0  # /api/mempool/stats
    keep: Annotated[int, Field(ge=1, le=100_000)] = 1000  # recent risk signals for /opportunities


class AnalyticsConfig(Strict):
    """MEV analytics (mevagent.analytics; detection only). Absent: none of it runs.

    classify_blocks: each new head classified in the background after the hot path (files in out_dir,
    default state_dir/classified). detector: per chain, pending swaps scored for sandwich risk; it
    needs the chain's pending_transactions and fetches each pending body from the node (bounded and
    coalesced: pending_queue hashes at most, fetch_concurrency calls at once). The :8904-style routes
    (/opportunities, /stats, /api/mempool/stats) listen on bind:port when a detector runs.
    """

    bind: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65_536)] = 8904
    classify_blocks: bool = True
    traces: Literal["parity", "geth", "none"] = "parity"  # what the node serves: trace_block, callTracer, neither
    out_dir: Path | None = None
    detector: dict[Name, DetectorChain] = Field(default_factory=dict)
    pending_queue: Annotated[int, Field(ge=1, le=1_000_000)] = 4096
    fetch_concurrency: Annotated[int, Field(ge=1, le=256)] = 8
    # On a chain without pool state (no factories: no head stream to tap), the classifier asks the node for
    # its head this often.
    head_poll_s: Annotated[float, Field(ge=0.05, le=60, allow_inf_nan=False)] = 1.0

    @field_validator("bind")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value


class BusConfig(Strict):
    """The fleet bus (Redis Streams on the control host; see mevagent.bus). Absent: the agent is on its own."""

    agent: Name  # this agent's name in the fleet (its command stream, the `agent` of its events)
    redis_url: Annotated[str, Field(pattern=r"^(rediss?://[^\s/@]+(:\d+)?(/\d+)?|unix:///\S+)$")]
    password_file: SecretFile | None = None  # Redis AUTH (requirepass / ACL user `agent`)
    username: Name | None = None  # the Redis ACL user this agent authenticates as (None: the default user)
    tls_ca_file: Path | None = None  # rediss://: the CA that signed the control host's certificate
    max_queue: Annotated[int, Field(ge=100, le=10_000_000)] = 10_000  # best-effort events waiting
    # Live chains sign only while a fresh risk lease from the control plane is held (dry-run never needs one).
    lease_required: bool = True
    heartbeat_s: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = 1.0
    api_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = None  # how the control plane reaches this API


class AgentConfig(Strict):
    state_dir: Path
    api: ApiConfig
    chains: tuple[ChainConfig, ...] = Field(min_length=1)
    risk: RiskLimits = RiskLimits()
    # Each section validated by its plug-in's own model (strategy_model); only installed plug-ins.
    strategies: dict[Name, StrategyConfig] = Field(default_factory=_default_strategies)
    gas: GasSettings = GasSettings()
    profit: ProfitSettings = ProfitSettings()
    engine: EngineSettings = EngineSettings()
    bus: BusConfig | None = None
    analytics: AnalyticsConfig | None = None  # MEV analytics and the sandwich detector (off unless present)

    @field_validator("strategies", mode="wrap")
    @classmethod
    def _each_by_its_plugin(cls, value: Any, handler: Any) -> dict[str, StrategyConfig]:
        if not isinstance(value, Mapping):
            return handler(value)
        sections: dict[str, Any] = {}
        errors: list[Any] = []
        for name, raw in value.items():
            try:
                model = strategy_model(name)
            except ValueError as exc:
                errors.append({"type": "value_error", "loc": (name,), "input": raw, "ctx": {"error": str(exc)}})
                continue
            try:
                sections[name] = raw if isinstance(raw, model) else model.model_validate(raw or {})
            except ValidationError as exc:
                errors.extend({**err, "loc": (name, *err["loc"])} for err in exc.errors())
        if errors:
            raise ValidationError.from_exception_data("strategies", errors)
        return handler(sections)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.chains]
        if len(set(names)) != len(names):
            raise ValueError(f"chain names repeat: {names}")
        ids = [c.chain_id for c in self.chains]
        if len(set(ids)) != len(ids):
            raise ValueError(f"chain ids repeat: {ids}")
        for sname, strategy in self.strategies.items():
            unknown = sorted(set(strategy.chains or ()) - set(names))
            if unknown:
                raise ValueError(f"strategies.{sname}.chains names unconfigured chains {unknown}")
            strategy.check_against(sname, self)
        if self.analytics is not None:
            self._analytics_chains(self.analytics)
        return self

    def _analytics_chains(self, analytics: AnalyticsConfig) -> None:
        for name in analytics.detector:
            chain = next((c for c in self.chains if c.name == name), None)
            if chain is None:
                raise ValueError(f"analytics.detector.{name}: no such chain is configured")
            if not chain.pending_transactions or not chain.factories:
                raise ValueError(
                    f"analytics.detector.{name}: needs the chain's pending_transactions: true and its factories"
                    " (pending swaps are scored on the pools the agent tracks)"
                )

    def chain(self, name: str) -> ChainConfig:
        for chain in self.chains:
            if chain.name == name:
                return chain
        raise KeyError(name)


# The `.env` names (and `risk.json` keys, lower case) → where they land and how units convert.
_RISK_NAMES: dict[str, tuple[str, float]] = {
    "max_position_size": ("max_position_size_usd", 1.0),
    "max_total_exposure": ("max_total_exposure_usd", 1.0),
    "max_chain_exposure": ("max_chain_exposure_usd", 1.0),
    "max_token_exposure": ("max_token_exposure_usd", 1.0),
    "max_daily_loss": ("max_daily_loss_usd", 1.0),
    "max_daily_loss_per_chain": ("max_daily_loss_per_chain_usd", 1.0),
    "max_drawdown": ("max_drawdown_usd", 1.0),
    "max_slippage": ("max_slippage_bps", 10_000.0),  # a fraction in .env, bps here
    "max_consecutive_failures": ("max_consecutive_failures", 1.0),
    "circuit_breaker_cooldown": ("circuit_breaker_cooldown_s", 1.0),
}
_CHAIN_NAMES = {"max_gas_price": "max_gas_price_gwei"}
_PROFIT_NAMES = {"daily_profit_target": "daily_profit_target_usd"}
_STRATEGY_NAMES = {"min_profit_threshold", "min_profit_bps"}
ENV_NAMES: frozenset[str] = frozenset(
    n.upper() for n in (*_RISK_NAMES, *_CHAIN_NAMES, *_PROFIT_NAMES, *_STRATEGY_NAMES)
)
# Names a seed `.env` may carry that must never be values here: refused with a pointer to the file setting.
_SECRET_ENV_NAMES = {
    "PRIVATE_KEY": "chains[].signing_key_file",
    "SIGNING_KEY": "chains[].signing_key_file",
    "FLASHBOTS_KEY": "chains[].searcher_key_file",
    "FLASHBOTS_SIGNING_KEY": "chains[].searcher_key_file",
    "API_TOKEN": "api.token_file",
}


def _number(source: str, name: str, raw: object) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ConfigError(f"{source}: {name}: expected a number, got {type(raw).__name__}")
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{source}: {name}: expected a number, got {raw!r}") from None
    return value


def _apply_flat(data: dict[str, Any], flat: Mapping[str, object], source: str, *, upper: bool) -> None:
    """Merge the flat limit names into the nested YAML shape."""
    for key, raw in flat.items():
        name = key.lower() if upper else key
        label = key
        if (upper and key != key.upper()) or (not upper and key != key.lower()):
            raise ConfigError(f"{source}: {label}: unknown name (expected {'upper' if upper else 'lower'} case)")
        if name in _RISK_NAMES:
            field, scale = _RISK_NAMES[name]
            value = _number(source, label, raw) * scale
            data.setdefault("risk", {})[field] = int(value) if field == "max_consecutive_failures" else value
        elif name in _CHAIN_NAMES:
            value = _number(source, label, raw)
            for chain in data.get("chains") or ():
                if isinstance(chain, dict):
                    chain[_CHAIN_NAMES[name]] = value
        elif name in _PROFIT_NAMES:
            data.setdefault("profit", {})[_PROFIT_NAMES[name]] = _number(source, label, raw)
        elif name in _STRATEGY_NAMES:
            value = _number(source, label, raw)
            strategies = data.setdefault("strategies", {n: {} for n in _plugins_enabled_by_default()})
            for settings in strategies.values():
                if isinstance(settings, dict):
                    settings[name] = value
        elif upper and key in _SECRET_ENV_NAMES:
            # The value is not echoed: it is a secret.
            raise ConfigError(
                f"{source}: {key}: secrets are never values here; put it in a 0600 file and set "
                f"{_SECRET_ENV_NAMES[key]}"
            )
        else:
            known = sorted(ENV_NAMES) if upper else sorted(n.lower() for n in ENV_NAMES)
            raise ConfigError(f"{source}: {label}: unknown name; known names: {', '.join(known)}")


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines; `#` comments and blank lines are skipped; quotes around values are removed."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            # Do not echo the line: it may hold a secret.
            raise ConfigError(f"{path}:{lineno}: not a NAME=value line")
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if name in values:
            raise ConfigError(f"{path}:{lineno}: {name} is set twice")
        values[name] = value
    return values


def _load_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _field_path(loc: tuple[int | str, ...], data: Mapping[str, Any]) -> str:
    """pydantic's location as `chains.ethereum.max_gas_price_gwei` (list items by their name when they have one)."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int) and isinstance(node, list | tuple) and 0 <= item < len(node):
            node = node[item]
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(str(name) if isinstance(name, str) else str(item))
            continue
        parts.append(str(item))
        node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    """One line per error, each naming its field; input values are never echoed (they may be secrets)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        where = _field_path(err["loc"], data) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def validate(data: Mapping[str, Any], source: str = "config") -> AgentConfig:
    try:
        return AgentConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe(exc, data)}") from None


def load_config(
    path: Path,
    *,
    risk_json: Path | None = None,
    strategies_json: Path | None = None,
    env_file: Path | None = None,
) -> AgentConfig:
    """The agent's configuration from its YAML file and, optionally, risk.json, strategies.json, .env (module doc)."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    sources = [str(path)]
    if risk_json is not None:
        _apply_flat(data, _load_json_object(risk_json), str(risk_json), upper=False)
        sources.append(str(risk_json))
    if strategies_json is not None:
        strategies = _load_json_object(strategies_json)
        merged = data.setdefault("strategies", {})
        if not isinstance(merged, dict):
            raise ConfigError(f"{path}: strategies: expected a mapping")
        for name, settings in strategies.items():
            if not isinstance(settings, dict):
                raise ConfigError(f"{strategies_json}: {name}: expected an object")
            merged[name] = {**(merged.get(name) or {}), **settings}
        sources.append(str(strategies_json))
    if env_file is not None:
        _apply_flat(data, parse_env_file(env_file), str(env_file), upper=True)
        sources.append(str(env_file))
    return validate(data, " + ".join(sources))
