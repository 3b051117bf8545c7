"""Print the CA certificates of the host's bundle that Debian's ca-certificates does not ship.

A TLS-intercepting proxy's CA is typically added to the host's bundle only; an image build that
installs from PyPI through that proxy must trust it too (deploy/Dockerfile's EXTRA_CA_CERTS).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
SHIPPED = Path("/usr/share/ca-certificates")
PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _body(pem: str) -> str:
    return "".join(pem.split())


def main() -> int:
    if not BUNDLE.exists():
        return 0
    shipped = {_body(m) for path in SHIPPED.rglob("*.crt") for m in PEM.findall(path.read_text())}
    extra = [m for m in PEM.findall(BUNDLE.read_text()) if _body(m) not in shipped]
    sys.stdout.write("\n".join(extra) + ("\n" if extra else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
