"""The images' HEALTHCHECK: GET the URL given, or /healthz on this service's own port; exit 0 on a 2xx answer."""

import os
import sys
import urllib.request


def target() -> str:
    """The URL to check: argv[1], else http://127.0.0.1:<XR_<SERVICE>_HTTP_PORT or XR_HTTP_PORT>/healthz."""
    if len(sys.argv) > 1:
        return sys.argv[1]
    service = os.environ.get("XR_IMAGE_SERVICE", "").upper()
    port = os.environ.get(f"XR_{service}_HTTP_PORT") or os.environ["XR_HTTP_PORT"]
    return f"http://127.0.0.1:{port}/healthz"


if __name__ == "__main__":
    try:
        with urllib.request.urlopen(target(), timeout=2) as response:
            sys.exit(0 if 200 <= response.status < 300 else 1)
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        sys.exit(1)
