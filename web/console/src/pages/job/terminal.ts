// The xterm.js terminals of the job page: loaded on demand (their code is a chunk of its own, fetched only when a
// job's output is shown), themed like the page (and again when it switches), fitted to their box. Job output
// reaches the screen only through xterm's parser, never as markup.

import type { FitAddon } from "@xterm/addon-fit";
import type { ITheme, Terminal } from "@xterm/xterm";
import { SCROLLBACK } from "./output";

export interface LoadedTerminal {
  term: Terminal;
  fit: FitAddon;
  dispose(): void;
}

const DARK: ITheme = { background: "#0f172a", foreground: "#e2e8f0", cursor: "#e2e8f0" };
const LIGHT: ITheme = { background: "#f8fafc", foreground: "#0f172a", cursor: "#0f172a", selectionBackground: "#bfdbfe" };

export async function openTerminal(host: HTMLElement, opts: { input: boolean; label: string }): Promise<LoadedTerminal> {
  const [{ Terminal }, { FitAddon }] = await Promise.all([
    import("@xterm/xterm"),
    import("@xterm/addon-fit"),
    import("@xterm/xterm/css/xterm.css"),
  ]);
  const root = document.documentElement;
  const themed = () => (root.classList.contains("dark") ? DARK : LIGHT);
  const term = new Terminal({
    convertEol: true,
    scrollback: SCROLLBACK,
    disableStdin: !opts.input,
    cursorBlink: opts.input,
    cursorStyle: opts.input ? "block" : "underline",
    fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
    fontSize: 13,
    theme: themed(),
    screenReaderMode: false,
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(host);
  term.textarea?.setAttribute("aria-label", opts.label);
  fit.fit();
  const refit = () => fit.fit();
  window.addEventListener("resize", refit);
  const theme = new MutationObserver(() => (term.options.theme = themed())); // the page's theme switch
  theme.observe(root, { attributes: true, attributeFilter: ["class"] });
  return {
    term,
    fit,
    dispose() {
      theme.disconnect();
      window.removeEventListener("resize", refit);
      term.dispose();
    },
  };
}
