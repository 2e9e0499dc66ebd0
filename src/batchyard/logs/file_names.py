"""The names of files and directories under a FileLogStore root.

root/<group>/<stream>.log is a stream's file, root/<group>/group.json names the group (and
root/<group>/streams.jsonl is its journal, `journal.py`), root/.spare holds spare files. Group
and stream names become file names by a reversible encoding, or by a hash when too long.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote

_MAX_FILE_STEM = 200  # leaves room for the suffix under the usual 255-byte name limit
GROUP_FILE = "group.json"
SPARE_DIR = ".spare"  # group directories never start with '.': it is always escaped
STREAM_SUFFIX = ".log"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_/-]*")  # what quote() keeps, and '/', which it escapes


def quote_name(name: str) -> str:
    """The reversible part of encode_name; it keeps prefixes, one character at a time."""
    if _PLAIN_NAME.fullmatch(name):  # most names, e.g. "<definition>/default/<task id>"
        return name.replace("/", "%2F")
    return quote(name.encode(), safe="").replace(".", "%2E").replace("~", "%7E")


def encode_name(name: str) -> str:
    """A file name for a group or stream name: reversible percent-encoding (everything outside
    [A-Za-z0-9_-] escaped, so no '/', '.' or '..'), or a hash when that would be too long (the
    real name is then read back from the file's header)."""
    encoded = quote_name(name)
    if len(encoded) > _MAX_FILE_STEM:
        return "~" + hashlib.sha256(name.encode()).hexdigest()
    return encoded


def decode_name(encoded: str) -> str | None:
    """The name behind encode_name, or None for a hashed name."""
    return None if encoded.startswith("~") else unquote(encoded, errors="strict")
