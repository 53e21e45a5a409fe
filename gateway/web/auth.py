"""Local users of the over-read application: a YAML file of user IDs, names, roles and
argon2id password hashes, written by `ecg-gateway web user add` and read at start.

    users:
      - user_id: jdoe
        name: Doe^Jane          # DICOM PN: Family^Given^Middle, as it goes to the EHR
        role: physician         # reader | physician | admin
        password_hash: $argon2id$v=19$m=65536,t=3,p=4$...

argon2-cffi's PasswordHasher does the hashing with its RFC 9106 defaults; a hash made
with older parameters is still accepted and reported as needing a rehash.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import Field, field_validator

from gateway.config import ConfigError, load_settings
from gateway.durable import write_atomic
from model.settings import StrictSettings

log = logging.getLogger(__name__)

Role = Literal["reader", "physician", "admin"]
ROLES: tuple[Role, ...] = ("reader", "physician", "admin")
MIN_PASSWORD_CHARS = 10
_USER_ID = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"

_hasher = PasswordHasher()


class UserEntry(StrictSettings):
    user_id: str = Field(pattern=_USER_ID)
    name: str = Field(min_length=1, max_length=200, description="DICOM PN: Family^Given")
    role: Role
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _argon2(cls, value: str) -> str:
        if not value.startswith("$argon2"):
            raise ValueError("must be an argon2 hash (`ecg-gateway web user add` writes one)")
        return value


class UsersFile(StrictSettings):
    users: list[UserEntry] = Field(default_factory=list)

    @field_validator("users")
    @classmethod
    def _unique(cls, users: list[UserEntry]) -> list[UserEntry]:
        seen: set[str] = set()
        for user in users:
            if user.user_id.lower() in seen:
                raise ValueError(f"user {user.user_id!r} is listed twice")
            seen.add(user.user_id.lower())
        return users


@dataclass(frozen=True)
class User:
    """A signed-in user as the pages see them (no hash). Whether their role may confirm
    is the over-read service's decision (gateway.overread.CONFIRM_ROLES)."""

    user_id: str
    name: str
    role: Role

    @property
    def display_name(self) -> str:
        """'Jane Doe' from 'Doe^Jane'."""
        family, _, rest = self.name.partition("^")
        given = " ".join(part for part in rest.split("^") if part)
        return f"{given} {family}".strip() or self.user_id


def load_users(path: Path) -> UsersFile:
    """The users file; ConfigError naming the line and field of what is wrong."""
    return load_settings(path, UsersFile)


class Directory:
    """The users, looked up by ID (case-insensitive), passwords checked in constant time.
    Made `from_file`, it reads the file again when it changes (a user added or a password
    set by `ecg-gateway web user add` counts at the next sign-in, no restart); a changed
    file that cannot be read keeps the users before it, with an error in the log."""

    def __init__(self, users: UsersFile, path: Path | None = None) -> None:
        self._entries = {entry.user_id.lower(): entry for entry in users.users}
        self._path = path
        self._stamp = _stamp(path) if path is not None else None
        # Unknown user IDs are checked against this, so they take as long as known ones.
        self._decoy = _hasher.hash(os.urandom(16).hex())

    @classmethod
    def from_file(cls, path: Path) -> Directory:
        return cls(load_users(path), path)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, user_id: str, password: str) -> User | None:
        """The user when the password is theirs; None otherwise (unknown or wrong alike)."""
        self._reload_if_changed()
        entry = self._entries.get(user_id.strip().lower())
        try:
            _hasher.verify(entry.password_hash if entry else self._decoy, password)
        except (VerificationError, InvalidHashError):
            return None
        if entry is None:
            return None
        return User(entry.user_id, entry.name, entry.role)

    def _reload_if_changed(self) -> None:
        if self._path is None or _stamp(self._path) == self._stamp:
            return
        self._stamp = _stamp(self._path)
        try:
            users = load_users(self._path)
        except ConfigError as exc:
            log.error("web users file not reloaded, the previous users stay: %s", exc)
            return
        self._entries = {entry.user_id.lower(): entry for entry in users.users}
        log.info("web users file reloaded: %d users", len(self._entries))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def add_user(path: Path, user_id: str, name: str, role: Role, password: str) -> bool:
    """Add the user to the file, or replace their entry (a new password, name or role);
    True when they were new. The file is created, readable by its owner only."""
    if not re.match(_USER_ID, user_id):
        raise ValueError(f"user ID {user_id!r}: letters, digits and _.@- only, 1-64 characters")
    existing = load_users(path).users if path.exists() else []
    entry = UserEntry(user_id=user_id, name=name, role=role, password_hash=hash_password(password))
    kept = [user for user in existing if user.user_id.lower() != user_id.lower()]
    document = {"users": [user.model_dump() for user in [*kept, entry]]}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(document, sort_keys=False).encode())
    path.chmod(0o600)
    return len(kept) == len(existing)
