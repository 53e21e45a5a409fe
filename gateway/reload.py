"""SIGHUP: take the routes file and gateway.yaml again without dropping anything.

Associations in progress keep the policy they started with; new ones get the new
allow-lists, timeouts and TLS certificate (a renewed certificate needs no restart). A
setting that only a restart can change (the port, the data directory, the engine...) is
named in a warning and keeps its value; an invalid file changes nothing, and the log
names the key and line. Every reload that changed something is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.admin.http import AdminApp, read_token
from gateway.alerts import AlertHook
from gateway.audit import CONFIGURATION, Auditor
from gateway.config import ConfigError, GatewayConfig
from gateway.intake.dicom_scp import RunningScp
from gateway.logs import use_log_format
from gateway.scheduler import GatewayScheduler

log = logging.getLogger(__name__)

# Settings a reload applies; any other change waits for a restart.
LIVE_SETTINGS = frozenset(
    {
        "allowed_calling_aes",
        "allowed_addresses",
        "dicom",
        "tls",
        "alert_command",
        "log_format",
        "shutdown_grace_s",
        "retention_days",
    }
)


@dataclass
class Reloader:
    """The parts a reload reaches; the server fills in the SCP and the admin app once
    they run. `config` is the configuration in force."""

    config: GatewayConfig
    read_config: Callable[[], GatewayConfig]
    scheduler: GatewayScheduler
    alerts: AlertHook
    audit: Auditor | None
    scp: RunningScp | None = None
    admin: AdminApp | None = None

    def reload(self) -> None:
        """Routes first (they are independent of the config), then the config."""
        if not self.scheduler.reload_routes():
            log.info("reload: routes file unchanged")
        try:
            new = self.read_config()
            token = self._token(new)
        except (ConfigError, OSError) as exc:
            log.error("reload: configuration NOT changed: %s", exc)
            return
        changed = _changed(self.config, new)
        live = sorted(changed & LIVE_SETTINGS)
        waiting = sorted(changed - LIVE_SETTINGS)
        if waiting:
            log.warning("reload: %s changed: takes effect at the next restart", ", ".join(waiting))
        if self.admin is not None and token is not None:
            self.admin.token = token
        if not live:
            log.info("reload: no setting to apply")
            return
        try:
            self._apply(new)
        except ConfigError as exc:
            log.error("reload: configuration NOT changed: %s", exc)
            return
        self.config = self.config.model_copy(update={key: getattr(new, key) for key in live})
        log.info("reload: applied %s", ", ".join(live))
        if self.audit is not None:
            self.audit.admin_action(CONFIGURATION, f"configuration reloaded: {', '.join(live)}")

    def _token(self, new: GatewayConfig) -> bytes | None:
        return read_token(new.admin.token_file) if new.admin.token_file is not None else None

    def _apply(self, new: GatewayConfig) -> None:
        if self.scp is not None:
            self.scp.apply_policy(new)
        self.alerts.command = tuple(new.alert_command)
        self.scheduler.retention_days = new.retention_days
        use_log_format(new.log_format)


def _changed(old: GatewayConfig, new: GatewayConfig) -> set[str]:
    before, after = old.model_dump(), new.model_dump()
    return {key for key in after if before.get(key) != after[key]}
