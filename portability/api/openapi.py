"""Print the API's OpenAPI document (``make openapi`` writes it to ``docs/openapi.json``).

Built from a throwaway in-memory configuration: the document depends on the code only.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["document", "render"]


def document() -> dict[str, Any]:
    from cryptography.fernet import Fernet

    from portability.api.app import create_app
    from portability.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder),
            database_url="sqlite:///:memory:",
            encryption_key=Fernet.generate_key().decode(),
            web_session_key="openapi-document-only-" + "k" * 32,
        )
        app = create_app(settings, enqueue=lambda _ids: None)
        try:
            return app.openapi()
        finally:
            app.state.context.engine.dispose()


def render() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
