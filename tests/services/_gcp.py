"""Offline Google credentials for emulator runs."""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

PROJECT_ID = "test-project"


@functools.cache
def fake_adc_file() -> str:
    """A GOOGLE_APPLICATION_CREDENTIALS file holding a never-expiring dummy token.

    Beam resolves Application Default Credentials before it builds a GCS client
    and retries for ~25 s when there are none; this file resolves at once and
    never needs a token refresh, so nothing ever leaves the machine.
    """
    info = {
        "type": "authorized_user",
        "client_id": "emulator",
        "client_secret": "emulator",
        "refresh_token": "emulator",
        "token": "emulator-token",
        "expiry": "2999-01-01T00:00:00Z",
        "quota_project_id": PROJECT_ID,
    }
    path = Path(tempfile.gettempdir()) / "test-services-fake-adc.json"
    path.write_text(json.dumps(info))
    return str(path)
