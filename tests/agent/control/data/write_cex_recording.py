"""Writes cex_binance_eth_usdc.json: a synthetic recording of Binance's spot REST responses for ETH/USDC.

No network is reachable where this was written, so the responses are made here, in the exchange's format:
`GET /api/v3/exchangeInfo` (the ETHUSDC symbol with its PRICE_FILTER, LOT_SIZE and NOTIONAL filters) and 36
`GET /api/v3/depth?symbol=ETHUSDC&limit=20` answers one second apart (`lastUpdateId`, 20 bids and 20 asks as
decimal strings, best first), a seeded random walk of the mid price around 3,000 USDC with a 0.01 spread and
depth growing away from the top. Run it again to rewrite the file (the same seed gives the same file).
"""

import json
import random
from decimal import Decimal
from pathlib import Path

BASE = "https://api.binance.com/api/v3"
OUT = Path(__file__).with_name("cex_binance_eth_usdc.json")
SNAPSHOTS = 36
START_MS = 1_796_000_000_000  # 2026-11-30


def main() -> None:
    rng = random.Random(15)
    symbol = {
        "symbol": "ETHUSDC", "status": "TRADING", "baseAsset": "ETH", "baseAssetPrecision": 8, "quoteAsset": "USDC",
        "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
             "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"},
            {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
             "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        "permissions": [], "permissionSets": [["SPOT", "MARGIN"]], "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }  # fmt: skip
    info = {"timezone": "UTC", "serverTime": START_MS, "rateLimits": [], "exchangeFilters": [], "symbols": [symbol]}
    cent, step = Decimal("0.01"), Decimal("0.0001")
    mid = Decimal("3000.005")
    snapshots = []
    update_id = 52_718_330_114
    for n in range(SNAPSHOTS):
        mid += Decimal(rng.randint(-150, 150)) * cent / 10  # up to 1.5 USDC a second
        mid = mid.quantize(Decimal("0.001"))
        best_bid = (mid - cent / 2).quantize(cent)
        bids, asks = [], []
        price = best_bid
        for level in range(20):
            amount = (Decimal(rng.randint(500, 4000 + 2000 * level)) * step).quantize(step)
            bids.append([f"{price:.8f}", f"{amount:.8f}"])
            price -= cent * rng.randint(1, 40)
        price = best_bid + cent
        for level in range(20):
            amount = (Decimal(rng.randint(500, 4000 + 2000 * level)) * step).quantize(step)
            asks.append([f"{price:.8f}", f"{amount:.8f}"])
            price += cent * rng.randint(1, 40)
        update_id += rng.randint(20, 400)
        snapshots.append({"received_ms": START_MS + 1000 * n + rng.randint(0, 40),
                          "body": {"lastUpdateId": update_id, "bids": bids, "asks": asks}})  # fmt: skip
    recording = {
        "exchange": "binance",
        "synthetic": True,
        "note": "Synthetic: written by write_cex_recording.py in Binance's spot REST response format (no network "
        "was reachable); not captured from the exchange.",
        "responses": {f"GET {BASE}/exchangeInfo": info},
        "books": {f"GET {BASE}/depth?symbol=ETHUSDC&limit=20": snapshots},
    }
    # One snapshot a line: the file stays readable and diffs stay small.
    text = json.dumps({**recording, "books": {}}, indent=1)
    lines = ",\n".join(f"   {json.dumps(s)}" for s in snapshots)
    books = f'"books": {{\n  "GET {BASE}/depth?symbol=ETHUSDC&limit=20": [\n{lines}\n  ]\n }}'
    OUT.write_text(text.replace('"books": {}', books) + "\n")


if __name__ == "__main__":
    main()
