// The client's configuration and the credential it sends: a bearer token, or (where a browser cannot send headers)
// a one-time stream ticket traded for it at the gateway. The token is never put in a URL.

/** A token, or a function giving the current one (called before each request, so a refreshed token is used). */
export type TokenSource = string | (() => string | Promise<string>);

/** A WebSocket constructor: the browser's, Node 22's global one, or the `ws` package's. */
export type WebSocketConstructor = new (url: string, options?: unknown) => WebSocket;

export interface XrunnerOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8700`. */
  gatewayUrl: string;
  /** The realtime edge's base URL (SSE and attach); defaults to the gateway's. */
  realtimeUrl?: string;
  /** The artifacts service's base URL; defaults to the gateway's. */
  artifactsUrl?: string;
  token: TokenSource;
  /** How streams authenticate: an Authorization header, or a one-time ticket from `POST /v1/stream-tickets`
   * passed as `?ticket=`. Default: `header` in Node, `ticket` elsewhere. Attach always uses a ticket outside
   * Node unless a WebSocket is injected (a browser's WebSocket cannot send headers). */
  streamAuth?: "header" | "ticket";
  /** The WebSocket implementation for attach; default: the global one, else the `ws` package. */
  WebSocket?: WebSocketConstructor;
  fetch?: typeof fetch;
  /** The longest wait between a stream's reconnection attempts (ms); default 10 000. */
  maxBackoffMs?: number;
}

/** Node (or Bun/Deno's Node mode): its fetch and `ws` send headers. Anywhere else (browsers, web workers) a
 * WebSocket cannot, so streams and attach use tickets there. */
export const isNode =
  typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === "string";

export async function resolveToken(source: TokenSource): Promise<string> {
  return typeof source === "function" ? await source() : source;
}

export function trimSlash(url: string): string {
  return url.replace(/\/+$/, "");
}
