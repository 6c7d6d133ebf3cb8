"""Browser sessions of the dashboard: a signed, HTTP-only cookie for an API key, and CSRF tokens.

Logging in with an API key sets the cookie ``heatgrid_session`` to ``<key id>.<expiry>.<mac>``:
the API key's secret is never stored, neither in the browser nor on the server. The MAC is an
HMAC-SHA256, under the process's ``session_secret``, of the key id, the expiry and the key's
stored hash, so a cookie is bound to that key: revoking the key ends its sessions at once. The
cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends
it) and ``Secure`` over HTTPS.

Every state-changing form carries a CSRF token, an HMAC of the session cookie under a different
label; a request that holds the cookie but not the token (a stolen cookie, a forged form) is
refused. The login form itself, before any session exists, uses a double-submit token: a random
value in a cookie of its own and in the form.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

from sqlalchemy.orm import Session

from heatgrid.coordinator.auth import AccountPrincipal
from heatgrid.coordinator.db.models import Account, ApiKey

__all__ = [
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "SESSION_S",
    "csrf_token",
    "new_login_token",
    "open_session",
    "session_cookie",
    "tokens_match",
]

SESSION_COOKIE = "heatgrid_session"
"""Name of the session cookie."""

LOGIN_CSRF_COOKIE = "heatgrid_login_csrf"
"""Name of the login form's double-submit cookie."""

SESSION_S = 8 * 3600.0
"""How long a session lasts after logging in, by default [s] (``Settings.dashboard_session_s``)."""


def _mac(secret: str, label: str, message: str) -> str:
    return hmac.new(secret.encode(), f"{label}\n{message}".encode(), hashlib.sha256).hexdigest()


def session_cookie(
    secret: str, key: ApiKey, *, now_ts: float, lifetime_s: float = SESSION_S
) -> str:
    """Return the cookie value of a new session of API key ``key``, valid for ``lifetime_s``.

    Parameters
    ----------
    secret : str
        The process's signing key (``Settings.session_secret``).
    now_ts : float
        The coordinator's clock [POSIX s].
    lifetime_s : float, optional
        How long the session lasts on that clock [s].
    """
    expires_ts = math.ceil(now_ts + lifetime_s)
    message = f"{key.id}.{expires_ts}"
    return f"{message}.{_mac(secret, 'session', f'{message}.{key.secret_hash}')}"


def open_session(
    session: Session, secret: str, cookie: str | None, *, now_ts: float
) -> AccountPrincipal | None:
    """Return the account of a session cookie; None if it is missing, forged, expired or revoked.

    One or two indexed reads (the key, then its account).
    """
    parts = (cookie or "").split(".")
    if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) <= now_ts:
        return None
    key_id, expires_text, mac = parts
    key = session.get(ApiKey, key_id)
    if key is None or key.revoked_ts is not None:
        return None
    expected = _mac(secret, "session", f"{key_id}.{expires_text}.{key.secret_hash}")
    account = session.get(Account, key.account_id)
    if account is None or not hmac.compare_digest(expected, mac):
        return None
    return AccountPrincipal.of(account, key)


def csrf_token(secret: str, cookie: str) -> str:
    """Return the CSRF token that state-changing forms of the session ``cookie`` must carry."""
    return _mac(secret, "csrf", cookie)


def new_login_token() -> str:
    """Return a random token for the login form's double submit."""
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, presented: str | None) -> bool:
    """Compare two tokens in constant time; a missing one never matches."""
    if not expected or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
