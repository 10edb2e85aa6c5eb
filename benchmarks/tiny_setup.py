"""The tiny, offline setup the model-level benchmarks share: a few world tasks, a tokenizer trained on their
text, a random tiny Qwen-VL checkpoint, and an untrained embedded verifier.

Speed does not depend on what the weights have learnt, so nothing here is trained beyond the tokenizer: the
figures are those of a trained model of the same architecture and vocabulary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from mapo.data.task import Task


@dataclass
class TinySetup:
    """What ``build`` made: tasks, the policy checkpoint directory and its family."""

    tasks: list[Task]
    """World tasks (train split), each with a 1024x1024 canvas."""
    model_dir: Path
    """A Hugging Face checkpoint directory that ``mapo.models.hf_qwen.load_policy`` loads."""
    family: str
    """``qwen2_vl`` | ``qwen2_5_vl`` | ``qwen3_vl``."""


def world_tasks(n: int, seed: int = 0) -> list[Task]:
    """The first ``n`` train tasks of the default world (seeded, deterministic)."""
    from mapo.data.world.config import WorldConfig
    from mapo.data.world.generate import generate_tasks

    return generate_tasks(WorldConfig(seed=seed), "train", n)


def tokenizer_texts(tasks: list[Task]) -> list[str]:
    """What the model reads and writes: the protocol's system prompt, the questions, expert turns."""
    from mapo.agent.protocol import ProtocolConfig, system_prompt, user_text
    from mapo.data.expert import expert_turns

    cfg = ProtocolConfig()
    texts = [system_prompt(cfg)]
    rng = random.Random(0)
    for task in tasks:
        texts.append(user_text(task.question, task.options_block(), task.image.width, task.image.height, cfg))
        texts.extend(expert_turns(task, rng))
    return texts


def build(root: str | Path, n_tasks: int = 16, family: str = "qwen2_vl", seed: int = 0) -> TinySetup:
    """World tasks + tokenizer + tiny random checkpoint under ``root`` (a few seconds on 2 cores)."""
    from mapo.models.zoo import build_tiny_model, train_tokenizer

    tasks = world_tasks(n_tasks, seed)
    tokenizer = train_tokenizer(tokenizer_texts(tasks), vocab_size=1024)
    model_dir = build_tiny_model(Path(root) / f"policy-{family}", tokenizer, family=family, seed=seed)
    return TinySetup(tasks=tasks, model_dir=model_dir, family=family)


def untrained_verifier():
    """The embedded LiT verifier (frozen MiniLM text tower + vision tower) with a random vision tower: the same
    cost per pair as a trained one."""
    from mapo.verifier import VerifierConfig
    from mapo.verifier.embedded import EmbeddedVerifier
    from mapo.verifier.lit import LiTConfig, LiTModel

    return EmbeddedVerifier(VerifierConfig(backend="embedded"), model=LiTModel(LiTConfig()))


def expert_paced(backend, tasks: list[Task], seed: int = 0):
    """Wrap a model backend so that a *random* tiny model behaves like a trained one in a multi-turn step.

    The model really samples (so generation costs what it costs), as many tokens as the expert's turn has, but
    the text kept is the expert's turn (a valid zoom with a label, then an answer): trajectories then have
    crops, verifier calls and several turns, as a trained policy's would. Log-probs are the sampled tokens';
    they do not belong to the kept tokens, which is harmless for timing (PPO clips the ratio).
    """
    import torch

    from mapo.agent.backend import Generation, PolicyBackend
    from mapo.data.expert import expert_turns
    from mapo.models.scripted import ScriptedBackend

    def _fit(lp: torch.Tensor, n: int) -> torch.Tensor:
        return lp[:n] if len(lp) >= n else torch.cat([lp, torch.zeros(n - len(lp))])

    rng = random.Random(seed)
    script = {task.id: expert_turns(task, rng) for task in tasks}

    class ExpertPacedBackend(PolicyBackend):
        def __init__(self) -> None:
            self.inner = backend
            self.model, self.tokenizer = backend.model, backend.tokenizer
            self.image_processor = getattr(backend, "image_processor", None)
            self.patch_size, self.merge_size = backend.patch_size, backend.merge_size
            self.scripted = ScriptedBackend(like=backend, script=script)

        def generate(self, contexts, max_new_tokens, stop, temperature=1.0):
            kept = self.scripted.generate(contexts, max_new_tokens, stop, temperature)
            # the model samples as many tokens as the kept text has (a random model seldom writes a stop
            # sequence earlier), under the real stop sequences so that their check costs what it costs
            sampled = self.inner.generate(contexts, [max(1, len(k.ids)) for k in kept], stop, temperature)
            return [Generation(ids=k.ids, logprobs=_fit(s.logprobs, len(k.ids)), text=k.text, stopped=k.stopped)
                    for k, s in zip(kept, sampled)]

        def collate(self, trajectories):
            return self.inner.collate(trajectories)

        def sequence_logprobs(self, batch, temperature: float = 1.0):
            return self.inner.sequence_logprobs(batch, temperature)

    return ExpertPacedBackend()
