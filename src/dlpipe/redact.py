"""Secrets out of what dlpipe prints and writes: the one place URLs are masked.

A database URL's password, a token in a URL's user part or query string, a webhook's path (Slack
and its kind carry the token there) become `***` in messages, notes, profile.json, the run's
resolved pipeline.yaml, model.json and MLflow's parameters. `${VAR}` references stay as written:
they name a secret without holding it, and are how a pipeline file should carry one.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "***"
# query parameters whose value is a secret (matched as parts of the lower-cased name)
SECRET_WORDS = ("password", "passwd", "pwd", "passfile", "token", "secret", "key", "sig", "auth", "credential")
_VARIABLE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
_URL = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://"
    r"(?:(?P<user>[^@/?#:]*)(?::(?P<password>[^@]*))?@)?"
    r"(?P<host>[^/?#]*)(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?P<fragment>#.*)?$",
    re.DOTALL,
)


def shown_url(text: str, *, path: bool = False) -> str:
    """`text` with the secrets of a URL in it masked; anything that is not a URL comes back as it is.

    The password always; for http(s), a user part without a password too (a token); the value of every
    query parameter named like a secret; with `path`, the path as well (a webhook's)."""
    match = _URL.match(text) if isinstance(text, str) else None
    if match is None:
        return text
    parts = match.groupdict()
    out = f"{parts['scheme']}://"
    if parts["user"] is not None:
        user, password = parts["user"], parts["password"]
        if password is not None:
            out += f"{user}:{_masked(password)}@"
        else:
            out += f"{_masked(user) if parts['scheme'].lower() in ('http', 'https') else user}@"
    out += parts["host"]
    if path and parts["path"] not in ("", "/"):
        out += "/" + _masked(parts["path"].lstrip("/"))
    else:
        out += parts["path"]
    if parts["query"] is not None:
        out += "?" + "&".join(_parameter(pair) for pair in parts["query"].split("&"))
    return out + (parts["fragment"] or "")


def redacted(config: Any, key: str = "") -> Any:
    """A config (nested dicts and lists) with every URL in it shown as `shown_url` shows it; a
    webhook's path masked too. What a run writes to pipeline.yaml and model.json."""
    if isinstance(config, dict):
        return {k: redacted(v, str(k)) for k, v in config.items()}
    if isinstance(config, list):
        return [redacted(v, key) for v in config]
    if isinstance(config, str):
        return shown_url(config, path=key == "webhook")
    return config


def is_redacted(text: str | None) -> bool:
    """Whether a URL read back (from model.json, a run's pipeline.yaml) lost a secret to redaction."""
    return isinstance(text, str) and REDACTED in text and shown_url(text) == text


def _masked(value: str) -> str:
    return value if _VARIABLE.match(value) else REDACTED


def _parameter(pair: str) -> str:
    name, sep, value = pair.partition("=")
    return f"{name}={_masked(value)}" if sep and any(w in name.lower() for w in SECRET_WORDS) else pair
