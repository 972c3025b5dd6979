"""The console's themes (Theme objects; the .tcss files use only their variables) and which one starts:
--theme, else PAPERDESK_THEME, else [console] theme, else the one the operator last chose in the app (saved in
$XDG_CONFIG_HOME/paperdesk/console.toml), else dark."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from textual.theme import Theme

THEME_VARIABLE = "PAPERDESK_THEME"

DARK = Theme(
    name="paperdesk-dark",
    primary="#4A9EFF",
    secondary="#7FB2E5",
    accent="#C792EA",
    warning="#FFB84D",
    error="#FF5C5C",
    success="#4CD98A",
    foreground="#E0E4EA",
    background="#12161C",
    surface="#1A2029",
    panel="#232B36",
    dark=True,
)

LIGHT = Theme(
    name="paperdesk-light",
    primary="#0B5CAD",
    secondary="#2F6F9F",
    accent="#7A3EA8",
    warning="#A35F00",
    error="#C0162B",
    success="#1D7A3D",
    foreground="#1B1F24",
    background="#F7F8FA",
    surface="#FFFFFF",
    panel="#E6EAF0",
    dark=False,
)

# Pure black and white with saturated accents, for low-vision use and washed-out projectors.
HIGH_CONTRAST = Theme(
    name="paperdesk-high-contrast",
    primary="#FFFF00",
    secondary="#00FFFF",
    accent="#FF00FF",
    warning="#FFA500",
    error="#FF3030",
    success="#00FF00",
    foreground="#FFFFFF",
    background="#000000",
    surface="#000000",
    panel="#101010",
    dark=True,
    text_alpha=1.0,
)

THEMES = (DARK, LIGHT, HIGH_CONTRAST)
DEFAULT_THEME = DARK.name
SHORT_NAMES = {"dark": DARK.name, "light": LIGHT.name, "high-contrast": HIGH_CONTRAST.name}


def theme_name(name: str) -> str:
    """dark, light and high-contrast stand for the paperdesk themes; any other name is Textual's."""
    return SHORT_NAMES.get(name, name)


def saved_theme_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "paperdesk" / "console.toml"


def saved_theme() -> str | None:
    """The theme last chosen in the app; None when there is none or the file cannot be read (it is only a
    preference: a broken one is ignored, not fatal)."""
    try:
        data = tomllib.loads(saved_theme_file().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    theme = data.get("theme")
    return theme if isinstance(theme, str) else None


def save_theme(name: str) -> str | None:
    """Remember name for the next start; the error's words when it cannot be written (the app says so)."""
    path = saved_theme_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f'# written by the paperdesk console when you change its theme\ntheme = "{name}"\n',
                        encoding="utf-8")
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def start_theme(cli: str | None, config: str | None) -> tuple[str, str]:
    """(theme, where it came from), by precedence: --theme, PAPERDESK_THEME, [console] theme, saved, default."""
    for name, source in ((cli, "--theme"), (os.environ.get(THEME_VARIABLE), THEME_VARIABLE),
                         (config, "[console] theme"), (saved_theme(), str(saved_theme_file()))):
        if name:
            return theme_name(name), source
    return DEFAULT_THEME, "default"
