"""What operators do to the fleet: each mutation persisted and audited, four-eyes where it must be.

Four-eyes: enabling live trading on a chain, raising a fleet limit above the inventory's ceiling and
resuming after an emergency stop only create a pending approval; the action takes effect when a
different operator approves it (the database refuses an approval by the requester too). Every call
here writes one audit_log row: who, what, on what, the state before and after, who approved, result.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import Any

import aiohttp
import asyncpg
import orjson

from mevagent.bus.events import (
    Command,
    EmergencyResumeCommand,
    EmergencyStopCommand,
    PauseStrategyCommand,
    ResumeStrategyCommand,
    SetLimitsCommand,
    new_id,
)
from mevagent.config import read_secret
from mevcontrol.config import AgentEntry, FleetLimits
from mevcontrol.service import Control

log = logging.getLogger(__name__)

FOUR_EYES = ("emergency_resume", "enable_live", "raise_limits")


class Forbidden(Exception):
    """An operator may not do this (four-eyes); becomes a 403."""


class Conflict(Exception):
    """The approval is not pending any more; becomes a 409."""


async def audit(
    conn: asyncpg.Connection,
    operator: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    result: str,
    approved_by: str | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (operator, action, target, before, after, approved_by, result)
           VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7)""",
        operator,
        action,
        target,
        orjson.dumps(before).decode(),
        orjson.dumps(after).decode(),
        approved_by,
        result,
    )


class Operations:
    def __init__(self, control: Control) -> None:
        self.control = control
        self.config = control.config
        self._tokens = {a.name: read_secret(a.token_file).decode() for a in self.config.agents}
        self._session: aiohttp.ClientSession | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.agent_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # ---- direct calls to agents -------------------------------------------------------------------

    async def call_agent(self, agent: AgentEntry, method: str, path: str, body: Any = None) -> tuple[bool, Any]:
        """(ok, answer or error text) of one call to `agent`'s own control API with its own token."""
        headers = {"Authorization": f"Bearer {self._tokens[agent.name]}"}
        try:
            session = await self.session()
            async with session.request(method, agent.api_url + path, json=body, headers=headers) as response:
                answer = await response.json(content_type=None)
                if response.status == 200:
                    return True, answer
                return False, f"HTTP {response.status}: {answer.get('error', '') if isinstance(answer, dict) else ''}"
        except TimeoutError:
            return False, f"no answer within {self.config.agent_timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return False, f"{type(exc).__name__}: {exc}"

    async def each_agent(self, method: str, path: str, body: Any = None) -> dict[str, dict[str, Any]]:
        agents = self.config.agents
        answers = await asyncio.gather(*(self.call_agent(a, method, path, body) for a in agents))
        return {a.name: {"ok": ok, "answer": answer} for a, (ok, answer) in zip(agents, answers, strict=True)}

    # ---- the bus ------------------------------------------------------------------------------------

    async def broadcast(
        self, command: Command, wait_s: float = 0.0, *, agents: list[str] | None = None, recorded: bool = False
    ) -> dict[str, str]:
        """Send `command` to every agent's stream (or to `agents`, for whom the caller has `recorded` it);
        with `wait_s`, wait that long for their acks."""
        if agents is None:
            agents = await self.control.agents()
        futures = self.control.expect_ack(command.id, agents) if wait_s else {}
        result: dict[str, str] = {}
        try:
            try:
                result = await self.control.send_all(agents, command, recorded=recorded)
            except Exception as exc:  # Redis or PostgreSQL away: the direct calls still go out
                result = dict.fromkeys(agents, f"not sent: {type(exc).__name__}")
            if futures:
                waiting = [f for a, f in futures.items() if result[a] == "sent"]
                if waiting:
                    await asyncio.wait(waiting, timeout=wait_s)
                for agent, future in futures.items():
                    if future.done():
                        ack = future.result()
                        result[agent] = "acked" if ack.ok else f"refused: {ack.detail}"
                    elif result[agent] == "sent":
                        result[agent] = "no ack"
        finally:
            self.control.forget_ack(command.id)
        return result

    # ---- emergency stop and resume ----------------------------------------------------------------------

    async def emergency_stop(self, reason: str, operator: str) -> dict[str, Any]:
        """Persisted first, then through the bus and directly to every agent at once; names who did not answer."""
        control = self.control
        started = time.perf_counter()
        before = dict(control.emergency)
        control.emergency = {"engaged": True, "reason": reason, "by": operator, "at": time.time()}
        control.granting = False
        control.metrics.emergency.set(1)
        control.metrics.granting.set(0)
        agents = await control.agents()
        command = EmergencyStopCommand(reason=reason, issued_by=operator)
        # The stop, its audit row and the commands to every agent in one commit: one disk flush before the bus.
        async with control.pool.acquire() as conn, conn.transaction():
            await control.save_state(conn, "emergency", control.emergency, operator)
            await audit(conn, operator, "emergency_stop", "fleet", before, control.emergency, "engaged")
            await control.record(conn, command, agents)
        bus, direct = await asyncio.gather(
            self.broadcast(command, wait_s=self.config.agent_timeout_s, agents=agents, recorded=True),
            self.each_agent("POST", "/emergency/stop", {"reason": f"fleet: {reason} ({operator})"}),
        )
        agents: dict[str, Any] = {}
        for name in sorted(set(bus) | set(direct)):
            api = direct.get(name)
            agents[name] = {
                "api": "acknowledged" if api and api["ok"] else (api["answer"] if api else "no API configured"),
                "bus": bus.get(name, "not on the bus"),
            }
        silent = [n for n, a in agents.items() if a["api"] != "acknowledged" and a["bus"] != "acked"]
        return {
            "emergency_stop": control.emergency,
            "command_id": command.id,
            "agents": agents,
            "not_answered": silent,
            "seconds": time.perf_counter() - started,
        }

    async def _emergency_resume(self, operator: str, approved_by: str) -> dict[str, Any]:
        control = self.control
        before = dict(control.emergency)
        control.emergency = {"engaged": False, "reason": "", "by": approved_by, "at": time.time()}
        control.metrics.emergency.set(0)
        async with control.pool.acquire() as conn, conn.transaction():
            await control.save_state(conn, "emergency", control.emergency, approved_by)
            await audit(conn, operator, "emergency_resume", "fleet", before, control.emergency, "released", approved_by)
        bus, direct = await asyncio.gather(
            self.broadcast(EmergencyResumeCommand(issued_by=approved_by), wait_s=self.config.agent_timeout_s),
            self.each_agent("POST", "/emergency/resume", {}),
        )
        return {"emergency_stop": control.emergency, "bus": bus, "api": direct}

    # ---- limits, live chains ------------------------------------------------------------------------------

    async def set_fleet_limits(self, changes: dict[str, Any], operator: str) -> tuple[int, dict[str, Any]]:
        """202 with an approval when a value goes above its ceiling; else applied now (200)."""
        control = self.control
        merged = FleetLimits.model_validate({**control.limits.model_dump(), **changes})  # ValidationError: 400
        above = [k for k in changes if getattr(merged, k) > getattr(self.config.ceilings, k)]
        if above:
            return 202, await self.request("raise_limits", {"changes": changes}, operator, f"above ceiling: {above}")
        return 200, await self._apply_limits(merged, operator, None)

    async def _apply_limits(self, limits: FleetLimits, operator: str, approved_by: str | None) -> dict[str, Any]:
        control = self.control
        before = control.limits.model_dump()
        async with control.pool.acquire() as conn, conn.transaction():
            await control.save_state(conn, "limits", limits.model_dump(), approved_by or operator)
            await audit(
                conn, operator, "set_fleet_limits", "fleet", before, limits.model_dump(), "applied", approved_by
            )
        control.limits = limits
        return {"limits": limits.model_dump()}

    async def set_live(self, chain: str, live: bool, operator: str) -> tuple[int, dict[str, Any]]:
        if live and chain not in self.control.live_chains:
            return 202, await self.request("enable_live", {"chain": chain}, operator, f"live trading on {chain}")
        return 200, await self._apply_live(chain, live, operator, None)

    async def _apply_live(self, chain: str, live: bool, operator: str, approved_by: str | None) -> dict[str, Any]:
        control = self.control
        before = list(control.live_chains)
        after = sorted(set(before) | {chain}) if live else sorted(set(before) - {chain})
        async with control.pool.acquire() as conn, conn.transaction():
            await control.save_state(conn, "live_chains", after, approved_by or operator)
            action = "enable_live" if live else "disable_live"
            await audit(conn, operator, action, chain, before, after, "applied", approved_by)
        control.live_chains = tuple(after)
        if not live:
            # Leases already granted name the chain until they expire: stop granting it now.
            await control.grant_leases()
        return {"live_chains": after}

    # ---- commands to every agent --------------------------------------------------------------------------

    async def command_all(self, command: Command, operator: str, target: str) -> dict[str, Any]:
        async with self.control.pool.acquire() as conn:
            await audit(conn, operator, command.kind, target, None, command.model_dump(), "sent")
        return {"command_id": command.id, "agents": await self.broadcast(command, wait_s=self.config.agent_timeout_s)}

    async def pause(self, strategy: str, operator: str, resume: bool) -> dict[str, Any]:
        cls = ResumeStrategyCommand if resume else PauseStrategyCommand
        return await self.command_all(cls(strategy=strategy, issued_by=operator), operator, strategy)

    async def agent_limits(self, changes: dict[str, float], operator: str) -> dict[str, Any]:
        return await self.command_all(SetLimitsCommand(changes=changes, issued_by=operator), operator, "agents")

    async def forward(self, path: str, body: dict[str, Any], operator: str) -> dict[str, Any]:
        answers = await self.each_agent("POST", path, body)
        async with self.control.pool.acquire() as conn:
            result = "applied" if all(a["ok"] for a in answers.values()) else "partly applied"
            await audit(conn, operator, path.strip("/").replace("/", "_"), "agents", None, body, result)
        return {"agents": answers}

    # ---- approvals ------------------------------------------------------------------------------------------

    async def request(self, action: str, payload: dict[str, Any], operator: str, why: str) -> dict[str, Any]:
        approval = new_id()
        async with self.control.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO approvals (id, action, payload, requested_by) VALUES ($1, $2, $3::jsonb, $4)",
                approval,
                action,
                orjson.dumps(payload).decode(),
                operator,
            )
            await audit(conn, operator, action, approval, None, payload, "awaiting approval")
        return {
            "approval_id": approval,
            "action": action,
            "why": f"four-eyes: {why} takes effect when a different operator approves",
            "approve_with": f"POST /approvals/{approval}/approve",
        }

    async def pending(self) -> list[dict[str, Any]]:
        async with self.control.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, action, payload, requested_by, requested_at FROM approvals WHERE state = 'pending' "
                "ORDER BY requested_at"
            )
        return [
            {
                "id": r["id"].hex,
                "action": r["action"],
                "payload": orjson.loads(r["payload"]),
                "requested_by": r["requested_by"],
                "requested_at": r["requested_at"].isoformat(),
            }
            for r in rows
        ]

    async def request_resume(self, operator: str) -> tuple[int, dict[str, Any]]:
        if not self.control.emergency["engaged"]:
            return 200, {"emergency_stop": self.control.emergency}
        return 202, await self.request("emergency_resume", {}, operator, "resuming after an emergency stop")

    async def approve(self, approval: str, operator: str) -> dict[str, Any]:
        control = self.control
        async with control.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow("SELECT * FROM approvals WHERE id = $1 FOR UPDATE", approval)
            if row is None:
                raise KeyError(approval)
            if row["state"] != "pending":
                raise Conflict(f"approval {approval} is {row['state']}")
            age = (dt.datetime.now(dt.UTC) - row["requested_at"]).total_seconds()
            # Decided here, raised after the transaction: a refusal or an expiry must be written, not rolled back.
            if row["requested_by"] == operator:
                verdict = "refused: four-eyes"
                await audit(conn, operator, row["action"], approval, None, None, verdict)
            elif age > self.config.approval_ttl_s:
                verdict = "expired"
                await conn.execute("UPDATE approvals SET state = 'expired' WHERE id = $1", approval)
            else:
                verdict = "approved"
                await conn.execute(
                    "UPDATE approvals SET state = 'approved', approved_by = $2, approved_at = now() WHERE id = $1",
                    approval,
                    operator,
                )
        if verdict == "refused: four-eyes":
            raise Forbidden("four-eyes: the approver must be a different operator than the requester")
        if verdict == "expired":
            raise Conflict(f"approval {approval} expired after {self.config.approval_ttl_s:g} s")
        payload = orjson.loads(row["payload"])
        requester = row["requested_by"]
        match row["action"]:
            case "emergency_resume":
                done = await self._emergency_resume(requester, operator)
            case "enable_live":
                done = await self._apply_live(payload["chain"], True, requester, operator)
            case "raise_limits":
                merged = FleetLimits.model_validate({**control.limits.model_dump(), **payload["changes"]})
                done = await self._apply_limits(merged, requester, operator)
            case other:
                raise Conflict(f"unknown action {other}")
        return {
            "approved": approval,
            "action": row["action"],
            "requested_by": requester,
            "approved_by": operator,
            **done,
        }
