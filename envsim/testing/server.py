"""A local OpenAI-compatible chat-completions server that plays envsim's agent, user and judge.

For tests and benchmarks of everything that calls models through :mod:`envsim.llm`, with no
network and no key: point litellm at it (``model="openai/<anything>"``,
``api_base=<url>``, any ``api_key``) and it answers ``POST /v1/chat/completions`` (and
``/chat/completions``) deterministically, as the role :func:`~envsim.testing.playbook.detect_role`
reads from the request (the model name ``envsim-agent``/``envsim-user``/``envsim-judge`` forces
one; otherwise envsim's prompts give it away). As the agent it replays the scenario's expected
actions as native ``tool_calls``, so a shipped scenario played by :class:`~envsim.agents.llm.LLMAgent`
against it ends with reward 1.0; see :mod:`envsim.testing.playbook` for every role.

What it adds on top, all seeded (``--seed``):

- latency: ``--latency-ms`` per request, plus up to ``--latency-jitter-ms`` drawn uniformly;
- faults, each with a per-request probability (their sum at most 1):
  ``--fault-429`` (status 429 with a ``Retry-After`` header of ``--retry-after`` seconds),
  ``--fault-500`` (status 500), ``--fault-timeout`` (the reply comes only after
  ``--timeout-sleep`` seconds: past any sensible client timeout), ``--fault-malformed-tool-json``
  (tool-call ``arguments`` that are not valid JSON; only for requests that offer tools, and a
  text reply is turned into such a tool call), ``--fault-empty`` (empty content, no tool call);
  ``--fault-roles`` limits faults to some roles. An ``X-Envsim-Fault: <kind>`` request header
  forces one kind (``429``, ``500``, ``timeout``, ``malformed_tool_json``, ``empty``, ``none``)
  on that request, for tests that need a given fault on a given call.

The draw for a request depends on the seed, the request body and how many times that same
body was seen before (so a retry draws afresh), never on arrival order: a run is reproducible
whatever the concurrency. Replies carry ``usage`` (about four characters per token).
``GET /stats`` returns counters (requests by role, fault and status; the peak number of
requests in flight), ``GET /v1/models`` the role models, ``GET /health`` ``{"ok": true}``.
``"stream": true`` is answered with one server-sent-event chunk and ``[DONE]``.

It is one asyncio process (HTTP/1.1 keep-alive, hundreds of concurrent connections). Run it
as ``python -m envsim.testing.server --port 0 [options]``: the first line on stdout is the
bound port. In Python, :func:`start_server` runs it in a subprocess for the duration of a
``with`` block (a test server must not share a process with litellm clients, whose CPU cost
per call would distort both)::

    with start_server(latency_ms=5, fault_429=0.05) as url:
        agent = LLMAgent("openai/envsim-agent", api_base=url, api_key="local")
        trajectory, breakdown = run_episode(ScenarioEnv("RetailCancelPendingOrder"), agent)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envsim.errors import ServerError
from envsim.testing.playbook import ROLES, Playbook, Role, ScenarioIndex, detect_role

Fault = Literal["none", "429", "500", "timeout", "malformed_tool_json", "empty"]
"""What the server does wrong on purpose for one request (``none``: nothing)."""

FAULTS: tuple[Fault, ...] = get_args(Fault)
"""Every fault kind, ``none`` first."""

FAULT_HEADER = "x-envsim-fault"
"""Request header that forces one fault kind (or ``none``) on that request, whatever the rates."""

_log = logging.getLogger(__name__)
_MAX_REMEMBERED = 1_000_000
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


class ServerOptions(BaseModel):
    """How the test server behaves; every field is also a command-line option (``--latency-ms``...).

    Example:
        >>> ServerOptions(fault_429=0.1, retry_after_s=2).argv()[:6]
        ['--host', '127.0.0.1', '--port', '0', '--seed', '0']
    """

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface to bind.")
    port: int = Field(0, ge=0, le=65535, description="Port to bind (0: any free port, printed on start).")
    seed: int = Field(0, description="Seed of faults, latency jitter and the playbook's choices.")
    latency_ms: float = Field(0.0, ge=0, description="Added delay per request, in milliseconds.")
    latency_jitter_ms: float = Field(0.0, ge=0, description="Further delay drawn uniformly in [0, this].")
    fault_429: float = Field(0.0, ge=0, le=1, description="Probability of a 429 with Retry-After.")
    fault_500: float = Field(0.0, ge=0, le=1, description="Probability of a 500.")
    fault_timeout: float = Field(0.0, ge=0, le=1, description="Probability of replying only after timeout_sleep_s.")
    fault_malformed_tool_json: float = Field(
        0.0, ge=0, le=1, description="Probability of tool-call arguments that are not valid JSON (requests with tools)."
    )
    fault_empty: float = Field(0.0, ge=0, le=1, description="Probability of an empty reply (no text, no tool call).")
    retry_after_s: float = Field(1.0, ge=0, description="The Retry-After header of a 429, in seconds.")
    timeout_sleep_s: float = Field(120.0, ge=0, description="How long a timeout fault waits before replying.")
    fault_roles: list[Role] = Field(default_factory=lambda: list(ROLES), description="Roles whose requests get faults.")
    agent_error_rate: float = Field(0.0, ge=0, le=1, description="Mistake rate of the replaying agent.")
    judge_score: Literal["max", "min"] = Field("max", description="The judge's score on every criterion.")
    scenarios: list[str] = Field(default_factory=list, description="Extra scenario files the agent and user can play.")

    @model_validator(mode="after")
    def _rates_sum_to_at_most_one(self) -> ServerOptions:
        total = sum(self.rates().values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault probabilities must sum to at most 1, got {total:g}")
        return self

    def rates(self) -> dict[Fault, float]:
        """The probability of each fault kind (``none`` left out)."""
        return {
            "429": self.fault_429,
            "500": self.fault_500,
            "timeout": self.fault_timeout,
            "malformed_tool_json": self.fault_malformed_tool_json,
            "empty": self.fault_empty,
        }

    def argv(self) -> list[str]:
        """The command-line arguments that give these options."""
        out: list[str] = []
        for name, value in self.model_dump().items():
            flag = "--" + name.removesuffix("_s").replace("_", "-")
            if name == "scenarios":
                for path in value:
                    out += ["--scenario", str(path)]
            elif name == "fault_roles":
                out += [flag, ",".join(value)]
            else:
                out += [flag, str(value)]
        return out


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


def _tokens(chars: int) -> int:
    return (chars + 3) // 4


class ChatServer:
    """The request handling of the test server (use :func:`serve`, the CLI or :func:`start_server`).

    Args:
        options: How it behaves.
        playbook: What it says; default: every registered scenario plus ``options.scenarios``.
    """

    def __init__(self, options: ServerOptions, playbook: Playbook | None = None) -> None:
        self.options = options
        self.playbook = playbook or Playbook(
            ScenarioIndex(extra_files=options.scenarios),
            seed=options.seed,
            agent_error_rate=options.agent_error_rate,
            judge_score=options.judge_score,
        )
        self.fault_roles = frozenset(options.fault_roles)
        self._seen: dict[bytes, int] = {}
        self._serial = 0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_role: Counter[str] = Counter()
        self.by_fault: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()

    def stats(self) -> dict[str, Any]:
        """The counters served at ``GET /stats``."""
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "by_role": dict(self.by_role),
            "by_fault": dict(self.by_fault),
            "by_status": {str(k): v for k, v in self.by_status.items()},
        }

    # -- the seeded draw ------------------------------------------------------------------

    def draw(self, body: bytes) -> random.Random:
        """The generator of one request: seed, body digest and how often that body was seen before."""
        digest = hashlib.blake2b(body, digest_size=16).digest()
        count = self._seen.get(digest, 0)
        if len(self._seen) >= _MAX_REMEMBERED:
            self._seen.clear()
        self._seen[digest] = count + 1
        return random.Random(f"{self.options.seed}:{digest.hex()}:{count}")

    def pick_fault(self, rng: random.Random, role: Role, has_tools: bool) -> Fault:
        """Which fault (if any) this request gets."""
        u = rng.random()
        if role not in self.fault_roles:
            return "none"
        edge = 0.0
        for fault, rate in self.options.rates().items():
            edge += rate
            if u < edge:
                return "none" if fault == "malformed_tool_json" and not has_tools else fault
        return "none"

    # -- HTTP -----------------------------------------------------------------------------

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection (HTTP/1.1 with keep-alive) until the client closes it."""
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                if len(parts) != 3:
                    return
                method, target, version = parts
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await self._body(reader, headers)
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                status, extra, payload, stream = await self.respond(method, target, headers, body)
                self.by_status[status] += 1
                if stream:
                    keep_alive = False
                    extra = [*extra, ("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
                else:
                    extra = [*extra, ("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
                extra.append(("Connection", "keep-alive" if keep_alive else "close"))
                header_text = "".join(f"{k}: {v}\r\n" for k, v in extra)
                status_line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                writer.write(f"{status_line}{header_text}\r\n".encode() + payload)
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    @staticmethod
    async def _body(reader: asyncio.StreamReader, headers: Mapping[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        length = int(headers.get("content-length", "0") or 0)
        return await reader.readexactly(length) if length else b""

    async def respond(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        """Status, headers, payload and whether it is an event stream, for one HTTP request."""
        path = target.split("?", 1)[0].rstrip("/")
        if method == "GET" and path in ("/stats", "/v1/stats"):
            return 200, [], json.dumps(self.stats()).encode(), False
        if method == "GET" and path in ("/health", "/v1/health"):
            return 200, [], b'{"ok": true}', False
        if method == "GET" and path in ("/models", "/v1/models"):
            data = [{"id": f"envsim-{r}", "object": "model", "owned_by": "envsim"} for r in ROLES]
            return 200, [], json.dumps({"object": "list", "data": data}).encode(), False
        if method != "POST" or path not in ("/chat/completions", "/v1/chat/completions"):
            return 404, [], _error_body(f"no route {method} {path}", "invalid_request_error"), False
        try:
            request = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return 400, [], _error_body(f"the body is not JSON: {error}", "invalid_request_error"), False
        if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
            return 400, [], _error_body("'messages' must be a list", "invalid_request_error"), False
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._complete(request, headers, body)
        finally:
            self.in_flight -= 1

    async def _complete(
        self, request: dict[str, Any], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        messages = [m for m in request["messages"] if isinstance(m, dict)]
        tools = [t for t in request.get("tools") or [] if isinstance(t, dict)]
        model = str(request.get("model", ""))
        role = detect_role(model, messages, headers, has_tools=bool(tools))
        rng = self.draw(body)
        fault = self.pick_fault(rng, role, bool(tools))
        forced = headers.get(FAULT_HEADER, "").strip().lower()
        if forced:
            fault = forced if forced in FAULTS else fault
        self.by_role[role] += 1
        self.by_fault[fault] += 1
        delay = (self.options.latency_ms + rng.random() * self.options.latency_jitter_ms) / 1000.0
        if fault == "timeout":
            delay += self.options.timeout_sleep_s
        if delay > 0:
            await asyncio.sleep(delay)
        if fault == "429":
            retry = [("Retry-After", f"{self.options.retry_after_s:g}")]
            message = "Rate limit reached (injected by the envsim test server)."
            return 429, retry, _error_body(message, "rate_limit_error", "rate_limit_exceeded"), False
        if fault == "500":
            return 500, [], _error_body("Internal error (injected by the envsim test server).", "server_error"), False
        try:
            fmt = request.get("response_format")
            reply = self.playbook.reply(
                role, messages, tools=tools, headers=headers, response_format=fmt if isinstance(fmt, dict) else None
            )
        except Exception as error:  # a bug or an unplayable request: say so, keep serving
            _log.exception("test server: cannot reply as %s", role)
            return 500, [], _error_body(f"{type(error).__name__}: {error}", "server_error"), False
        if fault == "empty":
            reply = {"role": "assistant", "content": ""}
        elif fault == "malformed_tool_json":
            reply = self._malformed(reply, tools)
        return self._completion(request, model, reply, len(body))

    @staticmethod
    def _malformed(reply: dict[str, Any], tools: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        calls = reply.get("tool_calls") or []
        if not calls:
            fn = tools[0].get("function", tools[0]) if tools else {}
            name = str(fn.get("name", "tool")) if isinstance(fn, Mapping) else "tool"
            calls = [{"id": "call_malformed_0", "type": "function", "function": {"name": name, "arguments": "{}"}}]
        broken = []
        for call in calls:
            arguments = str(call["function"]["arguments"])
            broken.append({**call, "function": {**call["function"], "arguments": arguments[:-1] or "{"}})
        return {**reply, "tool_calls": broken}

    def _completion(
        self, request: Mapping[str, Any], model: str, reply: dict[str, Any], body_chars: int
    ) -> tuple[int, list[tuple[str, str]], bytes, bool]:
        self._serial += 1
        calls = reply.get("tool_calls") or []
        content = reply.get("content")
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        out_chars = len(content or "") + sum(len(c["function"]["name"] + c["function"]["arguments"]) for c in calls)
        prompt_tokens, completion_tokens = _tokens(body_chars), _tokens(out_chars)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        finish = "tool_calls" if calls else "stop"
        base = {"id": f"chatcmpl-envsim-{self._serial}", "created": int(time.time()), "model": model}
        base["system_fingerprint"] = "envsim-test-server"
        if request.get("stream"):
            delta: dict[str, Any] = {"role": "assistant", "content": content}
            if calls:
                delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(calls)]
            chunk = {**base, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
            end = {"index": 0, "delta": {}, "finish_reason": finish}
            last = {**base, "object": "chat.completion.chunk", "choices": [end]}
            if (request.get("stream_options") or {}).get("include_usage"):
                last["usage"] = usage
            events = [json.dumps(chunk), json.dumps(last), "[DONE]"]
            return 200, [], "".join(f"data: {e}\n\n" for e in events).encode(), True
        payload = {
            **base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": usage,
        }
        return 200, [], json.dumps(payload).encode(), False


async def serve(options: ServerOptions, *, announce: bool = True) -> None:
    """Run the server until SIGTERM/SIGINT (or cancellation); print the bound port first when ``announce``."""
    server = ChatServer(options)
    listener = await asyncio.start_server(server.handle, options.host, options.port, backlog=4096, limit=2**20)
    port = listener.sockets[0].getsockname()[1]
    if announce:
        print(port, flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with listener:
        await listener.start_serving()
        await stop.wait()


def parse_args(argv: Sequence[str] | None = None) -> ServerOptions:
    """Options from the command line (``--help`` lists them)."""
    parser = argparse.ArgumentParser(
        prog="python -m envsim.testing.server",
        description="A local OpenAI-compatible server that plays envsim's agent, user and judge, with faults.",
    )
    defaults = ServerOptions()
    for name, field in ServerOptions.model_fields.items():
        if name in ("scenarios", "fault_roles"):
            continue
        flag = "--" + name.removesuffix("_s").replace("_", "-")
        kind = type(getattr(defaults, name))
        choices = ["max", "min"] if name == "judge_score" else None
        parser.add_argument(
            flag, dest=name, type=kind, default=getattr(defaults, name), choices=choices, help=field.description
        )
    parser.add_argument("--fault-roles", default=",".join(ROLES), help="Comma-separated roles that get faults.")
    parser.add_argument("--scenario", dest="scenarios", action="append", default=[], help="An extra scenario file.")
    args = vars(parser.parse_args(argv))
    args["fault_roles"] = [r for r in args["fault_roles"].split(",") if r]
    try:
        return ServerOptions(**args)
    except ValueError as error:
        parser.error(str(error))
        raise  # unreachable: parser.error exits


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: ``python -m envsim.testing.server --port 0 --fault-429 0.1 ...``."""
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(options))


# -- in a subprocess --------------------------------------------------------------------------


def _read_port(process: subprocess.Popen[str], timeout: float) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                line = process.stdout.readline()
                if line.strip().isdigit():
                    return int(line)
                if not line:
                    break
            if process.poll() is not None:
                break
    raise ServerError("the envsim test server did not report its port")


@contextlib.contextmanager
def start_server(*, startup_timeout: float = 60.0, **options: Any) -> Iterator[str]:
    """Run the test server in its own process for a ``with`` block; yields its base URL (``.../v1``).

    ``options`` are :class:`ServerOptions` fields (``latency_ms=5``, ``fault_429=0.1``...). The URL
    is what litellm's ``api_base`` (and :class:`~envsim.agents.llm.LLMAgent`'s) takes. Raises
    :class:`ServerError`, with the server's stderr, when it does not start within ``startup_timeout`` s.
    """
    settings = ServerOptions(**options)
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "envsim.testing.server", *settings.argv()]
    with tempfile.TemporaryFile(mode="w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
        try:
            try:
                port = _read_port(process, startup_timeout)
            except ServerError as error:
                process.kill()
                process.wait()
                stderr.seek(0)
                raise ServerError(f"{error}:\n{stderr.read()[-4000:]}") from None
            host = "127.0.0.1" if settings.host in ("0.0.0.0", "", "::") else settings.host
            yield f"http://{host}:{port}/v1"
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            assert process.stdout is not None
            process.stdout.close()


def server_stats(url: str, timeout: float = 10.0) -> dict[str, Any]:
    """The counters of the server at ``url`` (the URL :func:`start_server` yields)."""
    base = url.rstrip("/").removesuffix("/v1")
    with urllib.request.urlopen(f"{base}/stats", timeout=timeout) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


if __name__ == "__main__":
    main()
