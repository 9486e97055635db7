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
    # the URL often holds a secret: no message here repeats it (a redacted one no longer holds it)
    from dlpipe.errors import ConfigError

    try:
        from dlpipe.spec.monitoring import expand

        target = expand(url, "monitoring.webhook") or ""
        if not target.startswith(("http://", "https://")):
            return "the webhook is not an http(s) URL"
        request = urllib.request.Request(
            target, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 300:
                return f"the webhook answered {response.status}"
    except ConfigError as exc:  # redacted when saved, or a ${VAR} not set: says which and how to pass it
        return exc.render()
    except urllib.error.HTTPError as exc:
        return f"the webhook answered {exc.code}"
    except urllib.error.URLError as exc:
        return f"the webhook failed: {type(exc.reason).__name__ if not isinstance(exc.reason, str) else 'unreachable'}"
    except Exception as exc:  # a malformed URL, a timeout: monitoring goes on either way
        return f"the webhook failed: {type(exc).__name__}"
    return None
