"""The token registry and the bridge catalog shipped with mevagent.crosschain: loaded, consistent, and
refusing what would make two different tokens look equal."""

from decimal import Decimal

import pytest
import yaml

from mevagent.crosschain.registry import Registry, RegistryError, load_catalog, registry

CHAINS = ("ethereum", "arbitrum", "optimism", "base", "polygon", "avalanche", "bsc", "solana")


def test_every_chain_has_its_native_coin_and_usdc() -> None:
    reg = registry()
    assert tuple(reg.catalog.chains) == CHAINS
    for chain in CHAINS:
        natives = [t for t in reg.tokens.values() if t.chain == chain and t.variant == "native"]
        assert len(natives) == 1 and natives[0].address == "native", chain
        assert natives[0].symbol == reg.catalog.chains[chain].native
        assert any(t.chain == chain and t.asset == "usdc" for t in reg.tokens.values()), chain
    assert reg.tokens["bsc:USDC"].decimals == 18 and reg.tokens["arbitrum:USDC"].decimals == 6


def test_bridged_and_issued_usdc_are_two_tokens_joined_by_a_route() -> None:
    reg = registry()
    native, bridged = reg.tokens["arbitrum:USDC"], reg.tokens["arbitrum:USDC.e"]
    assert native.asset == bridged.asset == "usdc" and native.address != bridged.address
    assert (native.variant, bridged.variant) == ("issued", "bridged")
    assert bridged.of == "ethereum:USDC" and bridged.via == "arbitrum_canonical"
    assert reg.token_at("arbitrum", native.address.lower()) is native
    # Joined only through a bridge, with a cost: a rebalancing route, never a trade's.
    route = reg.cheapest_route("ethereum:USDC", "arbitrum:USDC.e", Decimal(10_000), max_time_s=3600, for_trade=False)
    assert route is not None and route.bridge == "arbitrum_canonical"
    assert reg.cheapest_route("ethereum:USDC", "arbitrum:USDC.e", Decimal(10_000), max_time_s=3600) is None


def test_rollup_withdrawals_never_price_a_trade() -> None:
    reg = registry()
    for (src, dst), routes in reg.routes.items():
        for route in routes:
            if route.challenge_period:
                assert route.use == "rebalance", (src, dst, route.bridge)
    slow = reg.cheapest_route("arbitrum:WETH", "ethereum:WETH", Decimal(1000), max_time_s=10**7, for_trade=False)
    fast = reg.cheapest_route("arbitrum:WETH", "ethereum:WETH", Decimal(1000), max_time_s=10**7)
    assert fast is not None and not fast.challenge_period and fast.bridge in ("across", "stargate")
    assert slow is not None  # the cheapest overall may be the 7-day withdrawal: a rebalancing plan's choice


def test_cheapest_route_respects_time_preference_and_health() -> None:
    reg = registry()
    amount = Decimal(1000)
    # 1000 USD: across 1 + 0.5 = 1.5, stargate 1 + 0.6 = 1.6, cctp 0.5 (but 1100 s)
    assert reg.cheapest_route("arbitrum:USDC", "base:USDC", amount, max_time_s=600).bridge == "across"
    assert reg.cheapest_route("arbitrum:USDC", "base:USDC", amount, max_time_s=1200).bridge == "cctp"
    chosen = reg.cheapest_route("arbitrum:USDC", "base:USDC", amount, max_time_s=600, avoid=frozenset({"across"}))
    assert chosen is not None and chosen.bridge == "stargate"
    assert chosen.cost_usd(amount) == Decimal("1.6")
    assert reg.cheapest_route("arbitrum:USDC", "base:USDC", amount, max_time_s=10) is None


def _catalog(**changes: object) -> dict:
    data = {
        "chains": {"a": {"chain_id": 31337, "native": "ETH"}, "b": {"chain_id": 31338, "native": "ETH"}},
        "tokens": {
            "a:USDC": {"asset": "usdc", "variant": "issued", "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                       "decimals": 6},
            "b:USDC": {"asset": "usdc", "variant": "issued", "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                       "decimals": 6},
            "b:WETH": {"asset": "eth", "variant": "wrapped", "address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
                       "decimals": 18},
        },
        "bridges": {"local": {"kind": "intent", "use": "trade", "why": "test", "fee": {"fee_bps": 1, "fixed_usd": 0},
                              "fill_s": 5, "mesh": [["a:USDC", "b:USDC"]]}},
    }  # fmt: skip
    data.update(changes)
    return data


def test_a_local_catalog_loads_and_bad_ones_are_refused_naming_the_entry() -> None:
    assert len(load_catalog(yaml.safe_dump(_catalog()), "").tokens) == 3
    bad = _catalog()
    bad["tokens"]["a:USDC"]["address"] = "0x5fbdb2315678afecb367f032d93f642f64180aA3"
    with pytest.raises(RegistryError, match=r"a:USDC.*EIP-55"):
        load_catalog(yaml.safe_dump(bad), "")
    mixed = _catalog()
    mixed["bridges"]["local"]["mesh"] = [["a:USDC", "b:WETH"]]
    with pytest.raises(RegistryError, match="not the same asset"):
        load_catalog(yaml.safe_dump(mixed), "")
    orphan = _catalog()
    orphan["tokens"]["b:USDC"].update(variant="bridged", via="nowhere")
    with pytest.raises(RegistryError, match=r"b:USDC: bridged via nowhere"):
        load_catalog(yaml.safe_dump(orphan), "")
    numbered = _catalog()
    numbered["bridges"]["local"].update(events="cctp", chain_ids={"a": 0, "c": 3})
    with pytest.raises(RegistryError, match=r"bridges.local.chain_ids: \['c'\] not under chains"):
        load_catalog(yaml.safe_dump(numbered), "")
    numbered["bridges"]["local"]["chain_ids"] = {"a": 0, "b": 0}
    with pytest.raises(RegistryError, match="two chains with the same id"):
        load_catalog(yaml.safe_dump(numbered), "")
    del numbered["bridges"]["local"]["chain_ids"]
    with pytest.raises(RegistryError, match="cctp events name chains by chain_ids"):
        load_catalog(yaml.safe_dump(numbered), "")


def test_the_monitored_bridges_number_every_chain_of_their_routes() -> None:
    """CCTP's domains and Stargate's LayerZero endpoint ids cover every chain their routes reach (a chain
    missing would leave its transfers without a destination in the monitor)."""
    catalog = registry().catalog
    assert catalog.bridges["cctp"].chain_ids["ethereum"] == 0 and catalog.bridges["cctp"].chain_ids["base"] == 6
    for name in ("cctp", "stargate"):
        bridge = catalog.bridges[name]
        chains = {token.split(":", 1)[0] for group in bridge.mesh for token in group}
        assert chains == set(bridge.chain_ids), name
        assert bridge.stuck_s is not None and bridge.fill_s is not None and bridge.stuck_s > bridge.fill_s


def test_a_route_own_stuck_bound_wins_and_op_stack_joins_two_chains() -> None:
    """A withdrawal's bound is its route's (days), the deposit the other way the bridge's; an op_stack bridge's
    routes reach exactly two chains (the monitor takes a transfer's destination as the other one)."""
    data = _catalog()
    data["chains"]["c"] = {"chain_id": 31339, "native": "ETH"}
    data["tokens"]["c:USDC"] = {"asset": "usdc", "variant": "issued",
                                "address": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "decimals": 6}  # fmt: skip
    data["bridges"]["canonical"] = {
        "kind": "canonical", "use": "rebalance", "why": "test", "fee": {"fee_bps": 0, "fixed_usd": 2},
        "events": "op_stack", "stuck_s": 60,
        "routes": [{"from": "a:USDC", "to": "b:USDC", "fill_s": 10},
                   {"from": "b:USDC", "to": "a:USDC", "fill_s": 600, "challenge_period": True, "stuck_s": 900}],
    }  # fmt: skip
    catalog = load_catalog(yaml.safe_dump(data), "")
    routes = {(r.src, r.dst): r for rs in Registry(catalog).routes.values() for r in rs if r.bridge == "canonical"}
    assert routes[("a:USDC", "b:USDC")].stuck_s == 60 and routes[("b:USDC", "a:USDC")].stuck_s == 900
    data["bridges"]["canonical"]["routes"].append({"from": "a:USDC", "to": "c:USDC", "fill_s": 10})
    with pytest.raises(RegistryError, match=r"op_stack events join two chains, its routes reach \['a', 'b', 'c'\]"):
        load_catalog(yaml.safe_dump(data), "")


def test_op_stack_withdrawals_are_not_stuck_before_their_challenge_period() -> None:
    """OP Mainnet's and Base's canonical bridges: deposits stuck after an hour, withdrawals only past their
    7-day window (8 days: proving and finalizing take their time)."""
    for name in ("optimism_canonical", "base_canonical"):
        assert registry().catalog.bridges[name].events == "op_stack"
        routes = [r for rs in registry().routes.values() for r in rs if r.bridge == name]
        assert len(routes) == 4
        for route in routes:
            assert route.stuck_s is not None and route.stuck_s > route.fill_s
            assert route.stuck_s == (691_200 if route.challenge_period else 3600), route
