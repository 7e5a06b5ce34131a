"""Settings with A1111's option keys, validated, persisted atomically in config.json.

Unknown keys (from extensions or newer versions) are kept as they are. A config.json that cannot be read
is reported and copied aside (config.json.broken-<time>), never silently discarded.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sdweb.config.exposure import exposure_advice
from sdweb.config.launch_options import LaunchOptions
from sdweb.config.options import OPTIONS_BY_KEY, OptionInfo, defaults
from sdweb.core.atomic import atomic_write_text
from sdweb.core.errors import SettingLockedError, SettingsError, WriteFailedError, write_failure_message

log = logging.getLogger(__name__)


def validate_value(option: OptionInfo, value: Any) -> Any:
    """Return the value in its stored type, or raise SettingsError naming the key."""
    kind = option.kind
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise SettingsError(f"Setting '{option.key}' must be true or false, got {value!r}.")
    if kind in ("int", "float"):
        return _validate_number(option, value)
    if kind == "choice":
        if value in option.choices:
            return value
        raise SettingsError(f"Setting '{option.key}' must be one of {', '.join(map(str, option.choices))}; "
                            f"got {value!r}.")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise SettingsError(f"Setting '{option.key}' must be text, got {value!r}.")
    if kind == "list":
        if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
            return list(value)
        raise SettingsError(f"Setting '{option.key}' must be a list of text values, got {value!r}.")
    if kind == "dict":
        if isinstance(value, dict):
            return dict(value)
        raise SettingsError(f"Setting '{option.key}' must be an object, got {value!r}.")
    raise SettingsError(f"Setting '{option.key}' has an unknown kind {kind!r}.")


def _validate_number(option: OptionInfo, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"Setting '{option.key}' must be a number, got {value!r}.")
    if option.kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise SettingsError(f"Setting '{option.key}' must be a whole number, got {value!r}.")
        value = int(value)
    else:
        value = float(value)
    if value != value:  # NaN
        raise SettingsError(f"Setting '{option.key}' must be a number, got NaN.")
    if option.minimum is not None and value < option.minimum:
        raise SettingsError(f"Setting '{option.key}' must be at least {option.minimum}, got {value}.")
    if option.maximum is not None and value > option.maximum:
        raise SettingsError(f"Setting '{option.key}' must be at most {option.maximum}, got {value}.")
    return value


class Settings:
    """The user's settings: defaults, overlaid by config.json, changed only through validated updates.

    `exposure` (sdweb.config.exposure.untrusted_exposure): the flags that make the server reachable from other
    machines; then settings that run code or choose paths (OptionInfo.exposure_locked) cannot be changed.
    `set_value_check` adds a check that needs more than the settings table (a checkpoint or VAE name that must
    exist); it may also return the canonical value to store."""

    def __init__(self, path: Path, values: Mapping[str, Any] | None = None,
                 frozen_keys: Iterable[str] = (), exposure: str | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._values: dict[str, Any] = defaults()
        self._frozen = frozenset(frozen_keys)
        self._exposure = exposure
        self._extra: dict[str, OptionInfo] = {}  # settings added by extensions
        self._checks: dict[str, Callable[[Any], Any]] = {}
        if values:
            self._values.update(values)

    def option(self, key: str) -> OptionInfo | None:
        return OPTIONS_BY_KEY.get(key) or self._extra.get(key)

    def extra_options(self) -> list[OptionInfo]:
        return list(self._extra.values())

    def register_options(self, options: Iterable[OptionInfo]) -> list[str]:
        """Add extensions' settings: the default where nothing is stored, else the stored value if valid.
        Returns warnings (a key that clashes with a built-in one is refused)."""
        warnings = []
        with self._lock:
            for option in options:
                if option.key in OPTIONS_BY_KEY:
                    warnings.append(f"Setting '{option.key}' is built in; an extension cannot redefine it.")
                    continue
                self._extra[option.key] = option
                if option.key not in self._values:
                    self._values[option.key] = option.default
                    continue
                try:
                    self._values[option.key] = validate_value(option, self._values[option.key])
                except SettingsError as error:
                    warnings.append(f"{error.message} Using the default {option.default!r}.")
                    self._values[option.key] = option.default
        return warnings

    @classmethod
    def load(cls, path: Path, frozen_keys: Iterable[str] = (), exposure: str | None = None) -> Settings:
        """Read config.json; invalid values fall back to defaults with a warning naming the key."""
        path = Path(path)
        settings = cls(path, frozen_keys=frozen_keys, exposure=exposure)
        stored = _read_config_file(path)
        for key, value in stored.items():
            option = OPTIONS_BY_KEY.get(key)
            if option is None:
                settings._values[key] = value  # unknown key: keep it for whoever owns it
                continue
            try:
                settings._values[key] = validate_value(option, value)
            except SettingsError as error:
                log.warning("%s: %s Using the default %r.", path, error, option.default)
        return settings

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._values.get(key, default)

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            return self._values[key]

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._values))

    def set_value_check(self, key: str, check: Callable[[Any], Any]) -> None:
        """check(value) -> the value to store, or raises a UserError naming what is wrong."""
        self._checks[key] = check

    def lock_reason(self, key: str) -> str | None:
        """Why `key` cannot be changed on this server (exposed, see the class), or None."""
        option = self.option(key)
        if self._exposure is None or option is None or not option.exposure_locked:
            return None
        what = "decides which extensions run" if option.runs_code else "chooses where files are written"
        return (f"Setting '{key}' {what}, so it cannot be changed while the server is reachable from other "
                f"machines ({self._exposure}).")

    def validated(self, changes: Mapping[str, Any], *, from_api: bool = False) -> dict[str, Any]:
        """Check every change (all or nothing) and return them in stored types; raises SettingsError."""
        checked: dict[str, Any] = {}
        for key, value in changes.items():
            option = self.option(key)
            if option is not None and from_api and option.restrict_api:
                continue
            if key in self._frozen:
                raise SettingsError(f"Setting '{key}' is frozen by a command-line flag and cannot be changed.")
            value = value if option is None else validate_value(option, value)
            if value == self.get(key):  # unchanged: a client posting back what GET /options returned
                checked[key] = value
                continue
            locked = self.lock_reason(key)
            if locked:
                raise SettingLockedError(locked, hint=exposure_advice(self._exposure or ""))
            check = self._checks.get(key)
            checked[key] = check(value) if check is not None else value
        return checked

    def update(self, changes: Mapping[str, Any], *, from_api: bool = False, save: bool = True) -> list[str]:
        """Validate and apply changes, then save atomically. Returns the keys whose value changed.
        When config.json cannot be written (a full disk) nothing changes, in memory either: WriteFailedError."""
        checked = self.validated(changes, from_api=from_api)
        with self._lock:
            changed = [key for key, value in checked.items() if self._values.get(key) != value]
            if save and changed:
                self._write({**self._values, **checked})
            self._values.update(checked)
        return changed

    def save(self) -> None:
        with self._lock:
            self._write(self._values)

    def _write(self, values: Mapping[str, Any]) -> None:
        text = json.dumps(values, indent=4, ensure_ascii=False)
        try:
            atomic_write_text(self.path, text + "\n", private=True)  # secrets (tokens) live here: 0600
        except OSError as error:
            log.error("Settings not saved: %s", write_failure_message(error, self.path))
            raise WriteFailedError(error, self.path) from error


def _read_config_file(path: Path) -> dict[str, Any]:
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a writer that was killed mid-way
        stale.unlink(missing_ok=True)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the top level is not a JSON object")
        return data
    except (OSError, ValueError, RecursionError) as error:  # RecursionError: absurdly nested JSON
        backup = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copy2(path, backup)
        log.error("Settings file %s could not be read (%s). It was copied to %s; starting with defaults. "
                  "Fix or delete the copy once you have recovered what you need.", path, error, backup)
        return {}


def frozen_keys_from_flags(options: LaunchOptions) -> set[str]:
    """Keys made read-only by --freeze-settings*, --hide-ui-dir-config."""
    keys: set[str] = set()
    if options.freeze_settings:
        keys.update(OPTIONS_BY_KEY)
    sections = {s.strip() for s in (options.freeze_settings_in_sections or "").split(",")}
    keys.update(o.key for o in OPTIONS_BY_KEY.values() if o.section in sections)
    specific = (options.freeze_specific_settings or "").split(",")
    keys.update(k.strip() for k in specific if k.strip())
    if options.hide_ui_dir_config:
        keys.update(o.key for o in OPTIONS_BY_KEY.values() if o.restricted)
    return keys
