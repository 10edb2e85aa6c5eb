"""``mapo_tool_agent``: verl's ``ToolAgentLoop`` that records every tool call's alignment score.

Each call (successful, or failed anywhere: unknown tool, invalid JSON, a box the zoom rejects) appends one
record to ``agent_data.extra_fields["mapo_turns"]``; verl copies ``extra_fields`` into the batch's
``non_tensor_batch``, where mapo's advantage hook reads it. A failed call counts as a call (mapo's rule: the
model spent a turn on it), with the ``failed_call_score`` chosen on the trainer side.
Select it with ``actor_rollout_ref.rollout.agent.default_agent_loop=mapo_tool_agent`` and
``agent_loop_config_path=configs/verl/agent_loops.yaml``.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import register
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

from mapo.integrations.verl.turns import TURNS_KEY, turn_record
from mapo.integrations.verl.zoom_tool import RECORD_KEY


@register("mapo_tool_agent")
class MapoToolAgentLoop(ToolAgentLoop):
    """Tool agent loop whose output carries one ``{"turn", "score", "ok", "box"}`` record per tool call."""

    async def run(self, sampling_params: dict[str, Any], priority: int = 0, **kwargs):
        output = await super().run(sampling_params, priority=priority, **kwargs)
        # every row has the column, so batches concatenate and "no call" is [] rather than None
        output.extra_fields.setdefault(TURNS_KEY, [])
        return output

    async def _call_tool(self, tool_call, tools_kwargs: dict[str, Any], agent_data):
        response, reward, metrics = await super()._call_tool(tool_call, tools_kwargs, agent_data)
        found = (metrics or {}).get(RECORD_KEY) if isinstance(metrics, dict) else None
        record = turn_record(agent_data.assistant_turns - 1, found["score"] if found else 0.0,
                             bool(found and found.get("ok")))
        record["box"] = found.get("box") if found else None
        agent_data.extra_fields.setdefault(TURNS_KEY, []).append(record)
        return response, reward, metrics
