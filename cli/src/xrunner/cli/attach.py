"""`xrunner attach JOB_ID`: this terminal on an interactive job, over the realtime edge's WebSocket: what is typed
goes to the job's stdin, its output to the screen, until the job ends (the command exits with its code)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from urllib.parse import urlsplit

import typer
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from xrunner.cli.session import DEFAULT_DATA, DataDir, RealtimeUrl, api_errors, app, connection, gateway, realtime_url

DETACH = b"\x1d"  # Ctrl-]: leaves a tty job running


@app.command()
def attach(
    job_id: str,
    realtime: RealtimeUrl = None,
    data_dir: DataDir = DEFAULT_DATA,
) -> None:
    """Attach this terminal to an interactive job. A tty job gets raw keys (Ctrl-C included; Ctrl-] detaches);
    otherwise lines are sent as typed and Ctrl-D ends the job's stdin."""
    _, token = connection(data_dir)
    with api_errors():
        raw = sys.stdin.isatty() and gateway(data_dir).get(job_id).spec.workload.tty
    base = urlsplit(realtime_url(data_dir, realtime))
    url = f"{'wss' if base.scheme == 'https' else 'ws'}://{base.netloc}/v1/jobs/{job_id}/attach"
    raise typer.Exit(asyncio.run(_attach(url, token, raw)))


async def _attach(url: str, token: str, raw: bool) -> int:
    try:
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            with _terminal(raw):
                keys, screen = asyncio.create_task(_keys(ws, raw)), asyncio.create_task(_screen(ws))
                await asyncio.wait({keys, screen}, return_when=asyncio.FIRST_COMPLETED)
                keys.cancel()
                if screen.done():
                    return screen.result()
                screen.cancel()
                typer.echo("\r\nxrunner: detached; the job goes on", err=True)
                return 0
    except InvalidStatus as exc:
        problem = json.loads(exc.response.body or b"{}")
        detail = problem.get("detail") or problem.get("title", "")
        typer.echo(f"xrunner: {exc.response.status_code} {problem.get('code', '')}: {detail}", err=True)
    except OSError as exc:
        typer.echo(f"xrunner: cannot reach {url}: {exc}", err=True)
    return 2


async def _screen(ws: ClientConnection) -> int:
    """Print the job's output until its `end` frame; the job's exit code, or 1 if the connection ended first."""
    with contextlib.suppress(ConnectionClosed):
        async for frame in ws:
            if isinstance(frame, bytes):
                sys.stdout.buffer.write(frame)
                sys.stdout.buffer.flush()
                continue
            message = json.loads(frame)
            if message.get("type") == "end":
                typer.echo(f"\r\nxrunner: job {message['state']} exit={message['exit_code']}", err=True)
                return 0 if message["state"] == "succeeded" else int(message["exit_code"] or 1)
            typer.echo(f"\r\nxrunner: {message.get('detail', message)}", err=True)
    typer.echo(f"\r\nxrunner: disconnected ({ws.close_code} {ws.close_reason})", err=True)
    return 1


async def _keys(ws: ClientConnection, raw: bool) -> None:
    """Send stdin as it comes (and the terminal's size, now and on SIGWINCH); returns only to detach."""
    loop = asyncio.get_running_loop()
    if raw:
        loop.add_signal_handler(signal.SIGWINCH, lambda: loop.create_task(_resize(ws)))
        await _resize(ws)
    reader = asyncio.StreamReader()
    try:
        stdin = os.fdopen(os.dup(sys.stdin.fileno()), "rb", 0)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
    except ValueError:  # a regular file: all of it at once
        reader.feed_data(await asyncio.to_thread(sys.stdin.buffer.read))
        reader.feed_eof()
    while data := await reader.read(65_536):
        if raw and DETACH in data:
            return
        await ws.send(data)
    await ws.send(json.dumps({"type": "eof"}))
    await asyncio.Future()  # then the job's end ends the session


async def _resize(ws: ClientConnection) -> None:
    size = os.get_terminal_size(sys.stdin.fileno())
    await ws.send(json.dumps({"type": "resize", "rows": size.lines, "cols": size.columns}))


@contextlib.contextmanager
def _terminal(raw: bool) -> Iterator[None]:
    """Raw keys for a tty job (its own terminal echoes and edits), with output processing kept so that a newline
    still returns the carriage; the terminal is restored however the session ends."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd) if raw else None
    if saved is not None:
        tty.setraw(fd)
        mode = termios.tcgetattr(fd)
        mode[1] |= termios.OPOST
        termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        if saved is not None:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        with contextlib.suppress(OSError):
            os.set_blocking(fd, True)  # the read pipe made it non-blocking, for whoever reads this terminal next
