"""Git URLs and extension folder names: validation, normalization, redaction. Pure functions.

Accepted clone URLs: `https://`, `http://`, `ssh://`, scp-like `user@host:path` and `file://` (local
repositories, used by tests and for local development). Everything else is refused, in particular git's
`ext::` / `fd::` transports (they run commands) and anything starting with `-` (option injection).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote, urlsplit, urlunsplit

from sdweb.core.errors import UserError

URL_SCHEMES = ("https", "http", "ssh", "file")
_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/\\].*)$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._\-+]")
MAX_NAME_LENGTH = 200

_URL_HINT = ("Use a git URL such as https://github.com/user/sd-webui-extension, git@github.com:user/repo.git "
             "or file:///path/to/local/repo.")


def _bad_url(url: str, why: str) -> UserError:
    return UserError(f"Cannot install from {redact_url(url)!r}: {why}.", code="invalid_extension_url",
                     hint=_URL_HINT)


def validate_git_url(url: str) -> str:
    """The URL, stripped, when it is a clone URL we accept; UserError otherwise."""
    text = (url or "").strip()
    if not text:
        raise UserError("No extension URL given.", code="invalid_extension_url", hint=_URL_HINT)
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in text):
        raise _bad_url(text, "it contains spaces or control characters")
    if text.startswith("-"):
        raise _bad_url(text, "it starts with '-'")
    if _SCP_LIKE.match(text):
        return text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES:
        shown = f"the scheme {scheme!r} is not allowed" if scheme else "it is not a URL"
        raise _bad_url(text, shown)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise _bad_url(text, "a file:// URL needs an absolute path (file:///path/to/repo)")
    elif not parts.hostname:
        raise _bad_url(text, "it has no host name")
    if not _last_component(text):
        raise _bad_url(text, "it has no repository name at the end")
    return text


def _url_path(url: str) -> str:
    match = _SCP_LIKE.match(url)
    return match.group("path") if match else unquote(urlsplit(url).path)


def _last_component(url: str) -> str:
    path = _url_path(url).replace("\\", "/").rstrip("/")
    return path.rsplit("/", 1)[-1]


def folder_name_from_url(url: str) -> str:
    """A1111's default folder: the URL's last path component without `.git`, unsafe characters as `_`."""
    name = _last_component(validate_git_url(url))
    if name.lower().endswith(".git"):
        name = name[:-4]
    return validate_folder_name(_UNSAFE_NAME_CHARS.sub("_", name))


def validate_folder_name(name: str) -> str:
    """A folder name directly inside extensions/: no separators, no `..`, not hidden, not reserved."""
    text = name or ""
    hint = "Choose a plain folder name such as sd-webui-my-extension (letters, digits, '-', '_', '.')."

    def refuse(why: str) -> UserError:
        return UserError(f"Extension folder name {text!r} is not allowed: {why}.",
                         code="invalid_extension_name", hint=hint)

    if not text.strip():
        raise refuse("it is empty")
    if "/" in text or "\\" in text or ":" in text:
        raise refuse("it contains a path separator")
    if text in (".", ".."):
        raise refuse("it is '.' or '..'")
    if text.startswith("."):
        raise refuse("it starts with a dot (hidden folders are not extensions)")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise refuse("it contains control characters")
    if text != text.strip() or text.endswith("."):
        raise refuse("it starts or ends with a space or ends with a dot")
    if text.split(".", 1)[0].lower() in _WINDOWS_RESERVED:
        raise refuse("it is a reserved device name on Windows")
    if len(text) > MAX_NAME_LENGTH:
        raise refuse(f"it is longer than {MAX_NAME_LENGTH} characters")
    return text


def normalize_git_url(url: str | None) -> str:
    """A comparison key: no scheme, credentials, port-less ssh form, trailing `/` or `.git`; lower case.

    `https://github.com/A/B.git`, `http://github.com/a/b/` and `git@github.com:a/b` give the same key.
    """
    text = (url or "").strip()
    if not text:
        return ""
    match = _SCP_LIKE.match(text)
    if match:
        host, path = match.group("host"), match.group("path")
    else:
        parts = urlsplit(text)
        host, path = (parts.hostname or ""), parts.path
    path = path.strip("/")
    if path.lower().endswith(".git"):
        path = path[:-4]
    return f"{host}/{path}".lower().strip("/")


def redact_url(url: str) -> str:
    """The URL with any user:password (or token) part replaced by `***`, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    return url


def redact_text(text: str, urls: tuple[str, ...]) -> str:
    """`text` (e.g. git's output) with each of `urls` replaced by its redacted form."""
    for url in urls:
        redacted = redact_url(url)
        if url and redacted != url:
            text = text.replace(url, redacted)
    return re.sub(r"(https?://)[^/@\s:]+:[^/@\s]+@", r"\1***@", text)
