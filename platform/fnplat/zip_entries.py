"""Pure checks on the entry list of an uploaded zip: how many there are, and whether their names
can all exist at once in one directory tree.

`count_entries` walks the central directory's fixed-size records before `zipfile` builds a
`ZipInfo` per entry: a 50 MB upload can declare about a million entries, which `zipfile` would
turn into hundreds of MB of objects before any limit could be checked.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from fnplat.errors import ArtifactError

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory record
_END64_DIR_SIZE = 8  # index of the central directory's size in _END64
_ENTRY_SIZE = 46  # fixed part of a central directory record
_ENTRY_LENGTHS = struct.Struct("<3H")  # name, extra and comment lengths, at offset 28
_MAX_COMMENT = 0xFFFF


def count_entries(data: bytes, stop_after: int) -> int:
    """How many records the central directory holds, counted up to `stop_after + 1`.

    Reads only the end record(s) and each record's fixed part, as `zipfile` would find them
    (the directory ends where the end record starts, zip64 or not). Returns 0 when there is no
    end record: the zip reader then reports the file as not a zip.
    """
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - _END.size - _MAX_COMMENT))
    if end < 0 or end + _END.size > len(data):
        return 0
    directory_size = _END.unpack_from(data, end)[5]
    directory_end = end
    locator = end - _END64_LOCATOR.size
    end64 = locator - _END64.size
    if end64 >= 0 and data.startswith(b"PK\x06\x07", locator) and data.startswith(b"PK\x06\x06", end64):
        directory_size = _END64.unpack_from(data, end64)[_END64_DIR_SIZE]
        directory_end = end64
    position = max(0, directory_end - directory_size)
    count = 0
    while (
        count <= stop_after
        and position + _ENTRY_SIZE <= directory_end
        and data.startswith(b"PK\x01\x02", position)
    ):
        count += 1
        name, extra, comment = _ENTRY_LENGTHS.unpack_from(data, position + 28)
        position += _ENTRY_SIZE + name + extra + comment
    return count


def check_entry_count(count: int, limit: int) -> None:
    if count > limit:
        raise ArtifactError(
            f"the zip has more than {limit} entries (files and directories); "
            f"the limit is {limit}: leave out what the function does not need"
        )


def check_names_coexist(names: Iterable[str]) -> None:
    """Refuse names that cannot all be unpacked into one tree.

    A name may appear once (`a` and `a/` are the same name: a file and a directory cannot
    share it), and no file may sit where another entry needs a directory (`a` and `a/b`).
    Names are already checked by `artifacts.check_entry` (no `..`, `.`, empty parts).
    """
    files: set[str] = set()
    directories: set[str] = set()
    seen: dict[str, str] = {}
    for name in names:
        path = name.rstrip("/")
        first = seen.get(path)
        if first is not None:
            raise ArtifactError(
                f"{name}: duplicate entry in the zip ({first!r} is already in it; "
                "a name appears once, as a file or as a directory)"
            )
        seen[path] = name
        (directories if name.endswith("/") else files).add(path)
        parent, _, _ = path.rpartition("/")
        while parent and parent not in directories:
            directories.add(parent)
            parent, _, _ = parent.rpartition("/")
    clashes = sorted(files & directories)
    if clashes:
        raise ArtifactError(
            f"{clashes[0]}: is a file in the zip and also the directory of other entries "
            f"({clashes[0]}/...); a path cannot be both"
        )
