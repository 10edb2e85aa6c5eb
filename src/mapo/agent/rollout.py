"""The multi-turn rollout engine: G samples per task, one batched ``generate`` per turn over every
still-active trajectory, the zoom tool between turns.

Read ``RolloutEngine.run`` top to bottom: it is the whole loop. Per turn, each active trajectory gets its
generated tokens appended (mask 1), the turn parsed, then exactly one of: the answer ends it; the turn cap
ends it; an observation (the crop, or an error message) is appended (mask 0) and it stays active. An
observation is appended whole or not at all, so image placeholders always match the images fed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mapo.agent import protocol
from mapo.agent.backend import Context, Generation, KVSlot, PolicyBackend
from mapo.agent.parser import parse_turn
from mapo.agent.protocol import ProtocolConfig
from mapo.agent.trajectory import Trajectory, TurnRecord
from mapo.agent.zoom import ToolResult, View, ZoomConfig, ZoomTool
from mapo.data.images import fit_to_budget
from mapo.data.task import Box, Task


@dataclass
class _Episode:
    """Engine-side state of one trajectory that the record does not need to keep."""

    traj: Trajectory
    views: list[View]
    pixels_used: int
    ids: list[int]
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_of: list[int] = field(default_factory=list)
    kv: KVSlot | None = None
    """The backend's KV cache of this trajectory, kept between turns (None: re-encoded every turn)."""

    @property
    def response_len(self) -> int:
        return len(self.mask)


class RolloutEngine:
    """Runs the thinking-with-images protocol with ``backend`` as the policy."""

    def __init__(self, backend: PolicyBackend, tool: ZoomTool | None = None,
                 protocol_cfg: ProtocolConfig | None = None):
        self.backend = backend
        self.cfg = protocol_cfg or ProtocolConfig()
        self.tool = tool or ZoomTool(ZoomConfig(coordinates=self.cfg.coordinates,
                                                crop_max_pixels=self.cfg.crop_max_pixels,
                                                crop_min_pixels=self.cfg.crop_min_pixels,
                                                image_factor=backend.image_factor,
                                                allow_source=self.cfg.allow_source,
                                                repair=self.cfg.box_repair))
        if self.tool.cfg.image_factor != backend.image_factor:
            raise ValueError(f"ZoomConfig.image_factor={self.tool.cfg.image_factor} but the backend's image grid "
                             f"is {backend.image_factor} px; build the tool with image_factor=backend.image_factor")

    def run(self, tasks: list[Task], group_size: int = 1) -> list[Trajectory]:
        """Roll out every task ``group_size`` times; trajectories come back task-major (task 0's G first)."""
        cfg = self.cfg
        episodes = [self._start(task, g, prompt) for task in tasks
                    for prompt in [self._prompt(task)] for g in range(group_size)]
        active = list(episodes)
        for turn in range(cfg.max_turns):
            if not active:
                break
            budgets = [min(cfg.max_new_tokens_per_turn, cfg.max_response_tokens - ep.response_len) for ep in active]
            contexts = [Context(ids=ep.ids, images=list(ep.traj.images), key=(ep.traj.task.id, ep.traj.sample_index),
                                turn=turn, kv=ep.kv) for ep in active]
            generations = self.backend.generate(contexts, budgets, protocol.STOP_SEQUENCES, cfg.temperature)
            still_active = []
            for ep, gen, budget in zip(active, generations, budgets):
                record = self._append_generation(ep, gen, turn, budget)
                if self._act(ep, record, is_last_turn=turn == cfg.max_turns - 1):
                    still_active.append(ep)
                else:
                    ep.kv = None  # its cache is no longer needed: free it now, not at the end of the batch
            active = still_active
        return [self._finish(ep) for ep in episodes]

    # -- one turn ------------------------------------------------------------------------------------------

    def _append_generation(self, ep: _Episode, gen: Generation, turn: int, budget: int) -> TurnRecord:
        ids = list(gen.ids[:budget])
        logprobs = gen.logprobs[: len(ids)].tolist() if len(gen.logprobs) else [0.0] * len(ids)
        start = ep.response_len
        ep.ids = ep.ids + ids
        ep.mask += [1] * len(ids)
        ep.logprobs += logprobs
        ep.turn_of += [turn] * len(ids)
        text = gen.text if len(ids) == len(gen.ids) else self.backend.decode(ids)
        expect_description = self.cfg.mode == "description" and bool(ep.traj.turns) and \
            ep.traj.turns[-1].tool is not None and ep.traj.turns[-1].tool.ok
        parsed = parse_turn(text, require_label=self.cfg.mode == "label", expect_description=expect_description)
        record = TurnRecord(index=turn, text=text, parsed=parsed, span=(start, ep.response_len),
                            truncated=not gen.stopped or len(ids) < len(gen.ids))
        if expect_description:
            ep.traj.turns[-1].description = parsed.description
        ep.traj.turns.append(record)
        return record

    def _act(self, ep: _Episode, record: TurnRecord, is_last_turn: bool) -> bool:
        """Apply the turn's outcome; True when the trajectory continues."""
        traj, parsed = ep.traj, record.parsed
        if parsed.answer is not None:
            traj.answer, traj.stop_reason = parsed.answer, "answer"
            return False
        if parsed.tool_call is not None:
            record.tool = self._zoom(ep, parsed.tool_call.bbox, parsed.tool_call.source)
        if is_last_turn:
            traj.stop_reason, traj.hit_turn_cap = "max_turns", True
            return False
        if ep.response_len >= self.cfg.max_response_tokens:
            traj.stop_reason = "max_response_tokens"
            return False
        if record.tool is not None and record.tool.ok:
            text, images = protocol.observation_text(1, record.tool.note), [record.tool.observation]
        else:
            message = record.tool.error if record.tool is not None else parsed.error.message  # type: ignore[union-attr]
            text, images = protocol.observation_text(0, protocol.error_note(message)), []
        if not self._append_observation(ep, text, images, close_turn=not self._ended_turn(record)):
            traj.stop_reason = "max_response_tokens"
            return False
        if record.tool is not None and record.tool.ok:
            ep.views.append(View(region=record.tool.box_executed, shown=record.tool.observation))
        return True

    def _zoom(self, ep: _Episode, bbox: list[float], source: int) -> ToolResult:
        result = self.tool.execute(bbox, ep.traj.task.image, ep.views, source)
        if result.ok:
            shown = result.observation
            if ep.pixels_used + shown.width * shown.height > self.cfg.trajectory_max_pixels:
                result.observation, result.crop = None, None
                result.error = (f"the image budget of this episode ({self.cfg.trajectory_max_pixels} px) is used "
                                "up; answer with what you have seen")
        return result

    def _ended_turn(self, record: TurnRecord) -> bool:
        """Did the model close its turn itself (wrote ``<|im_end|>``)? Then the observation must not again."""
        return record.text.rstrip().endswith("<|im_end|>")

    def _append_observation(self, ep: _Episode, text: str, images: list, close_turn: bool) -> bool:
        """Append an observation turn whole (mask 0), or nothing if it does not fit in the token budget."""
        if not close_turn:
            text = text.removeprefix("<|im_end|>")
        ids = self.backend.encode(text, images)
        if ep.response_len + len(ids) >= self.cfg.max_response_tokens:
            return False
        ep.ids = ep.ids + ids
        ep.mask += [0] * len(ids)
        ep.logprobs += [0.0] * len(ids)
        ep.turn_of += [-1] * len(ids)
        ep.traj.images.extend(images)
        ep.pixels_used += sum(im.width * im.height for im in images)
        return True

    # -- start and finish ----------------------------------------------------------------------------------

    def _prompt(self, task: Task) -> tuple[list[int], object]:
        shown = fit_to_budget(task.image, self.cfg.image_max_pixels, factor=self.backend.image_factor,
                              min_pixels=4 * self.backend.image_factor ** 2)
        messages = protocol.prompt_messages(task.question, task.options_block(), task.image.width,
                                            task.image.height, self.cfg)
        return self.backend.encode(self.backend.render_chat(messages), [shown]), shown

    def _start(self, task: Task, sample_index: int, prompt: tuple[list[int], object]) -> _Episode:
        ids, shown = prompt
        traj = Trajectory(task=task, sample_index=sample_index, prompt_ids=torch.tensor(ids, dtype=torch.long),
                          images=[shown])
        whole = Box(0, 0, task.image.width, task.image.height)
        return _Episode(traj=traj, views=[View(region=whole, shown=shown)],
                        pixels_used=shown.width * shown.height, ids=list(ids),
                        kv=KVSlot() if self.cfg.kv_cache else None)

    def _finish(self, ep: _Episode) -> Trajectory:
        traj = ep.traj
        traj.response_ids = torch.tensor(ep.ids[len(traj.prompt_ids):], dtype=torch.long)
        traj.response_mask = torch.tensor(ep.mask, dtype=torch.long)
        traj.old_logprobs = torch.tensor(ep.logprobs, dtype=torch.float32)
        traj.token_turn = torch.tensor(ep.turn_of, dtype=torch.long)
        if traj.stop_reason is None:  # every turn errored until the cap
            traj.stop_reason, traj.hit_turn_cap = "max_turns", True
        return traj
