"""The image's HEALTHCHECK: GET /healthz of the `mnemostore serve` in this container (stdlib only, no curl).

Exits 0 when the service answers 200, 1 otherwise. The port is MNEMOSTORE_SERVER_PORT (8000 by default), the
same setting `serve` listens on; MNEMOSTORE_HEALTHCHECK_URL overrides the whole URL. /healthz is liveness only: it
answers while the process serves, even when the database is down (that is /readyz, which a load balancer reads).
"""

import os
import sys
import urllib.request

url = os.environ.get("MNEMOSTORE_HEALTHCHECK_URL") or (
    f"http://127.0.0.1:{os.environ.get('MNEMOSTORE_SERVER_PORT') or '8000'}/healthz"
)
try:
    with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - a fixed local URL
        sys.exit(0 if response.status == 200 else 1)
except Exception as error:
    print(f"healthcheck: {url}: {error}", file=sys.stderr)
    sys.exit(1)
