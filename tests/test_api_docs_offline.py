"""`/docs` and `/redoc` in headless Chromium with every request off 127.0.0.1 refused.

The pages' scripts and styles come from the service itself, so the docs work without internet.
Uses Debian's chromium, never a browser downloaded by Playwright. With
TILBAKE_UPDATE_SCREENSHOTS=1 the run refreshes docs/screenshots/api-docs.png."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from agreement_api.main import create_app
from shared.settings import REPO_ROOT
from tests.case_api.market.test_browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.conftest import test_settings
from tests.servers import serve

SCREENSHOT = REPO_ROOT / "docs" / "screenshots" / "api-docs.png"


async def test_api_docs_render_without_internet(tmp_path: Path) -> None:
    require_chromium()
    from playwright.async_api import Route, async_playwright, expect

    app = create_app(test_settings("agreement_api.config", "sqlite+aiosqlite:///:memory:"))
    refused: list[str] = []

    async def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            # ReDoc's "powered by" footer loads its logo from Redocly's CDN; a missing picture
            # leaves the docs intact, a missing script or style would not.
            if route.request.resource_type != "image":
                refused.append(route.request.url)
            await route.abort()

    # /docs, /redoc and /openapi.json need neither the database nor the broker.
    async with serve(app, lifespan="off") as base_url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.route("**/*", local_only)

            await page.goto(f"{base_url}/docs")
            await expect(page.get_by_text("Create an agreement").first).to_be_visible(timeout=15_000)
            shot = tmp_path / SCREENSHOT.name
            await page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000, "the screenshot is empty"
            if os.environ.get("TILBAKE_UPDATE_SCREENSHOTS") == "1":
                SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                SCREENSHOT.write_bytes(shot.read_bytes())

            await page.goto(f"{base_url}/redoc")
            operation = page.get_by_role("heading", name="Create an agreement").first
            await expect(operation).to_be_visible(timeout=15_000)
        finally:
            await browser.close()
    assert refused == [], f"the docs asked for scripts or styles off this host: {refused}"
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
