"""Real files for the evidence tests and benchmark, made with Pillow and pillow-heif."""

from __future__ import annotations

import io
import struct
import zlib

import pillow_heif
from PIL import ExifTags, Image
from PIL.TiffImagePlugin import IFDRational

pillow_heif.register_heif_opener()


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    deg = int(value)
    minutes = int((value - deg) * 60)
    seconds = (value - deg - minutes / 60) * 3600
    return IFDRational(deg), IFDRational(minutes), IFDRational(round(seconds * 10000), 10000)


def gps_exif(lon: float, lat: float, taken: str = "2026:12:01 09:30:00") -> Image.Exif:
    """EXIF as a phone writes it: device, GPS position (WGS-84) and time taken."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    exif[ExifTags.Base.Model] = "Model 7"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
    gps[ExifTags.GPS.GPSLatitude] = _dms(abs(lat))
    gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
    gps[ExifTags.GPS.GPSLongitude] = _dms(abs(lon))
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = taken
    return exif


def picture(size: tuple[int, int] = (640, 480), seed: int = 0) -> Image.Image:
    """A picture with some structure (a gradient and a shape), different per ``seed``."""
    w, h = size
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    block = Image.new("RGB", (w // 3, h // 3), ((seed * 37) % 256, (seed * 91) % 256, 120))
    img.paste(block, ((seed * 13) % (w // 2), (seed * 7) % (h // 2)))
    return img


def jpeg(size: tuple[int, int] = (640, 480), exif: Image.Exif | None = None, seed: int = 0,
         quality: int = 90) -> bytes:
    buf = io.BytesIO()
    picture(size, seed).save(buf, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return buf.getvalue()


def png(size: tuple[int, int] = (320, 240), seed: int = 0) -> bytes:
    buf = io.BytesIO()
    picture(size, seed).save(buf, "PNG")
    return buf.getvalue()


def heic(size: tuple[int, int] = (640, 480), exif: Image.Exif | None = None) -> bytes:
    buf = io.BytesIO()
    picture(size, 3).save(buf, "HEIF", **({"exif": exif} if exif else {}))
    return buf.getvalue()


def pdf() -> bytes:
    """A minimal, valid one-page PDF (a rectification notice)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (i, body))
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for off in offsets:
        out.write(b"%010d 00000 n \n" % off)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
              % (len(objects) + 1, xref))
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (a decompression bomb's header) with
    one small compressed row: refused from its header, before any decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def bomb_png(side: int = 30_000) -> bytes:
    """A real, complete PNG of ``side`` x ``side`` black pixels (1 bit per pixel), which
    compresses to a few hundred kilobytes: decoding it would take ``side``² pixels."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def phone_photo(target_bytes: int = 3_000_000, size: tuple[int, int] = (4000, 3000),
                seed: int = 0) -> bytes:
    """A JPEG of a phone's size (12 MP) of about ``target_bytes``: noise over a picture,
    as a photo's detail defeats compression."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = np.asarray(picture(size, seed), dtype=np.int16)
    noise = rng.integers(-24, 25, size=base.shape, dtype=np.int16)
    img = Image.fromarray(np.clip(base + noise, 0, 255).astype("uint8"))
    lo, hi = 30, 95
    best = b""
    while lo <= hi:  # the quality whose size comes closest below the target
        q = (lo + hi) // 2
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        if buf.tell() <= target_bytes:
            best, lo = buf.getvalue(), q + 1
        else:
            hi = q - 1
    return best or buf.getvalue()
