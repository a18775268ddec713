"""vLLM's OpenAI-compatible server on 127.0.0.1, started and stopped by pid: shared by
benches/bench_vllm.py and tests/vllm/test_server.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Variables through which the tasc-rs proposer finds its drafter: a server gets only the ones
#: its caller passes, never the caller's own.
TASC_ENV = ("TASC_VLLM_CONFIG", "TASC_VLLM_DRAFTER")


class ServerError(RuntimeError):
    """The server exited or did not answer /health in time (the message has its log's tail)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def command(model: str, port: int, *args: str) -> list[str]:
    """The server's command line on 127.0.0.1:``port``; ``args`` are further vLLM options."""
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
        "--host", "127.0.0.1", "--port", str(port), *args,
    ]  # fmt: skip


def launch(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Starts ``cmd`` in its own process group, its output into ``log``."""
    environ = {k: v for k, v in os.environ.items() if k not in TASC_ENV} | env
    with log.open("wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=environ, start_new_session=True
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, SIGKILL after 60 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def serving(
    model: str, args: list[str], env: dict[str, str], log: Path, timeout: float
) -> Iterator[str]:
    """Starts a server, waits until /health answers, yields its base URL, stops it by pid.

    Raises:
        ServerError: the server exited, or was not ready after ``timeout`` seconds.
    """
    port = free_port()
    proc = launch(command(model, port, *args), env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise ServerError(f"the server exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"the server was not ready after {timeout:.0f} s; see {log}")
            time.sleep(1.0)
        yield url
    finally:
        stop(proc)
