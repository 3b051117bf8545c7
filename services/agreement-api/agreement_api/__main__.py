from __future__ import annotations

import uvicorn

from agreement_api.config import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "agreement_api.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()
