"""``translate``: English into another language, from the gettext ``.mo`` catalogs of Debian packages."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path
from typing import Any

from .base import Candidate, LANGUAGE_NAMES, Listings, SourceFile, Found, locale_files, with_debian_origin


def read_mo(path: Path) -> dict[str, str]:
    """The msgid -> msgstr pairs of a gettext ``.mo`` file (either byte order).

    Plural entries and entries with a context (msgctxt) are left out; the header (the empty
    msgid) gives the charset. Raises ValueError for a file that is not a ``.mo`` catalog.
    """
    data = Path(path).read_bytes()
    if len(data) < 28:
        raise ValueError(f"{path}: not a gettext .mo file ({len(data)} bytes, expected a 28-byte header at least)")
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0x950412DE:
        endian = "<"
    elif magic == 0xDE120495:
        endian = ">"
    else:
        raise ValueError(f"{path}: not a gettext .mo file (magic {magic:#x}, expected 0x950412de)")
    _, n, orig_off, trans_off = struct.unpack(endian + "4I", data[4:20])
    raw: list[tuple[bytes, bytes]] = []
    for i in range(n):
        olen, ooff = struct.unpack(endian + "2I", data[orig_off + 8 * i: orig_off + 8 * i + 8])
        tlen, toff = struct.unpack(endian + "2I", data[trans_off + 8 * i: trans_off + 8 * i + 8])
        if ooff + olen > len(data) or toff + tlen > len(data):
            raise ValueError(f"{path}: entry {i} points past the end of the file")
        raw.append((data[ooff: ooff + olen], data[toff: toff + tlen]))
    charset = "utf-8"
    for msgid, msgstr in raw:
        if msgid == b"":
            m = re.search(rb"charset=([A-Za-z0-9_\-]+)", msgstr)
            if m and m.group(1).lower() not in (b"charset",):
                charset = m.group(1).decode("ascii")
    out: dict[str, str] = {}
    for msgid, msgstr in raw:
        if not msgid or b"\x00" in msgid or b"\x04" in msgid or b"\x00" in msgstr:
            continue
        try:
            out[msgid.decode(charset)] = msgstr.decode(charset)
        except (UnicodeDecodeError, LookupError):
            continue
    return out


_FORMAT = re.compile(r"%(\d+\$)?[-+ #0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcspn%]|\{[^}]*\}|%\([a-z_]+\)[sd]|\$\{?\w+\}?")


def _translatable(msgid: str, msgstr: str) -> bool:
    if not msgstr.strip() or msgstr.strip() == msgid.strip():
        return False
    if "\t" in msgid or msgid.count("\n") > 2 or len(msgid) > 700:
        return False
    words = _FORMAT.sub(" ", msgid).split()
    prose = [w for w in words if re.fullmatch(r"[A-Za-z][a-z'’]*[,.;:!?)]?", w)]
    if len(prose) < 6 or len(prose) < 0.7 * len(words):
        return False
    if len(_FORMAT.findall(msgid)) > 2 or re.search(r"<[a-z/]|--[a-z]|https?://|[{}\[\]=_]", msgid):
        return False
    return msgid[:1].isupper()  # a sentence, not a fragment


def translate_candidates(src: SourceFile) -> list[Candidate]:
    lang = dict(src.extra)["lang"]
    try:
        catalog = read_mo(src.path)
    except (OSError, ValueError):
        return []
    out = []
    for msgid in sorted(catalog):
        msgstr = catalog[msgid]
        if not _translatable(msgid, msgstr):
            continue
        language = LANGUAGE_NAMES[lang]
        prompt = f"Translate the following English text into {language}.\n\nEnglish: {msgid.strip()}\n{language}:"
        key = f"{src.key}:{hashlib.sha1(msgid.encode()).hexdigest()[:12]}"
        out.append(Candidate("translate", prompt, msgstr.strip(), key, f"{src.origin}:{src.path}"))
    return out


def find(listings: Listings, config: Any) -> Found:
    files, reports = locale_files(listings.roots, config.languages)
    return Found(files, lambda sf: translate_candidates(with_debian_origin(sf, listings.dpkg)), reports)
