from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.unit.sandbox.helpers import Api
from xnat_tui.sandbox.server import SandboxServer


@pytest_asyncio.fixture
async def api(sandbox: SandboxServer) -> AsyncIterator[Api]:
    client = Api(sandbox.url)
    yield client
    await client.close()
