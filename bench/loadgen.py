"""What the web benches share: `career-relay serve` as a child process, and an open-loop load
generator that runs in the bench's own process (never in the server's).

Open loop: request i is due at start + i / rate whether or not earlier ones were answered, and
its latency is counted from that due time to the last byte of the answer, so a server that
falls behind shows it (no coordinated omission). The client is a minimal HTTP/1.1 client over
asyncio streams with a pool of keep-alive connections (a new one is opened when all are busy):
a few microseconds per request, so at 500/s the generator itself stays out of the figures as
far as Python allows. Requests are prepared (signed, encoded) before the clock starts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(config: Path, port: int, log: Path, extra: list[str] | None = None
                ) -> subprocess.Popen:
    """`career-relay serve --config CONFIG` from this checkout, waited for until /healthz
    answers (bounded: 60 s)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "relay_core.commands.cli", "serve",
                             "--config", str(config), *(extra or [])], cwd=config.parent,
                            stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited {proc.returncode}: "
                             f"{log.read_text(errors='replace')[-2000:]}")
        try:
            status, _, _ = asyncio.run(_one("127.0.0.1", port, b"GET /healthz HTTP/1.1\r\n"
                                            b"Host: bench\r\n\r\n"))
            if status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("serve did not answer /healthz within 60 s")


def stop_serve(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the client -------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            headers[name] = (headers[name] + ", " if name in headers else "") + value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Reply(status, headers, body)


async def _one(host: str, port: int, request: bytes) -> tuple[int, dict, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        reply = await _read_reply(reader)
        return reply.status, reply.headers, reply.body
    finally:
        writer.close()


class Pool:
    """Keep-alive connections to one server; a request takes an idle one or opens another."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0

    async def send(self, request: bytes) -> Reply:
        loop = asyncio.get_running_loop()
        while self.idle:
            reader, writer, since = self.idle.pop()
            if loop.time() - since > 3:       # uvicorn closes a connection idle for 5 s
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, request)
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()                # closed by the server meanwhile: a new one
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return await self._exchange(reader, writer, request)

    async def _exchange(self, reader, writer, request: bytes) -> Reply:
        writer.write(request)
        reply = await _read_reply(reader)
        if reply.headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self.idle.append((reader, writer, asyncio.get_running_loop().time()))
        return reply

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


def http_request(method: str, path: str, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Result:
    latencies: dict[str, list[float]] = field(default_factory=dict)   # kind → ms
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sent: int = 0

    def add(self, kind: str, ms: float) -> None:
        self.latencies.setdefault(kind, []).append(ms)

    def every(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(pct(values, 50), 2),
            "p99_ms": round(pct(values, 99), 2), "max_ms": round(max(values, default=0), 2)}


async def open_loop(port: int, count: int, rate: float,
                    flow: Callable[[Pool, int, float, Result], Awaitable[None]]) -> Result:
    """Start `flow(pool, i, due, result)` for i in range(count) at `rate` per second."""
    pool = Pool("127.0.0.1", port)
    result = Result()
    tasks = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_guarded(flow, pool, i, due, result)))
        result.sent += 1
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - start
    pool.close()
    return result


async def _guarded(flow, pool: Pool, i: int, due: float, result: Result) -> None:
    try:
        await asyncio.wait_for(flow(pool, i, due, result), timeout=30)
    except Exception as exc:     # a timeout or a reset: counted, the run goes on
        result.errors.append(type(exc).__name__)


def fixed(requests: list[bytes], kind: str, expect: int) -> Callable:
    """A flow of one prepared request each, latency from its due time."""
    async def flow(pool: Pool, i: int, due: float, result: Result) -> None:
        reply = await pool.send(requests[i % len(requests)])
        result.add(kind, (asyncio.get_running_loop().time() - due) * 1000)
        if reply.status != expect:
            result.errors.append(f"{kind}: HTTP {reply.status}")
    return flow


def healthz(port: int, rate: float, seconds: float) -> dict[str, float]:
    """The server's own floor at the same rate: GET /healthz, open loop."""
    count = int(rate * seconds)
    result = asyncio.run(open_loop(port, count, rate, fixed(
        [http_request("GET", "/healthz")], "healthz", 200)))
    return {**summary(result.every()), "errors": len(result.errors)}


# --- a config file for `serve` ------------------------------------------------------------------
def _toml_value(value) -> str:
    import json
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def toml_dumps(data: dict, prefix: str = "") -> str:
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict) or (isinstance(value, list) and value
                                       and all(isinstance(v, dict) for v in value)):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += f"\n[{name}]\n" + toml_dumps(value, name + ".")
        else:
            for item in value:
                out += f"\n[[{name}]]\n" + toml_dumps(item, name + ".")
    return out
