"""A tty job's pseudo-terminal: the slave is the job's stdin, stdout and stderr; the worker holds the master."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import struct
import termios

TTY_SIZE = (24, 80)  # a tty job's terminal until someone resizes it
EOT = b"\x04"  # a terminal's end-of-file character (VEOF): closing a tty job's stdin types it


class Terminal:
    """A tty job's pseudo-terminal: the job gets the slave as stdin, stdout and stderr; the worker reads the
    master into `output` and writes it through `input` (a transport on a duplicate of the master)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        _set_size(self.master, *TTY_SIZE)
        self.output = asyncio.StreamReader()
        self.input: asyncio.WriteTransport | None = None

    async def open(self, text: str | None) -> None:
        """Once the job holds the slave, drop ours (the job's exit is then the master's end), start the I/O and
        type `text`, the job's initial stdin."""
        os.close(self.slave)
        loop = asyncio.get_running_loop()
        self.input, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(os.dup(self.master), "wb", 0))
        await loop.connect_read_pipe(lambda: _TtyOutput(self.output), os.fdopen(self.master, "rb", 0))
        if text:
            self.input.write(text.encode())

    def resize(self, rows: int, cols: int) -> None:
        if self.input is not None and not self.input.is_closing():
            with contextlib.suppress(OSError):
                _set_size(self.input.get_extra_info("pipe").fileno(), rows, cols)

    def close(self) -> None:
        """Release a terminal whose job never started."""
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class _TtyOutput(asyncio.StreamReaderProtocol):
    """Reading a pty master fails with EIO once the job's last process closed the slave: that is its end."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None if isinstance(exc, OSError) and exc.errno == errno.EIO else exc)


def _set_size(fd: int, rows: int, cols: int) -> None:
    """TIOCSWINSZ: the kernel also sends SIGWINCH to the terminal's foreground process group."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
