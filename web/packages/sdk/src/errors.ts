// Errors the SDK throws: every problem+json (RFC 9457) answer as a ProblemError with its stable `code`.

import type { Problem } from "./types.js";

/** A non-2xx answer of an xrunner API. `field` names the bad input's path (400); `retryAfterS` says when to retry
 * (429, 503: from the problem, else the Retry-After header). */
export class ProblemError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  readonly retryAfterS: number | null;
  readonly detail: string | null;
  readonly problem: Problem;

  constructor(problem: Problem, retryAfterHeader: string | null = null) {
    super(`${problem.status} ${problem.code}: ${problem.title}${problem.detail ? ` (${problem.detail})` : ""}`);
    this.name = "ProblemError";
    this.problem = problem;
    this.status = problem.status;
    this.code = problem.code;
    this.field = problem.field ?? null;
    this.detail = problem.detail ?? null;
    this.retryAfterS = problem.retry_after_s ?? parseRetryAfter(retryAfterHeader);
  }

  /** The error for `response`, whose body (`body`) may be a problem, other JSON, or text. */
  static from(response: Response, body: unknown): ProblemError {
    const problem = isProblem(body)
      ? body
      : {
          type: "about:blank",
          title: response.statusText || `HTTP ${response.status}`,
          status: response.status,
          code: `http_${response.status}`,
          detail: typeof body === "string" && body ? body.slice(0, 500) : null,
        };
    return new ProblemError(problem, response.headers.get("retry-after"));
  }

  /** Read `response`'s body and turn it into the error. */
  static async read(response: Response): Promise<ProblemError> {
    const text = await response.text().catch(() => "");
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text as the detail
    }
    return ProblemError.from(response, body);
  }
}

function isProblem(body: unknown): body is Problem {
  if (typeof body !== "object" || body === null) return false;
  const b = body as Record<string, unknown>;
  return typeof b["code"] === "string" && typeof b["status"] === "number" && typeof b["title"] === "string";
}

function parseRetryAfter(header: string | null): number | null {
  if (!header) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return seconds;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, (at - Date.now()) / 1000);
}
