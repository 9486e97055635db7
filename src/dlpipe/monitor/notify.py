"""Alerts leave the machine: a JSON POST to the configured webhook (Slack-style receivers, Alertmanager
adapters, a small service of the user's)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def send_webhook(url: str, report: dict[str, Any], timeout: float = 10.0) -> str | None:
    """POST the active alerts; None when delivered, else why not (monitoring goes on either way)."""
    body = {
        "model": report["model"],
        "version": report["version"],
        "alerts": report["alerts"],
        "rows": report["rows"],
        "text": "; ".join(f"{a['kind']}: {a['message']}" for a in report["alerts"]),
    }
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 300:
                return f"the webhook answered {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"the webhook failed: {getattr(exc, 'reason', exc)}"
    return None
