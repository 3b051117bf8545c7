from __future__ import annotations

import uvicorn

from notify_worker.config import get_settings


def main() -> None:
    settings = get_settings()
    # uvicorn turns SIGTERM into a lifespan shutdown, which stops consuming and waits for
    # in-flight messages (see main.stop_consuming) before the connection closes.
    uvicorn.run(
        "notify_worker.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 5,
    )


if __name__ == "__main__":
    main()
