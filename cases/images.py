"""Checking and preparing uploaded evidence files, with no database and no disk.

:func:`prepare` takes the bytes a client sent and returns what may be stored, or raises a
:class:`~casegrid.errors.FileRefused` naming the file and the limit. It is CPU work (a
phone photo is decoded and encoded again): callers run it off the event loop.

* The type comes from the content (its signature), never from the file name or the
  declared content type: JPEG, PNG, WebP, HEIC/HEIF (iPhones; read by ``pillow-heif``),
  and PDF (``%PDF-`` header and an ``%%EOF`` trailer).
* Size and pixel count are checked before decoding: Pillow reads an image's size from its
  header (``Image.open`` is lazy), so a decompression bomb is refused without the memory
  it asks for; Pillow's own bomb guard is set to the same limit as a second line.
* An image is decoded in full (a truncated or damaged file is refused), turned upright by
  its EXIF orientation, and encoded again *without* its metadata: the copy anyone else
  sees carries no GPS position, device or time. A thumbnail is made for lists and popups.
* The original's EXIF GPS position (WGS-84, as GPS receivers report it) and time are kept
  as staff-only facts on the attachment row.

Pillow and pillow-heif are imported by the first image (:func:`_pillow`), not with this
module: every serving worker imports it through the upload routes, and what a worker's
imports leave on its heap is walked by each full garbage collection, during which the
worker answers no request (bench/RESULTS.md, issue 20; tests/test_serving_imports.py).
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from casegrid.errors import FileRefused, FileTooLarge, UnsupportedFile
from cases.calendar import CITY_TZ

if TYPE_CHECKING:
    from PIL import Image

# Content signatures -> (kind, Pillow format to open with). ISO-BMFF brands of HEIF images.
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
ACCEPTED = "JPEG, PNG, WebP, HEIC/HEIF photos or a PDF document"
_JPEG_QUALITY = 88
_THUMB_QUALITY = 80
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


@dataclass(frozen=True)
class Limits:
    """The limits a file is checked against (from settings)."""

    max_bytes: int
    max_pixels: int
    thumb_px: int


@dataclass
class Upload:
    """One file as sent: the form part it came in, its position, its (display) name."""

    part: str
    index: int
    filename: str | None
    data: bytes

    @property
    def label(self) -> str:
        """How refusals name the file: the part and position, and the name it was sent as."""
        name = f" {display_name(self.filename)!r}" if self.filename else ""
        return f"{self.part} #{self.index + 1}{name}"

    @property
    def field(self) -> str:
        return f"{self.part}[{self.index}]"


@dataclass
class Prepared:
    """A checked file, ready to store: the shared copy, its thumbnail, and the facts."""

    kind: str  # image | pdf
    media_type: str
    stored: bytes
    thumb: bytes | None
    original_sha256: str
    original_name: str | None
    width: int | None = None
    height: int | None = None
    pages: int | None = None
    taken_at: datetime | None = None
    taken_lon: float | None = None
    taken_lat: float | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.stored).hexdigest()

    @property
    def thumb_sha256(self) -> str | None:
        return hashlib.sha256(self.thumb).hexdigest() if self.thumb is not None else None


def display_name(filename: str | None) -> str | None:
    """A sent file name fit to show (no directories, no control characters, 200 at most);
    it is only ever shown, never used to name anything on disk."""
    if not filename:
        return None
    name = _UNSAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name[:200] or None


def sniff(data: bytes) -> str | None:
    """The type of ``data`` from its first bytes: jpeg, png, webp, heif, pdf, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "heif"
    if data.startswith(b"%PDF-"):
        return "pdf"
    return None


_PILLOW_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heif": "HEIF"}


@functools.cache
def _pillow() -> None:
    """Import Pillow with pillow-heif's opener registered, once, on the first image."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def prepare(upload: Upload, limits: Limits) -> Prepared:
    """Check one uploaded file and prepare its stored copy (see the module docstring);
    :class:`FileRefused` (or its 413/415 subclasses) naming the file otherwise."""
    data = upload.data
    if len(data) > limits.max_bytes:
        raise FileTooLarge(
            f"{upload.label} is {len(data) / 1_000_000:.1f} MB; the limit is "
            f"{limits.max_bytes / 1_000_000:g} MB per file: send a smaller photo (most phones "
            "can share a reduced size)", field=upload.field)
    if not data:
        raise FileRefused(f"{upload.label} is empty; attach the file itself", field=upload.field)
    kind = sniff(data)
    if kind is None:
        raise UnsupportedFile(
            f"{upload.label} is not a file type casegrid accepts (decided from its content, "
            f"not its name); send {ACCEPTED}", field=upload.field)
    original_sha = hashlib.sha256(data).hexdigest()
    name = display_name(upload.filename)
    if kind == "pdf":
        return _prepare_pdf(upload, original_sha, name)
    return _prepare_image(upload, kind, limits, original_sha, name)


def _prepare_pdf(upload: Upload, original_sha: str, name: str | None) -> Prepared:
    # A PDF ends with %%EOF (possibly followed by a line end or a little padding); a file
    # cut off in transfer does not.
    if b"%%EOF" not in upload.data[-1024:]:
        raise FileRefused(f"{upload.label} is a damaged or incomplete PDF (no %%EOF at its "
                          "end); send the whole file", field=upload.field)
    return Prepared("pdf", "application/pdf", upload.data, None, original_sha, name)


def _prepare_image(upload: Upload, kind: str, limits: Limits, original_sha: str,
                   name: str | None) -> Prepared:
    _pillow()
    from PIL import Image, UnidentifiedImageError

    # Pillow's own guard: above this it warns, above twice this it refuses in open().
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    damaged = FileRefused(f"{upload.label} could not be read as a {kind.upper()} image (damaged "
                          "or incomplete); send the photo again", field=upload.field)
    try:
        img = Image.open(io.BytesIO(upload.data), formats=[_PILLOW_FORMAT[kind]])
    except Image.DecompressionBombError:
        raise _too_many_pixels(upload, None, limits) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise damaged from None
    with img:
        width, height = img.size
        if width * height > limits.max_pixels:
            raise _too_many_pixels(upload, (width, height), limits)
        try:
            img.load()
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
            raise damaged from None
        taken_at, lon, lat = exif_facts(img)
        upright = _upright(img)
        stored, media_type = _encode_shared(upright, kind)
        thumb = _thumbnail(upright, limits.thumb_px)
        return Prepared("image", media_type, stored, thumb, original_sha, name,
                        width=upright.width, height=upright.height, taken_at=taken_at,
                        taken_lon=lon, taken_lat=lat)


def _too_many_pixels(upload: Upload, size: tuple[int, int] | None, limits: Limits) -> FileRefused:
    # Without a size, Pillow's guard refused it in open(): over twice the limit.
    got = f"{size[0]:,} x {size[1]:,} pixels" if size else f"over {2 * limits.max_pixels:,} pixels"
    return FileRefused(
        f"{upload.label} is {got}; the limit is {limits.max_pixels:,} pixels per image: send "
        "a smaller picture", field=upload.field)


def _encode_shared(img: Image.Image, kind: str) -> tuple[bytes, str]:
    """The copy others see: no metadata is passed to the encoder, so none is written."""
    buf = io.BytesIO()
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if kind == "png" or (kind == "webp" and has_alpha):
        clean = img if img.mode in ("RGB", "RGBA", "L", "LA", "P") else img.convert("RGBA")
        clean.save(buf, "PNG")
        return buf.getvalue(), "image/png"
    clean = img if img.mode in ("RGB", "L") else img.convert("RGB")
    clean.save(buf, "JPEG", quality=_JPEG_QUALITY)
    return buf.getvalue(), "image/jpeg"


def _upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (the tag goes with the metadata)."""
    from PIL import ExifTags, ImageOps

    try:
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - unreadable EXIF: show it as stored
        return img
    # Only when there is something to turn: exif_transpose copies the whole image.
    return img if orientation in (None, 1) else ImageOps.exif_transpose(img)


def _thumbnail(img: Image.Image, px: int) -> bytes:
    from PIL import Image

    w, h = img.size
    scale = min(px / w, px / h, 1.0)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # resize with a reducing gap: a fast integer reduction first, then the filter over a
    # few pixels; no copy of the full-size image is made.
    thumb = img.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    if thumb.mode not in ("RGB", "L"):
        thumb = thumb.convert("RGB")
    buf = io.BytesIO()
    thumb.save(buf, "JPEG", quality=_THUMB_QUALITY)
    return buf.getvalue()


def exif_facts(img: Image.Image) -> tuple[datetime | None, float | None, float | None]:
    """The original's EXIF time taken and GPS position (longitude, latitude; WGS-84), each
    None when absent or unreadable."""
    from PIL import ExifTags

    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block only means no facts
        return None, None, None
    lon = lat = None
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
        lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
        if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            lon = lat = None
    except Exception:  # noqa: BLE001 - malformed GPS tags: no position
        lon = lat = None
    return _taken_at(exif), lon, lat


def _degrees(dms: object, ref: object, negative: str) -> float | None:
    if not isinstance(dms, tuple) or len(dms) != 3:
        return None
    d, m, s = (float(v) for v in dms)
    value = d + m / 60 + s / 3600
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "replace")
    return -value if isinstance(ref, str) and ref.strip().upper() == negative else value


def _taken_at(exif: Image.Exif) -> datetime | None:
    from PIL import ExifTags

    try:
        sub = exif.get_ifd(ExifTags.IFD.Exif)
        raw = sub.get(ExifTags.Base.DateTimeOriginal) or exif.get(ExifTags.Base.DateTime)
        if not isinstance(raw, str):
            return None
        when = datetime.strptime(raw.strip().rstrip("\x00"), "%Y:%m:%d %H:%M:%S")
        offset = sub.get(ExifTags.Base.OffsetTimeOriginal)
        if isinstance(offset, str) and re.fullmatch(r"[+-]\d\d:\d\d", offset.strip()):
            return datetime.fromisoformat(when.isoformat() + offset.strip())
        return when.replace(tzinfo=CITY_TZ)  # no offset: local time, as everywhere in casegrid
    except (ValueError, TypeError, KeyError):
        return None
