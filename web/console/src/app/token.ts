// Where the bearer token lives: this tab's sessionStorage, taken once from a `#token=` sign-in link.

const KEY = "xrunner.token";

/** Moves a token carried in the URL fragment (`#token=...`) into sessionStorage and removes it from the address bar. */
export function takeTokenFromFragment(): void {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const token = params.get("token");
  if (!token) return;
  sessionStorage.setItem(KEY, token);
  history.replaceState(history.state, "", location.pathname + location.search);
}

export function storedToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function storeToken(token: string): void {
  sessionStorage.setItem(KEY, token.trim());
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
