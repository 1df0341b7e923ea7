"""rotlib.data.decoding, the one image decoder: EXIF, formats, and images refused before decoding (decompression bombs)."""
import json
import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from rotlib import data as D
from rotlib.data import decoding


def png_bomb(path, width=30000, height=30000, rows_per_block=1000):
    """A valid 8-bit gray PNG of ``width`` x ``height`` black pixels in well under a second and a megabyte.

    The pixel stream (a zero filter byte and ``width`` zeros per row) is all zeros; after a full flush a
    deflate compressor forgets its history, so the compressed form of one block of rows repeats exactly:
    two blocks are compressed, the second repeated, and the zlib trailer's Adler-32 of ``n`` zeros
    (A = 1, B = n mod 65521) written by hand.
    """
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    assert height % rows_per_block == 0
    block = bytes((width + 1) * rows_per_block)
    c = zlib.compressobj(9)
    first = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    repeat = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    end = c.flush()
    n = (width + 1) * height
    idat = first + repeat * (height // rows_per_block - 1) + end[:-4] + struct.pack(">I", ((n % 65521) << 16) | 1)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return png_bomb(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_the_bomb_is_a_real_png(tmp_path):
    """The same construction at a small size decodes to what it says (so the big one is a real 900-Mpixel PNG)."""
    small = png_bomb(tmp_path / "small.png", width=300, height=200, rows_per_block=50)
    with Image.open(small) as im:
        assert im.size == (300, 200) and im.mode == "L"
        assert not np.asarray(im).any()


def test_bomb_is_refused_quickly_with_low_memory(bomb):
    """A 0.9 MB PNG of 30000x30000 pixels: refused from its header, in a fresh process whose peak memory
    barely moves (decoding it would take 0.9 GB, 2.7 GB as RGB)."""
    assert bomb.stat().st_size < 2_000_000
    code = f"""
import json, resource, time
from rotlib.data.decoding import ImageTooLarge, decode
before, t = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
try:
    decode({str(bomb)!r})
    message = None
except ImageTooLarge as err:
    message = str(err)
print(json.dumps({{"message": message, "seconds": time.perf_counter() - t,
                  "grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    message = result["message"]
    assert message is not None, result
    for part in ("bomb.png", "30000x30000", "900,000,000", f"{decoding.MAX_PIXELS:,}", "max_pixels=N", "--max-pixels N"):
        assert part in message, message
    assert result["seconds"] < 2 and result["grew_mb"] < 100, result


def test_limit_is_the_callers(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (100, 50), (1, 2, 3)).save(path)
    with pytest.raises(D.ImageTooLarge, match="100x50 = 5,000 pixels, more than the limit of 4,999"):
        D.decode(path, max_pixels=4999)
    assert D.decode(path, max_pixels=5000).size == (100, 50)
    assert D.decode(path, max_pixels=0).size == (100, 50)                     # 0: no limit
    assert issubclass(D.ImageTooLarge, D.UnreadableImage) and issubclass(D.UnreadableImage, ValueError)


def test_a_limit_above_pillows_own_is_honoured(tmp_path, monkeypatch):
    """Pillow refuses images over 2x its MAX_IMAGE_PIXELS by itself; a caller's larger max_pixels wins, and
    Pillow's setting is left as it was."""
    path = tmp_path / "x.png"
    Image.new("RGB", (100, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert D.decode(path, max_pixels=10_000).size == (100, 50)
    with pytest.raises(D.ImageTooLarge):
        D.decode(path, max_pixels=4000)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_exif_orientation_and_kept_exif(tmp_path):
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)                        # stored: left half red, right half blue
    stored[:, 20:] = (0, 0, 255)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[D.EXIF_ORIENTATION] = 6                        # "rotate 90 degrees clockwise to display"
    im.save(tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    dec = D.decode(tmp_path / "phone.jpg")
    assert dec.exif_orientation == 6 and dec.size == (20, 40) and dec.format == "JPEG"
    top, bottom = dec.image[:, :10].float().mean((1, 2)), dec.image[:, -10:].float().mean((1, 2))
    assert top[0] > 200 and top[2] < 50 and bottom[2] > 200 and bottom[0] < 50     # upright: red on top
    kept = Image.Exif()
    kept.load(dec.exif)
    assert kept[D.EXIF_ORIENTATION] == 1                # a corrected copy must not be turned again by a viewer


def test_sixteen_bits_keep_their_high_byte(tmp_path):
    values = np.array([[0, 255, 256, 400, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    dec = D.decode(tmp_path / "g16.png")
    assert dec.image.dtype == torch.uint16 and dec.image.shape == (3, 1, 6)
    assert D.to_rgb8(dec.image)[0, 0].tolist() == [0, 0, 1, 1, 128, 255]


def test_unreadable_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    for name, reason in (("empty.png", "empty file"), ("text.jpg", "cannot identify"), ("missing.png", "cannot read")):
        with pytest.raises(D.UnreadableImage, match=reason):
            D.decode(tmp_path / name)
