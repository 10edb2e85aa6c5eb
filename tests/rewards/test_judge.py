"""The judge client against a tiny stub server on 127.0.0.1 (never a real endpoint)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from PIL import Image

from mapo.data.task import Task
from mapo.rewards import JudgeClient, JudgeConfig, JudgeError, RewardConfig, score_answer


def serve(replies):
    """Serve the scripted (status, body) replies in order; returns (url, list of received requests, stop)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            status, body = replies[min(len(received), len(replies)) - 1]
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", received, server.shutdown


def chat(text):
    return {"choices": [{"message": {"content": text}}]}


def test_judge_verdicts_and_request_shape():
    url, received, stop = serve([(200, chat("Judgement: 1")), (200, chat("Judgement: 0"))])
    try:
        client = JudgeClient(JudgeConfig(base_url=url, model="judge-7b"))
        assert client.judge("What?", "a cat", "cat") is True
        assert client.judge("What?", "a cat", "dog") is False
    finally:
        stop()
    path, body = received[0]
    assert path == "/v1/chat/completions" and body["model"] == "judge-7b"
    assert "a cat" in body["messages"][0]["content"]


def test_retries_with_backoff_then_succeeds():
    url, received, stop = serve([(503, "busy"), (429, "slow down"), (200, chat("Judgement: 1"))])
    sleeps = []
    try:
        client = JudgeClient(JudgeConfig(base_url=url, model="m", backoff_s=0.5), sleep=sleeps.append)
        assert client.judge("q", "r", "p")
    finally:
        stop()
    assert sleeps == [0.5, 1.0] and len(received) == 3


def test_gives_up_with_a_clear_error():
    url, received, stop = serve([(500, "boom")])
    try:
        client = JudgeClient(JudgeConfig(base_url=url, model="m", max_retries=2), sleep=lambda s: None)
        with pytest.raises(JudgeError, match="after 3 attempts"):
            client.judge("q", "r", "p")
    finally:
        stop()
    assert len(received) == 3


def test_client_error_is_not_retried():
    url, received, stop = serve([(404, "no such model")])
    try:
        with pytest.raises(JudgeError, match="HTTP 404.*judge.model"):
            JudgeClient(JudgeConfig(base_url=url, model="m"), sleep=lambda s: None).judge("q", "r", "p")
    finally:
        stop()
    assert len(received) == 1


def test_unreachable_server_times_out_clearly():
    client = JudgeClient(JudgeConfig(base_url="http://127.0.0.1:9/v1", model="m", max_retries=1, timeout_s=1),
                         sleep=lambda s: None)
    with pytest.raises(JudgeError, match="unreachable"):
        client.judge("q", "r", "p")


def test_unreadable_verdict():
    url, _, stop = serve([(200, chat("I am not sure"))])
    try:
        with pytest.raises(JudgeError, match="cannot read a verdict"):
            JudgeClient(JudgeConfig(base_url=url, model="m")).judge("q", "r", "p")
    finally:
        stop()


def test_exact_then_judge_falls_back_to_the_judge():
    url, received, stop = serve([(200, chat("Judgement: 1"))])
    task = Task(id="f", image=Image.new("RGB", (4, 4)), question="Where?", answer="Paris")
    cfg = RewardConfig(free_form="exact_then_judge", judge=JudgeConfig(base_url=url, model="m"))
    try:
        assert score_answer("paris", task, cfg)["method"] == "exact"  # no call needed
        assert score_answer("the capital of France", task, cfg) == {"correct": True, "choice": None,
                                                                    "method": "judge"}
    finally:
        stop()
    assert len(received) == 1
