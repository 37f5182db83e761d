"""A consensus client's state from its own beacon API (read on the host, like every other check):
sync (`/eth/v1/node/syncing`), health (`/eth/v1/node/health`), finality and peers."""

from __future__ import annotations

import json
import shlex

from pydantic import BaseModel

PATHS = (
    "/eth/v1/node/syncing",
    "/eth/v1/beacon/states/head/finality_checkpoints",
    "/eth/v1/node/peer_count",
)
HEALTH = "/eth/v1/node/health"


def beacon_probe(url: str) -> str:
    """Shell printing one line per PATHS answer (or {}), then the health endpoint's HTTP code."""
    lines = [f"curl -s -m 3 {shlex.quote(url + path)} || echo '{{}}'; echo" for path in PATHS]
    lines.append(f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' {shlex.quote(url + HEALTH)}; echo")
    return "; ".join(lines)


class BeaconState(BaseModel):
    head_slot: int | None = None
    sync_distance: int | None = None
    is_syncing: bool | None = None
    finalized_epoch: int | None = None
    justified_epoch: int | None = None
    peers: int | None = None
    health: int | None = None  # 200 ready, 206 syncing, 503 not initialized (beacon API spec)

    def status_fields(self) -> dict:
        return {
            "head": self.head_slot,
            "lag": self.sync_distance,
            "peers": self.peers,
            "finalized_epoch": self.finalized_epoch,
            "head_kind": "slot",
            "syncing": self.is_syncing,
            **({"note": f"syncing: head {self.sync_distance} slots behind the clock"} if self.is_syncing else {}),
        }


def _data(text: str) -> dict:
    try:
        data = json.loads(text).get("data")
    except (ValueError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def parse_beacon(lines: list[str]) -> BeaconState:
    syncing, finality, peers, health = [*lines, "", "", "", ""][:4]
    s, f, p = _data(syncing), _data(finality), _data(peers)
    return BeaconState(
        head_slot=_int(s.get("head_slot")),
        sync_distance=_int(s.get("sync_distance")),
        is_syncing=s.get("is_syncing") if isinstance(s.get("is_syncing"), bool) else None,
        finalized_epoch=_int((f.get("finalized") or {}).get("epoch")),
        justified_epoch=_int((f.get("current_justified") or {}).get("epoch")),
        peers=_int(p.get("connected")),
        health=_int(health.strip()),
    )


def beacon_problems(url: str, first: BeaconState | None, now: BeaconState) -> list[str]:
    """What keeps a beacon node from counting as healthy in a health gate, from its state `now` and the
    first state the gate read (whose head slot `now` must be past): empty when healthy."""
    problems = []
    if now.health != 200:
        problems.append(f"{HEALTH} answered {now.health or 'nothing'}, expected 200")
    if now.is_syncing is not False:
        behind = f" (head {now.sync_distance} slots behind the clock)" if now.sync_distance is not None else ""
        problems.append(f"syncing{behind}" if now.is_syncing else "/eth/v1/node/syncing did not answer")
    if now.head_slot is None or first is None or first.head_slot is None:
        problems.append("no head slot")
    elif now.head_slot <= first.head_slot:
        problems.append(f"head not advancing (slot {now.head_slot})")
    return [f"beacon {url}: {p}" for p in problems]
