"""An optional LLM judge for free-form answers, over any OpenAI-compatible ``/chat/completions`` endpoint
(vLLM, SGLang, llama.cpp server, OpenAI). Standard library only; timeouts, retries with exponential backoff.

Multiple-choice answers never need it. DeepEyes judged with Qwen2.5-72B-Instruct; any instruction model works.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request

from pydantic import BaseModel, ConfigDict, Field

_PROMPT = """You are grading an answer to a question about an image. Decide whether the model's answer means \
the same as the reference answer (ignore wording, case and extra explanation; a hedge between several answers \
is wrong).

Question: {question}
Reference answer: {reference}
Model answer: {prediction}

Reply with exactly one line: "Judgement: 1" if the model answer is correct, "Judgement: 0" otherwise."""

_VERDICT = re.compile(r"judge?ment\s*[:=]?\s*([01])", re.IGNORECASE)
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class JudgeConfig(BaseModel):
    """Where and how to call the judge model."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(..., description="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1.")
    model: str = Field(..., description="Model name the server expects in the request.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (unset: no auth header).")
    timeout_s: float = Field(30.0, description="Seconds to wait for one HTTP response.")
    max_retries: int = Field(3, description="Retries after the first attempt on timeouts, connection errors, 429 and 5xx.")
    backoff_s: float = Field(1.0, description="First retry delay in seconds; doubles on every retry.")
    temperature: float = Field(0.0, description="Sampling temperature of the judge.")
    max_tokens: int = Field(32, description="Longest judge reply in tokens.")


class JudgeError(RuntimeError):
    """The judge could not be reached or answered something unreadable; the message says what to fix."""


class JudgeClient:
    """Asks the judge whether a free-form prediction matches the reference; stateless apart from its config."""

    def __init__(self, cfg: JudgeConfig, sleep=time.sleep) -> None:
        self.cfg = cfg
        self._sleep = sleep

    def _request(self, body: dict) -> dict:
        url = self.cfg.base_url.rstrip("/") + "/chat/completions"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        data = json.dumps(body).encode()
        last: str = ""
        for attempt in range(self.cfg.max_retries + 1):
            if attempt:
                self._sleep(self.cfg.backoff_s * 2 ** (attempt - 1))
            try:
                req = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                    return json.loads(resp.read().decode("utf-8"))
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:300]
                last = f"HTTP {exc.code} from {url}: {detail}"
                if exc.code not in _RETRY_STATUS:
                    raise JudgeError(f"judge request failed: {last} (check judge.base_url, judge.model and the "
                                     f"API key in ${self.cfg.api_key_env})") from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                last = f"{url} unreachable: {getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError as exc:
                raise JudgeError(f"judge at {url} did not return JSON ({exc}); is base_url the API root "
                                 f"(ending in /v1)?") from exc
        raise JudgeError(f"judge failed after {self.cfg.max_retries + 1} attempts: {last} (is the server "
                         f"running? raise judge.timeout_s or judge.max_retries for a slow server)")

    def judge(self, question: str, reference: str, prediction: str) -> bool:
        """True when the judge says ``prediction`` answers ``question`` like ``reference``."""
        body = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": _PROMPT.format(
                question=question, reference=reference, prediction=prediction)}],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
        }
        reply = self._request(body)
        try:
            text = reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge reply has no choices[0].message.content: {str(reply)[:200]}") from exc
        m = _VERDICT.search(text)
        if m:
            return m.group(1) == "1"
        word = text.strip().lower()
        if word.startswith(("yes", "correct", "1")):
            return True
        if word.startswith(("no", "incorrect", "wrong", "0")):
            return False
        raise JudgeError(f"cannot read a verdict from the judge's reply {text[:200]!r}; the prompt asks for "
                         f"'Judgement: 1' or 'Judgement: 0' — use an instruction-following judge model")
