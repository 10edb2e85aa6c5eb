"""``mapo_tool_agent``: verl's ``ToolAgentLoop`` that records every tool call's alignment score.

Each call (successful, or failed anywhere: unknown tool, invalid JSON, a box the zoom rejects) appends one
record to ``agent_data.extra_fields["mapo_turns"]``; verl copies ``extra_fields`` into the batch's
``non_tensor_batch``, where mapo's advantage hook reads it. A failed call counts as a call (mapo's rule, the
same in ``mapo train``: the model spent a turn on it), with the ``failed_call_score`` chosen on the trainer
side. That includes a turn whose ``<tool_call>`` verl's parser cannot read at all (verl then ends the episode
without calling anything): it is recorded as a failed call of that turn.
Select it with ``actor_rollout_ref.rollout.agent.default_agent_loop=mapo_tool_agent`` and
``agent_loop_config_path=configs/verl/agent_loops.yaml``.
"""

from __future__ import annotations

from typing import Any

from verl.experimental.agent_loop.agent_loop import register
from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop

from mapo.agent.parser import opens_tool_call
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

    async def _handle_generating_state(self, agent_data, sampling_params: dict[str, Any], ignore_termination: bool = False):
        agent_data.tool_calls = []
        n_messages = len(agent_data.messages)
        state = await super()._handle_generating_state(agent_data, sampling_params, ignore_termination)
        # the parser ran (it appends the assistant message) but found no call in a turn that opened one
        if len(agent_data.messages) > n_messages and not agent_data.tool_calls:
            text = self.tokenizer.decode(agent_data.response_ids)
            if opens_tool_call(text):
                record = turn_record(agent_data.assistant_turns - 1, 0.0, False)
                record["box"] = None
                agent_data.extra_fields.setdefault(TURNS_KEY, []).append(record)
        return state

    async def _call_tool(self, tool_call, tools_kwargs: dict[str, Any], agent_data):
        response, reward, metrics = await super()._call_tool(tool_call, tools_kwargs, agent_data)
        found = (metrics or {}).get(RECORD_KEY) if isinstance(metrics, dict) else None
        record = turn_record(agent_data.assistant_turns - 1, found["score"] if found else 0.0,
                             bool(found and found.get("ok")))
        record["box"] = found.get("box") if found else None
        agent_data.extra_fields.setdefault(TURNS_KEY, []).append(record)
        return response, reward, metrics
