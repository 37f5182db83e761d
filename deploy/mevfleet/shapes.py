"""Shapes of the inventory values that reach a rendered file, a unit's command line or a shell.

Every such value is one of these types, so a value that could end a config line, start a shell command
or make a service listen on every interface is refused when the inventory is read, naming the field.
The renderer (render.py) refuses control characters again, as a second line (docs/inventory.md).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictInt

# The governors of the kernel's cpufreq (Documentation/admin-guide/pm/cpufreq.rst).
CpuGovernor = Literal["performance", "powersave", "schedutil", "ondemand", "conservative", "userspace"]

# 2 MiB pages: 131072 are 256 GiB, half of the largest host the catalog documents (Solana RPC, 512 GiB).
# Bounds a typo when the inventory does not give the host's memory (then half of it is the bound).
HUGEPAGES_MAX = 131072

Port = Annotated[StrictInt, Field(ge=1, le=65535)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:-]{0,254}")
# RFC 3986 characters minus those a unit file, a shell or a config line treats specially:
# % (systemd specifiers), $ (variables), quotes, backslash, backtick, ; and whitespace.
_URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>[A-Za-z0-9._~:/?#\[\]@!&()*+,=-]+)")
_SMARTHOST = re.compile(r"(?P<host>[^:\s]+):(?P<port>[0-9]{1,5})")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+")


def control_character(value: str) -> str | None:
    """The first control character (newline, tab, escape, ...) in value, as a repr, or None."""
    found = _CONTROL.search(value)
    return None if found is None else repr(found.group())


def _text(value: str) -> str:
    bad = control_character(value)
    if bad:
        raise ValueError(f"contains the control character {bad}; a value must stay on its line")
    return value


def _dns_name(value: str) -> str:
    labels = value.split(".")
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a host name: dot-separated labels of letters, digits and '-' "
            "(1-63 characters, not starting or ending with '-')"
        )
    return value


def _address(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        try:
            return _dns_name(value)
        except ValueError:
            raise ValueError(f"{value!r} is neither an IP address nor a DNS name") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{value} is not a host's address (a service bound to it would listen on every interface)")
    return str(ip)


def _ip(value: str) -> str:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    if ip.is_unspecified or ip.is_multicast:
        raise ValueError(f"{value} is not a host's address (a service bound to it would listen on every interface)")
    return str(ip)


def _matching(pattern: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return check


def _url(*schemes: str):
    def check(value: str) -> str:
        found = _URL.fullmatch(value)
        if not found or found["scheme"] not in schemes:
            raise ValueError(
                f"{value!r} is not a {'/'.join(schemes)} URL of plain characters "
                "(no spaces, quotes, '%', '$', ';', '\\' or '`'; percent-encoding is not accepted)"
            )
        return value

    return check


def _path(value: str) -> str:
    _text(value)
    if not value.strip():
        raise ValueError("is empty")
    return value


def _artifact_file(value: str) -> str:
    # The file's name is kept on the host (the upload's name) and appears in the install script's messages.
    _path(value)
    name = value.rstrip("/").rsplit("/", 1)[-1]
    if not _IDENT.fullmatch(name):
        raise ValueError(
            f"{value!r}: the file name {name!r} must be letters, digits, '_', '.', '-' (it is kept on the host)"
        )
    return value


def _smarthost(value: str) -> str:
    found = _SMARTHOST.fullmatch(value)
    if not found or not 1 <= int(found["port"]) <= 65535:
        raise ValueError(f"{value!r} is not host:port")
    _address(found["host"])
    return value


# Free text (labels, channel names): anything but control characters; rendered quoted (tojson, YAML).
Text = Annotated[str, AfterValidator(_text)]
HostName = Annotated[str, AfterValidator(_dns_name)]
Address = Annotated[str, AfterValidator(_address)]
IPAddress = Annotated[str, AfterValidator(_ip)]
# Group, profile, client and fleet names: a letter or digit, then letters, digits, '_', '.', '-'.
Name = Annotated[str, AfterValidator(_matching(_IDENT, "a name (letters, digits, '_', '.', '-'; up to 64)"))]
UserName = Annotated[str, AfterValidator(_matching(_USER, "a POSIX user name ([a-z_][a-z0-9_-]*, up to 32)"))]
Version = Annotated[str, AfterValidator(_matching(_VERSION, "a version (letters, digits, '.', '_', '+', '-')"))]
ImageRef = Annotated[str, AfterValidator(_matching(_IMAGE, "an image reference (registry/name:tag, lower case)"))]
Email = Annotated[str, AfterValidator(_matching(_EMAIL, "an e-mail address"))]
HttpUrl = Annotated[str, AfterValidator(_url("http", "https"))]
WsUrl = Annotated[str, AfterValidator(_url("ws", "wss"))]
# A file on the control machine (secrets, keys, artifacts): never rendered, but still one line.
ControlPath = Annotated[str, AfterValidator(_path)]
ArtifactFile = Annotated[str, AfterValidator(_artifact_file)]
# A sysctl's text value (net.ipv4.tcp_congestion_control: bbr): one word.
SYSCTL_WORD = re.compile(r"[A-Za-z0-9_.:-]+")
SmartHost = Annotated[str, AfterValidator(_smarthost)]
