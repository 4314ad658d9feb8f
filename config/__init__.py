"""Settings from the environment and logging set-up; the bottom layer, importing nothing of Herald."""

from config.logs import bind_request_id, configure_logging, request_id
from config.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "bind_request_id", "configure_logging", "request_id"]
