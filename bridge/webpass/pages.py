"""The guest's pages: small, mobile-first, inline CSS only, no script, everything escaped."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape
from urllib.parse import quote

from bridge.model import Lock
from bridge.webpass.model import Action, WebPass

CSS = (
    "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;background:#f4f4f5;color:#18181b}"
    "main{max-width:28rem;margin:0 auto}h1{font-size:1.4rem}"
    ".card{background:#fff;border-radius:.75rem;padding:1rem;margin:1rem 0;"
    "box-shadow:0 1px 3px #0002}.card h2{font-size:1.15rem;margin:0 0 .5rem}"
    ".state{margin:.25rem 0 .75rem}.off{color:#b91c1c}"
    "form{display:inline-block;margin:0 .5rem .5rem 0}"
    "button{font-size:1.1rem;padding:.8rem 1.4rem;border:0;border-radius:.5rem;"
    "background:#1d4ed8;color:#fff;min-width:8rem}button.lock{background:#3f3f46}"
    ".note{padding:.75rem;border-radius:.5rem;background:#dcfce7}.note.bad{background:#fee2e2}"
    "small{color:#52525b}"
)
_CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
# Only the inline stylesheet above may apply; forms post only to this origin; no framing.
CSP = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)

# The outcomes a pass page can announce after an action (the `r` query parameter).
OUTCOMES = {
    "locked": ("Locked.", False),
    "unlocked": ("Unlocked.", False),
    "unconfirmed": ("Command sent; the lock has not confirmed it.", True),
    "offline": ("The lock is offline; nothing was done.", True),
    "timeout": ("The lock did not answer in time.", True),
    "failed": ("The lock could not do that.", True),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    key: str
    lock_id: str


def document(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name=robots content="noindex,nofollow">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def message(title: str, text: str) -> str:
    return document(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def when(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M %Z")


def pass_page(
    web_pass: WebPass,
    token: str,
    locks: list[tuple[str, Lock | None]],
    zone: tzinfo,
    outcome: Outcome | None = None,
) -> str:
    parts = [f"<h1>{escape(web_pass.name or 'Web pass')}</h1>"]
    if outcome is not None and outcome.key in OUTCOMES:
        text, bad = OUTCOMES[outcome.key]
        name = next((lk.name for lid, lk in locks if lid == outcome.lock_id and lk), "")
        label = f"{name}: {text}" if name else text
        parts.append(f'<p class="note{" bad" if bad else ""}" role=status>{escape(label)}</p>')
    window = f"Valid {when(web_pass.starts_at, zone)} to {when(web_pass.ends_at, zone)}"
    if web_pass.max_uses is not None:
        left = max(0, web_pass.max_uses - web_pass.use_count)
        window += f" · {left} of {web_pass.max_uses} uses left"
    parts.append(f"<p><small>{escape(window)}</small></p>")
    for lock_id, lock in locks:
        parts.append(_lock_card(token, lock_id, lock, web_pass.allowed_actions))
    return document(web_pass.name or "Web pass", "".join(parts))


def _lock_card(token: str, lock_id: str, lock: Lock | None, actions: list[Action]) -> str:
    if lock is None:
        return f'<section class=card><h2>{escape(lock_id)}</h2><p class="state off">Unavailable</p></section>'
    state = lock.status.lock_state.value
    online = lock.status.online
    status = f"{state.capitalize()}" + ("" if online else " · offline")
    html = [
        f"<section class=card><h2>{escape(lock.name)}</h2>",
        f'<p class="state{"" if online else " off"}">{escape(status)}</p>',
    ]
    caps = lock.identity.capabilities
    able = {"unlock": caps.can_remotely_unlock, "lock": caps.can_remotely_lock}
    for action in ("unlock", "lock"):
        if action in actions and able[action]:
            target = f"/p/{quote(token, safe='')}/{quote(lock_id, safe='')}/{action}"
            html.append(
                f'<form method=post action="{escape(target)}">'
                f"<button class={action} type=submit>{action.capitalize()}</button></form>"
            )
    html.append("</section>")
    return "".join(html)
