// What the job page writes to its terminals, decided without a DOM: the live log's output gathered between frames
// with the oldest dropped past a cap (a 1 GB log must not freeze the tab), and the line discipline a terminal
// needs on an interactive job without a tty (nothing echoes what is typed, so the page echoes and sends lines).

/** Characters written to the terminal per animation frame at most; beyond it the oldest waiting text is dropped. */
export const FRAME_CAP = 512 * 1024;

/** Lines the live log keeps above the screen (xterm's scrollback); the full log is the `logs.txt` artifact. */
export const SCROLLBACK = 10_000;

export class OutputBuffer {
  private pieces: string[] = [];
  private size = 0;
  private dropped = 0;

  constructor(private readonly cap: number = FRAME_CAP) {}

  push(text: string): void {
    this.pieces.push(text);
    this.size += text.length;
    while (this.size > this.cap && this.pieces.length > 1) {
      const head = this.pieces.shift() ?? "";
      this.size -= head.length;
      this.dropped += head.length;
    }
    const only = this.pieces[0];
    if (this.pieces.length === 1 && only !== undefined && only.length > this.cap) {
      this.dropped += only.length - this.cap;
      this.pieces = [only.slice(only.length - this.cap)];
      this.size = this.cap;
    }
  }

  get pending(): boolean {
    return this.size > 0 || this.dropped > 0;
  }

  /** Everything waiting, preceded by a notice when some was dropped; empties the buffer. */
  take(): string {
    const notice = this.dropped > 0 ? skipped(this.dropped) : "";
    const text = notice + this.pieces.join("");
    this.pieces = [];
    this.size = 0;
    this.dropped = 0;
    return text;
  }
}

function skipped(chars: number): string {
  const kib = Math.max(1, Math.round(chars / 1024));
  return `\r\n\x1b[33m[… ${kib} KiB of output skipped to keep up; the full log is the logs.txt artifact]\x1b[0m\r\n`;
}

export interface Keyed {
  /** What the terminal shows at once (the echo). */
  echo: string;
  /** What goes to the job's stdin now. */
  send: string;
}

/** A cooked-mode line editor: echoes printable keys, handles backspace and ^U, sends a line on Enter and ^D as eof. */
export class LineDiscipline {
  private line = "";

  feed(data: string): Keyed & { eof: boolean } {
    let echo = "";
    let send = "";
    let eof = false;
    for (const char of data) {
      if (char === "\r" || char === "\n") {
        send += `${this.line}\n`;
        echo += "\r\n";
        this.line = "";
      } else if (char === "\x7f" || char === "\b") {
        if (this.line.length > 0) {
          this.line = [...this.line].slice(0, -1).join("");
          echo += "\b \b";
        }
      } else if (char === "\x15") {
        echo += "\b \b".repeat([...this.line].length);
        this.line = "";
      } else if (char === "\x04") {
        if (this.line === "") eof = true;
        else {
          send += this.line;
          this.line = "";
        }
      } else if (char === "\x03") {
        echo += "^C\r\n";
        this.line = "";
      } else if (char >= " " && char !== "\x7f") {
        this.line += char;
        echo += char;
      }
    }
    return { echo, send, eof };
  }
}
