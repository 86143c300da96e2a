"""Tiny gettext catalogs written by the tests, so that no test reads /usr/share/locale."""

import struct

HEADER = "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n > 1);\n"


def mo_bytes(messages: dict[str, str]) -> bytes:
    """A GNU .mo catalog (little endian, no hash table) holding `messages` (msgid -> msgstr).

    A plural entry is written as "singular\\x00plural" -> "form0\\x00form1",
    a context entry as "context\\x04msgid".
    """
    entries = sorted({"": HEADER, **messages}.items())
    ids = [key.encode("utf-8") for key, _ in entries]
    strs = [value.encode("utf-8") for _, value in entries]
    count = len(entries)
    tables_end = 28 + 16 * count
    blob, id_table, str_table = b"", [], []
    for table, texts in ((id_table, ids), (str_table, strs)):
        for text in texts:
            table.append((len(text), tables_end + len(blob)))
            blob += text + b"\x00"
    header = struct.pack("<7I", 0x950412DE, 0, count, 28, 28 + 8 * count, 0, tables_end)
    pack = lambda table: b"".join(struct.pack("<2I", *entry) for entry in table)  # noqa: E731
    return header + pack(id_table) + pack(str_table) + blob


def write_catalog(locale_dir, lang, name, messages):
    directory = locale_dir / lang / "LC_MESSAGES"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.mo").write_bytes(mo_bytes(messages))
