"""A minimal, valid PDF 1.4 writer for text reports: Courier lines on A4 pages.

Objects: 1 catalog, 2 page tree, 3 font, 4 info, then a page and its content
stream per page; a classic xref table with exact byte offsets.  Text outside
Latin-1 becomes '?' (the base-14 font's WinAnsi encoding).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["LINES_PER_PAGE", "render_pdf"]

LINES_PER_PAGE = 60
_FONT_SIZE = 9
_LEADING = 12
_TOP = 800
_LEFT = 40


def _string(text: str) -> bytes:
    """A PDF literal string: Latin-1, with \\ ( ) escaped and control characters dropped."""
    raw = "".join(c if c.isprintable() else " " for c in text).encode("latin-1", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _content(lines: Sequence[str]) -> bytes:
    head = f"BT /F1 {_FONT_SIZE} Tf {_LEADING} TL {_LEFT} {_TOP} Td\n".encode()
    body = b"".join(_string(line) + b" Tj T*\n" for line in lines)
    return head + body + b"ET\n"


def render_pdf(lines: Sequence[str], *, title: str) -> bytes:
    pages = [lines[i : i + LINES_PER_PAGE] for i in range(0, len(lines), LINES_PER_PAGE)] or [[]]
    first_page = 5
    kids = " ".join(f"{first_page + 2 * i} 0 R" for i in range(len(pages)))
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>",
        b"<< /Title " + _string(title) + b" /Producer (brokergraph QORT sandbox) >>",
    ]
    for i, page_lines in enumerate(pages):
        stream = _content(page_lines)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            b"/Resources << /Font << /F1 3 0 R >> >> "
            + f"/Contents {first_page + 2 * i + 1} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n".encode() + stream + b"endstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 4 0 R >>\n".encode()
    out += f"startxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)
