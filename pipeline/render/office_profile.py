"""The LibreOffice user profile each worker starts with.

A profile carries the settings that keep LibreOffice off the network and quiet
(PROFILE_SETTINGS). A fresh profile costs a start: LibreOffice fills it in, then restarts
itself before it takes work. So a profile is prepared once (``soffice
--terminate_after_init``), kept in the pool's profile cache — the data folder's
``cache/`` — under a name derived from the LibreOffice build and the settings, and copied
into each new worker.

The profile also records that this LibreOffice version has run in it
(``ooSetupLastVersion``). LibreOffice only records that from its interface, never headless,
and an office that finds it missing runs its graphics self-tests before it takes work
(``GraphicsRenderTests``, about 0.6 s of CPU, the largest part of a start).
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

# (configuration path, property, value) written into every worker's fresh profile.
PROFILE_SETTINGS = (
    ("org.openoffice.Office.Common/Security/Scripting", "BlockUntrustedRefererLinks", "true"),
    ("org.openoffice.Office.Common/Security/Scripting", "MacroSecurityLevel", "3"),
    ("org.openoffice.Office.Common/Security/Scripting", "DisableMacrosExecution", "true"),
    ("org.openoffice.Office.Writer/Content/Update", "Link", "2"),  # never update links
    ("org.openoffice.Office.Common/Misc", "UseLocking", "false"),
    ("org.openoffice.Office.Common/Misc", "FirstRun", "false"),
    ("org.openoffice.Office.Common/Misc", "ShowTipOfTheDay", "false"),
    ("org.openoffice.Office.Common/Save/Document", "CreateBackup", "false"),
    ("org.openoffice.Office.Recovery/AutoSave", "Enabled", "false"),
    ("org.openoffice.Office.Recovery/RecoveryInfo", "Enabled", "false"),
    # The PDF declares the document's language from the default of the locale's script:
    # a Chinese locale makes it the East-Asian one (zh-CN), while Latin text keeps its own
    # language and breaks between words.
    ("org.openoffice.Setup/L10N", "ooSetupSystemLocale", "zh-CN"),
)


def profile_settings(soffice: str) -> tuple[tuple[str, str, str], ...]:
    """Return PROFILE_SETTINGS and, when the version of ``soffice`` can be read, the setting
    that says this version has already run in the profile."""
    version = office_version(soffice)
    if version is None:
        return PROFILE_SETTINGS
    return (*PROFILE_SETTINGS, ("org.openoffice.Setup/Product", "ooSetupLastVersion", version))


@cache
def office_version(soffice: str) -> str | None:
    """Return the version of ``soffice`` as its configuration states it ("7.4"), or None."""
    program = shutil.which(soffice)
    if not program:
        return None
    registry = Path(program).resolve().parent.parent / "share" / "registry" / "main.xcd"
    try:
        text = registry.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'<prop oor:name="ooSetupVersion">\s*<value>([0-9.]+)</value>', text)
    return found.group(1) if found else None


def profile_xcu(settings: tuple[tuple[str, str, str], ...] = PROFILE_SETTINGS) -> str:
    """Return registrymodifications.xcu holding ``settings``."""
    items = "".join(
        f'<item oor:path="/{path}"><prop oor:name="{name}" oor:op="fuse">'
        f"<value>{value}</value></prop></item>\n"
        for path, name, value in settings
    )
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<oor:items xmlns:oor="http://openoffice.org/2001/registry" '
            'xmlns:xs="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            f"{items}</oor:items>\n")


def fresh_profile(profile: Path, seed: Path | None, soffice: str = "soffice") -> None:
    """Make a worker's profile folder: a copy of ``seed``, or one holding only the settings
    (profile_settings of ``soffice``)."""
    if seed is not None:
        try:
            shutil.copytree(seed, profile, symlinks=True)
            return
        except OSError:
            shutil.rmtree(profile, ignore_errors=True)
    user = profile / "user"
    user.mkdir(parents=True)
    (user / "registrymodifications.xcu").write_text(profile_xcu(profile_settings(soffice)),
                                                    encoding="utf-8")


def profile_seed(cache: Path | None, soffice: str, *, create: bool,
                 env: dict[str, str] | None = None) -> Path | None:
    """Return the prepared profile in ``cache`` for this LibreOffice and these settings;
    with ``create``, prepare it first if it is missing (running ``soffice`` in ``env``).
    None when there is no cache or it could not be prepared (workers then make their own)."""
    if cache is None:
        return None
    seed = cache / f"libreoffice-profile-{_profile_key(soffice)}"
    if seed.is_dir() or not create:
        return seed if seed.is_dir() else None
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".libreoffice-profile-", dir=cache))
    try:
        fresh_profile(work / "profile", None, soffice)
        subprocess.run([soffice, "--headless", "--invisible", "--nologo", "--norestore",
                        "--nodefault", "--nolockcheck", "--terminate_after_init",
                        f"-env:UserInstallation={(work / 'profile').as_uri()}"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, cwd=work, timeout=120, check=True,
                       env={**(env or {}), "SAL_USE_VCLPLUGIN": "svp", "HOME": str(work),
                            "TMPDIR": str(work)})
        try:
            (work / "profile").rename(seed)
        except OSError:
            pass  # another process prepared it meanwhile
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not prepare a LibreOffice profile in %s: %s", cache, exc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return seed if seed.is_dir() else None


def _profile_key(soffice: str) -> str:
    """A name for this LibreOffice build and these settings."""
    build = ""
    program = shutil.which(soffice)
    if program:
        versionrc = Path(program).resolve().parent / "versionrc"
        try:
            build = versionrc.read_text(encoding="utf-8", errors="replace")
        except OSError:
            build = program
    settings = profile_xcu(profile_settings(soffice))
    return hashlib.sha256(f"{build}\0{settings}".encode()).hexdigest()[:16]
