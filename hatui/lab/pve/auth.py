"""Users, API tokens, tickets and CSRF tokens (proxmox-api.md §2.3).

Files in the state dir (secrets 0600, never printed):

- ``authkey.key``     HMAC key signing tickets and CSRF tokens (kept, so tickets survive a restart)
- ``root.password``   password of ``root@pam`` for ``POST /access/ticket``
- ``token.id``        the API token id, e.g. ``hatui@pve!tui`` (not secret)
- ``token.secret``    its UUID secret

ACLs: root@pam may do everything; so may the token, except root-only options and the VMs listed
in ``<state-dir>/token-no-access`` (VMIDs, re-read on every request): on those it has no privilege,
as with PVE's NoAccess role on /vms/<vmid> (cluster/resources leaves them out, their paths
answer 403 ``Permission check failed (/vms/<vmid>, <privilege>)``).
Texts follow pve-manager <= 9.1.4 (the emulated release is 8.4).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import Callable
from urllib.parse import quote, unquote

from hatui.lab.pve.cluster import ApiError

TICKET_LIFETIME = 7200
TICKET_MIN_AGE = -300
ROOT = "root@pam"

AUTHKEY_FILE = "authkey.key"
ROOT_PASSWORD_FILE = "root.password"
TOKEN_ID_FILE = "token.id"
TOKEN_SECRET_FILE = "token.secret"
TOKEN_NO_ACCESS_FILE = "token-no-access"


def write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def _read_or_create(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            os.chmod(path, 0o600)
            return value
    value = make()
    write_secret(path, value + "\n")
    return value


def unauthorized(reason: str) -> ApiError:
    return ApiError(401, reason, empty_body=True)


@dataclass(frozen=True)
class Credentials:
    userid: str  # user@realm or user@realm!token
    via_ticket: bool


class Auth:
    def __init__(self, state_dir: Path, token_id: str = "hatui@pve!tui", root_password_file: Path | None = None) -> None:
        if not re.fullmatch(r"[^\s:/!@]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+", token_id):
            raise ValueError(f"--token-id must look like user@realm!name, got {token_id!r}")
        self.key = bytes.fromhex(_read_or_create(state_dir / AUTHKEY_FILE, lambda: secrets.token_hex(32)))
        pw_path = root_password_file or state_dir / ROOT_PASSWORD_FILE
        self.root_password_file = pw_path
        self.root_password = _read_or_create(pw_path, lambda: secrets.token_urlsafe(18))
        (state_dir / TOKEN_ID_FILE).write_text(token_id + "\n")
        self.token_id = token_id
        self.token_secret_file = state_dir / TOKEN_SECRET_FILE
        self.token_secret = _read_or_create(self.token_secret_file, lambda: str(uuid.uuid4()))
        self.token_user, _, self.token_name = token_id.partition("!")
        self.users = {ROOT, self.token_user}
        self.token_no_access_file = state_dir / TOKEN_NO_ACCESS_FILE

    def no_access(self, userid: str) -> frozenset[int]:
        """VMIDs `userid` has no privilege on (the token's, from the token-no-access file)."""
        if userid != self.token_id:
            return frozenset()
        try:
            text = self.token_no_access_file.read_text()
        except FileNotFoundError:
            return frozenset()
        return frozenset(int(w) for w in re.split(r"[\s,]+", text) if w.isdigit())

    # ---- tickets ------------------------------------------------------------------------

    def _sign(self, text: str) -> str:
        return base64.b64encode(hmac.new(self.key, text.encode(), hashlib.sha256).digest()).decode()

    def make_ticket(self, userid: str, now: float | None = None) -> str:
        stamp = f"{int(now if now is not None else time.time()):08X}"
        plain = f"PVE:{quote(userid, safe='@!')}:{stamp}"
        return f"{plain}::{self._sign(plain)}"

    def verify_ticket(self, ticket: str) -> str | None:
        m = re.fullmatch(r"(PVE:([^:]+):([0-9A-F]{8}))::(.+)", ticket)
        if not m:
            return None
        if not hmac.compare_digest(self._sign(m.group(1)), m.group(4)):
            return None
        age = time.time() - int(m.group(3), 16)
        if age < TICKET_MIN_AGE or age > TICKET_LIFETIME:
            return None
        userid = unquote(m.group(2))
        return userid if userid in self.users else None

    def make_csrf(self, userid: str, now: float | None = None) -> str:
        stamp = f"{int(now if now is not None else time.time()):08X}"
        return f"{stamp}:{self._sign(f'{stamp}:{userid}').rstrip('=')}"

    def verify_csrf(self, token: str | None, userid: str) -> bool:
        if not token:
            return False
        m = re.fullmatch(r"([0-9A-F]{8}):(\S+)", token)
        if not m:
            return False
        if not hmac.compare_digest(self._sign(f"{m.group(1)}:{userid}").rstrip("="), m.group(2)):
            return False
        age = time.time() - int(m.group(1), 16)
        return TICKET_MIN_AGE <= age <= TICKET_LIFETIME

    # ---- login --------------------------------------------------------------------------

    def login(self, username: str, password: str, realm: str | None = None) -> dict[str, object] | None:
        if "@" not in username and realm:
            username = f"{username}@{realm}"
        ok = False
        if username == ROOT and hmac.compare_digest(password.encode(), self.root_password.encode()):
            ok = True
        else:  # a still-valid ticket of the same user (or of root@pam) works as the password
            owner = self.verify_ticket(password)
            ok = owner is not None and (owner == username or owner == ROOT) and username in self.users
        if not ok:
            return None
        cap_vm = {p: 1 for p in ("VM.Allocate", "VM.Audit", "VM.Config.CDROM", "VM.Config.CPU", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options", "VM.Console", "VM.Migrate", "VM.PowerMgmt", "VM.Snapshot", "VM.Snapshot.Rollback")}
        return {
            "username": username,
            "ticket": self.make_ticket(username),
            "CSRFPreventionToken": self.make_csrf(username),
            "cap": {
                "vms": cap_vm,
                "storage": {"Datastore.Allocate": 1, "Datastore.AllocateSpace": 1, "Datastore.Audit": 1},
                "access": {"User.Modify": 1, "Permissions.Modify": 1},
                "nodes": {"Sys.Audit": 1, "Sys.Console": 1, "Sys.Modify": 1, "Sys.PowerMgmt": 1, "Sys.Syslog": 1},
                "sdn": {"SDN.Audit": 1},
                "dc": {"Sys.Audit": 1, "Sys.Modify": 1},
                "mapping": {"Mapping.Audit": 1},
            },
        }

    # ---- per request --------------------------------------------------------------------

    @staticmethod
    def has_token_header(authorization: str | None) -> bool:
        return bool(authorization) and re.match(r"PVEAPIToken[= ]", authorization or "") is not None

    def authenticate(self, cookie_header: str | None, authorization: str | None, csrf: str | None, method: str) -> Credentials:
        """Credential extraction in PVE's order; raise the 401 PVE answers."""
        ticket = None
        if cookie_header:
            try:
                jar = SimpleCookie()
                jar.load(cookie_header)
                if "PVEAuthCookie" in jar:
                    ticket = unquote(jar["PVEAuthCookie"].value)
            except CookieError:
                ticket = None
        if ticket is None and authorization and authorization.startswith("PVEAuthCookie="):
            ticket = unquote(authorization[len("PVEAuthCookie=") :])
        if ticket is not None:
            userid = self.verify_ticket(ticket)
            if userid is None:
                raise unauthorized("permission denied - invalid PVE ticket")
            if method != "GET" and not self.verify_csrf(csrf, userid):
                raise unauthorized("Permission denied - invalid csrf token")
            return Credentials(userid, True)
        m = re.match(r"PVEAPIToken[= ](.+)$", authorization or "")
        if m:
            value = m.group(1).strip()
            tokenid, sep, secret = value.rpartition("=")
            if not sep or not tokenid:
                raise unauthorized("invalid token value!")
            user, bang, name = tokenid.partition("!")
            if not bang or "@" not in user or not name:
                raise unauthorized(f"'{tokenid}' is not an API token ID")
            if user not in self.users:
                raise unauthorized(f"no such user ('{user}')")
            if user != self.token_user or name != self.token_name:
                raise unauthorized(f"no such token '{name}' for user '{user}'")
            if not hmac.compare_digest(secret.encode(), self.token_secret.encode()):
                raise unauthorized("invalid token value!")
            return Credentials(tokenid, False)
        raise unauthorized("No ticket")
