"""Generate tickets.csv: support tickets whose urgency depends on the message, the plan and the time.

A made-up but structured problem, so the example shows what mixing inputs buys: the message says
what broke, the plan says who is affected, the time says whether anyone is around. Neither the
text alone nor the table alone decides it. Deterministic (seed 7); run it to regenerate the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SEVERE = [
    "the whole site is down",
    "production is down",
    "we cannot log in at all",
    "payments are failing",
    "every request returns an error",
    "data seems to be lost",
    "the API stopped responding",
]
MILD = [
    "a button looks misaligned",
    "how do I export a report",
    "the docs have a typo",
    "can you add a dark theme",
    "the invoice address is wrong",
    "a chart loads slowly",
    "where do I change my password",
]
OPENERS = ["Hi team,", "Hello,", "Urgent:", "Quick question:", "Good morning,", "Hey support,", ""]
CLOSERS = ["Thanks.", "Please help.", "Any idea?", "Cheers,", "Regards.", "Thank you!", ""]
FILLER = [
    "since this morning",
    "for a few users",
    "after the last update",
    "on the mobile app",
    "in Firefox",
    "for our team",
    "again",
    "since yesterday",
]


def make(rows: int = 2400, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    severe = rng.random(rows) < 0.4
    plan = rng.choice(["free", "pro", "enterprise"], rows, p=[0.5, 0.35, 0.15])
    opened = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24 * 60, rows), unit="min")
    messages = []
    for is_severe in severe:
        issue = rng.choice(SEVERE if is_severe else MILD)
        parts = [rng.choice(OPENERS), f"{issue} {rng.choice(FILLER)}.".capitalize(), rng.choice(CLOSERS)]
        messages.append(" ".join(p for p in parts if p))
    office = (opened.day_of_week < 5) & (opened.hour >= 8) & (opened.hour < 18)
    # severe problems are urgent for paying customers, and for anyone outside office hours
    # (no one will see them until morning); enterprise customers are always urgent
    urgent = (severe & ((plan != "free") | ~office)) | (plan == "enterprise")
    flip = rng.random(rows) < 0.03  # labels are never perfect
    urgent = urgent ^ flip
    return pd.DataFrame(
        {
            "ticket": np.arange(100_000, 100_000 + rows),
            "opened_at": opened.strftime("%Y-%m-%d %H:%M"),
            "plan": plan,
            "account_age_days": rng.integers(1, 2000, rows),
            "message": messages,
            "urgent": np.where(urgent, "yes", "no"),
        }
    )


if __name__ == "__main__":
    out = Path(__file__).with_name("tickets.csv")
    make().to_csv(out, index=False)
    print(f"wrote {out}")
