"""``python -m rotlib orient`` and rotlib.orient: synthetic photos with a known "up" (a bright sky band on top)."""
import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from rotlib import orient as O
from rotlib.__main__ import main
from rotlib.models import NetworkInNetwork


# ---------------------------------------------------------------- helpers
def upright(h=48, w=64, seed=0):
    """A "photo" (H, W, 3) uint8 whose top third is bright sky: noise in [0, 60), +150 on top (like conftest's CIFAR)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    a[: h // 3] += 150
    return a


def cifar_like_photo(seed, scale=3, margin=10):
    """A photo whose centre square, downscaled to 32x32, looks like conftest's CIFAR images (bright top quarter)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 60, size=(32, 32 + 2 * margin, 3), dtype=np.uint8)
    base[:8] += 150
    return base.repeat(scale, 0).repeat(scale, 1)               # 96 x 156: non-square, larger than the model's input


def turned(a, k):
    """``a`` turned by k counter-clockwise quarter turns (rotlib's convention)."""
    return np.ascontiguousarray(np.rot90(a, k, axes=(0, 1)))


def save(path, array, **kw):
    Image.fromarray(array).save(path, **kw)
    return path


def jpeg_with_exif(path, stored, orientation):
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[O.EXIF_ORIENTATION] = orientation
    im.save(path, quality=95, exif=exif.tobytes())
    return path


def digest(folder):
    return {p.relative_to(folder): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


class SkyOracle(nn.Module):
    """Knows that the sky is bright: the brightest border band is "up". Logits for turns (0, 90, 180, 270) ccw:
    a ccw quarter turn moves the top to the left, a half turn to the bottom, three quarters to the right."""

    def __init__(self):
        super().__init__()
        self.config = {"num_classes": 4, "in_channels": 3}
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        m, s = x.mean(1), x.shape[-1] // 4
        bands = [m[:, :s].mean((1, 2)), m[:, :, :s].mean((1, 2)), m[:, -s:].mean((1, 2)), m[:, :, -s:].mean((1, 2))]
        return self.scale * torch.stack(bands, 1)


@pytest.fixture(autouse=True)
def _never_train_the_profiles_rotnet(request, cache, monkeypatch):
    """Every test uses a throw-away cache; only the tiny-profile test may train (in seconds)."""
    if "tiny" not in request.fixturenames:
        def refuse(cls, *args, **kwargs):
            raise AssertionError("this test would train the profile's RotNet; pass --model or an Orienter")
        monkeypatch.setattr(O.Orienter, "from_profile", classmethod(refuse))


@pytest.fixture
def oracle():
    return O.Orienter(SkyOracle(), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), size=32, name="sky-oracle")


@pytest.fixture
def photos(tmp_path):
    """A folder of mixed sizes and formats: upright, turned by each quarter, a sideways phone photo with EXIF,
    an ambiguous picture, a corrupt JPEG and a text file."""
    d = tmp_path / "photos"
    d.mkdir()
    save(d / "a_upright.jpg", upright(48, 64, 1), quality=95)
    save(d / "b_turned90.png", turned(upright(60, 40, 2), 1))
    save(d / "c_turned180.webp", turned(upright(50, 50, 3), 2), lossless=True)
    save(d / "d_turned270.bmp", turned(upright(40, 72, 4), 3))
    jpeg_with_exif(d / "e_exif6_upright.jpg", turned(upright(48, 64, 5), 1), 6)
    save(d / "f_gray.png", np.full((40, 40, 3), 128, np.uint8))
    (d / "g_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"not really a jpeg" * 20)
    (d / "h_notes.txt").write_text("shopping list")
    return d


# ---------------------------------------------------------------- prediction
@pytest.mark.parametrize("shape", [(48, 64), (64, 48), (40, 40), (300, 200)])
def test_known_up_is_recovered_at_any_size(oracle, tmp_path, shape):
    for k in range(4):
        path = save(tmp_path / f"x{k}.png", turned(upright(*shape, seed=k), k))
        res = O.orient_image(oracle, path)
        assert (res.turn, res.status) == (90 * k, "upright" if k == 0 else "rotated"), res
        assert res.confidence > 0.9
        assert res.size == (shape[1], shape[0]) if k % 2 == 0 else (shape[0], shape[1])


@pytest.mark.parametrize("fmt", ["jpeg", "png16", "rgba", "palette", "gray", "bmp", "tiff", "webp", "gif"])
def test_formats_decode_upright_for_the_model(oracle, tmp_path, fmt):
    a = turned(upright(40, 56), 1)                       # needs a 90° cw fix
    path = tmp_path / f"x.{ {'jpeg': 'jpg', 'png16': 'png', 'rgba': 'png', 'palette': 'png', 'gray': 'png'}.get(fmt, fmt)}"
    if fmt == "png16":
        Image.fromarray(a[..., 0].astype(np.uint16) * 257).save(path)
    elif fmt == "rgba":                                   # transparent margin: composited on white for the model
        rgba = np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])
        rgba[:, -3:, 3] = 0
        Image.fromarray(rgba, "RGBA").save(path)
    elif fmt == "palette":
        Image.fromarray(a).convert("P").save(path)
    elif fmt == "gray":
        Image.fromarray(a[..., 0]).save(path)
    else:
        save(path, a)
    dec = O.decode(path)
    assert dec.image.shape[-2:] == (56, 40) and dec.image.shape[0] in (3, 4)
    if fmt == "png16":
        assert dec.image.dtype == torch.uint16 and O.to_rgb8(dec.image).max() > 200   # scaled, not clipped
    res = O.orient_image(oracle, path)
    assert (res.turn, res.status) == (90, "rotated"), res


def test_model_is_used_as_is(tmp_path):
    """Prediction puts the model in eval mode only while predicting and never changes, moves or trains it."""
    net = NetworkInNetwork(3, 8, 3, 4).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    orienter = O.Orienter(net, (0.5,) * 3, (0.25,) * 3)
    orienter.predict(torch.from_numpy(upright()).permute(2, 0, 1))
    assert net.training
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())   # BN statistics included
    assert next(net.parameters()).device.type == "cpu"


def test_tta_is_equivariant():
    """With test-time augmentation the 4 turns of one image get the same answer, read in their own frame."""
    torch.manual_seed(0)
    orienter = O.Orienter(NetworkInNetwork(3, 8, 3, 4), (0.5,) * 3, (0.25,) * 3, tta=True)
    views = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    p = orienter.probabilities(views)
    for k in range(4):
        assert torch.allclose(orienter.probabilities(torch.rot90(views, k, (-2, -1))), torch.roll(p, k, 1), atol=1e-5)


def test_non_rotnet_models_are_refused(tmp_path):
    with pytest.raises(ValueError, match="4 rotations"):
        O.Orienter(NetworkInNetwork(3, 8, 3, 10), (0.5,) * 3, (0.25,) * 3)
    net = NetworkInNetwork(3, 8, 3, 4)
    from rotlib.checkpoints import architecture
    bad = tmp_path / "rotnet-8.pt"
    torch.save({"model": net.state_dict(), "arch": architecture(net), "config": {"kind": "rotnet", "rotations": "8"}},
               bad)
    with pytest.raises(ValueError, match="rotations='4'"):
        O.Orienter.from_file(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["orient", str(tmp_path), "--model", str(junk)]) == 2


# ---------------------------------------------------------------- EXIF
@pytest.mark.parametrize("orientation,stored_turn", [(6, 1), (8, 3), (3, 2)])
def test_exif_only_photo_is_not_rotated(oracle, tmp_path, orientation, stored_turn):
    """A phone photo stored sideways with an EXIF tag that puts it upright needs nothing."""
    path = jpeg_with_exif(tmp_path / "phone.jpg", turned(upright(48, 64), stored_turn), orientation)
    res = O.orient_image(oracle, path)
    assert res.exif_orientation == orientation
    assert (res.turn, res.status, res.size) == (0, "upright", (64, 48)), res


def test_exif_is_applied_before_predicting_and_baked_into_the_copy(oracle, tmp_path):
    """Stored upright but tagged "rotate 90° cw to display": as displayed, the sky is on the right."""
    src = tmp_path / "in"
    src.mkdir()
    jpeg_with_exif(src / "tagged.jpg", upright(48, 64), 6)
    res = O.orient_image(oracle, src / "tagged.jpg")
    assert (res.turn, res.size) == (270, (48, 64)), res
    out = tmp_path / "out"
    assert O.orient_paths(oracle, src, apply_to=out)[0].written
    with Image.open(out / "tagged.jpg") as im:
        assert im.getexif().get(O.EXIF_ORIENTATION, 1) == 1      # pixels carry the orientation now
        fixed = np.asarray(im.convert("RGB"))
    assert fixed.shape[:2] == (48, 64)
    assert fixed[:16].mean() > fixed[16:].mean() + 100             # sky on top
    assert O.orient_image(oracle, out / "tagged.jpg").turn == 0


# ---------------------------------------------------------------- applying the fix
def test_corrected_copies_are_upright_and_exact(oracle, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for k in range(4):
        save(src / f"t{k}.png", turned(upright(40, 56, seed=k), k))
    results = O.orient_paths(oracle, src, apply_to=out)
    assert [r.turn for r in results] == [0, 90, 180, 270]
    assert sorted(p.name for p in out.iterdir()) == ["t1.png", "t2.png", "t3.png"]   # upright ones need no copy
    for k in (1, 2, 3):
        written = np.asarray(Image.open(out / f"t{k}.png"))
        assert np.array_equal(written, upright(40, 56, seed=k))     # lossless: the original picture back
        assert O.orient_image(oracle, out / f"t{k}.png").status == "upright"


def test_originals_are_never_modified(oracle, photos, tmp_path):
    before = digest(photos)
    out = tmp_path / "out"
    assert O.orient_paths(oracle, photos)                                     # predict only
    O.orient_paths(oracle, photos, apply_to=out)
    O.orient_paths(oracle, photos, apply_to=out, overwrite=True)
    O.orient_paths(oracle, photos / "b_turned90.png", apply_to=out, overwrite=True)
    assert digest(photos) == before
    assert sorted(p.name for p in out.iterdir()) == ["b_turned90.png", "c_turned180.webp", "d_turned270.bmp"]


def test_cli_table_and_bad_files(photos, tmp_path, capsys, monkeypatch):
    """The whole folder through the CLI: every file gets a row; bad files are skipped with a reason, not fatal."""
    oracle_orienter = O.Orienter(SkyOracle(), (0.5,) * 3, (0.25,) * 3, name="sky-oracle")
    monkeypatch.setattr(O.Orienter, "from_file", classmethod(lambda cls, *a, **k: oracle_orienter))
    out = tmp_path / "out"
    assert main(["orient", str(photos), "--model", "oracle.pt", "--apply", str(out)]) == 0
    text = capsys.readouterr().out
    rows = {line.split()[0]: line for line in text.splitlines() if line.startswith(("a_", "b_", "c_", "d_", "e_",
                                                                                     "f_", "g_", "h_"))}
    assert len(rows) == 8
    assert "upright" in rows["a_upright.jpg"] and "upright" in rows["e_exif6_upright.jpg"]
    assert " 6 " in rows["e_exif6_upright.jpg"]                                   # the EXIF tag that was honoured
    assert "rotate 90° cw ->" in rows["b_turned90.png"] and "90° ccw" in rows["b_turned90.png"]
    assert "rotate 180° ->" in rows["c_turned180.webp"]
    assert "rotate 90° ccw ->" in rows["d_turned270.bmp"]
    assert "unsure" in rows["f_gray.png"] and "left alone" in rows["f_gray.png"]
    assert "skipped: corrupt or unsupported image" in rows["g_corrupt.jpg"]
    assert "skipped: not an image" in rows["h_notes.txt"]
    assert "8 files: 2 upright, 3 rotated (3 corrected copies written), 1 unsure (left alone), 2 skipped" in text


def test_min_confidence_leaves_unsure_images_alone(oracle, tmp_path):
    """Sky on top and on the left: 50/50 between upright and 90° ccw. Acted upon only below the threshold."""
    a = upright(48, 48)
    a[:, :16] = a[:16, :16].mean((0, 1))
    src = tmp_path / "in"
    src.mkdir()
    save(src / "corner.png", turned(a, 1))
    before = digest(src)
    res = O.orient_paths(oracle, src, min_confidence=0.6, apply_to=tmp_path / "out")[0]
    assert res.status == "unsure" and 0.4 < res.confidence < 0.6 and res.written is None
    assert not (tmp_path / "out" / "corner.png").exists()
    res = O.orient_paths(oracle, src, min_confidence=0.3, apply_to=tmp_path / "out")[0]
    assert res.status == "rotated" and res.written
    assert digest(src) == before


def test_output_folder_rules(oracle, photos, tmp_path, capsys):
    before = digest(photos)
    for same in (photos, photos / ".", photos / "sub" / ".."):
        with pytest.raises(ValueError, match="folder of the originals"):
            O.orient_paths(oracle, photos, apply_to=same)
    with pytest.raises(ValueError, match="folder of the originals"):
        O.orient_paths(oracle, photos / "b_turned90.png", apply_to=photos)
    assert digest(photos) == before
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_turned90.png").write_bytes(b"mine")
    res = {r.path: r for r in O.orient_paths(oracle, photos, apply_to=out)}
    assert (out / "b_turned90.png").read_bytes() == b"mine" and "--overwrite" in res["b_turned90.png"].message
    res = {r.path: r for r in O.orient_paths(oracle, photos, apply_to=out, overwrite=True)}
    assert res["b_turned90.png"].written and (out / "b_turned90.png").read_bytes() != b"mine"


def test_cli_refuses_output_in_place(photos, capsys):
    before = digest(photos)
    assert main(["orient", str(photos), "--apply", str(photos)]) == 2      # refused before any model is loaded
    assert "folder of the originals" in capsys.readouterr().err
    assert main(["orient", str(photos / "a_upright.jpg"), "--apply", str(photos) + "/"]) == 2
    assert digest(photos) == before


def test_recursive_mirrors_subfolders_and_skips_out(oracle, tmp_path):
    src = tmp_path / "in"
    (src / "2019").mkdir(parents=True)
    save(src / "2019" / "x.png", turned(upright(), 2))
    save(src / "y.png", turned(upright(), 1))
    out = src / "fixed"                                # inside the input: allowed, and never read back as input
    O.orient_paths(oracle, src, apply_to=out, recursive=True)
    results = O.orient_paths(oracle, src, apply_to=out, recursive=True)
    assert sorted(r.path for r in results) == ["2019/x.png", "y.png"]
    assert (out / "2019" / "x.png").exists() and (out / "y.png").exists()


# ---------------------------------------------------------------- evaluation, widget
def test_evaluation_on_known_turns(oracle):
    images = torch.stack([torch.from_numpy(upright(32, 32, seed=i)).permute(2, 0, 1) for i in range(6)])
    images[5] = 128                                                        # a featureless image: ambiguous
    ev = O.evaluate(oracle, images)
    assert len(ev.true) == 24 and ev.confusion().sum() == 24
    # the featureless image ties: argmax says "0°", right for its unturned copy only
    assert ev.per_turn() == {0: 100, 90: pytest.approx(500 / 6), 180: pytest.approx(500 / 6), 270: pytest.approx(500 / 6)}
    assert ev.confusion().diag().tolist() == [6, 5, 5, 5] and ev.confusion()[1:, 0].tolist() == [1, 1, 1]
    assert ev.accuracy == pytest.approx(100 * 21 / 24)
    rows = ev.coverage([0.25, 0.5, 0.9])
    assert rows[0]["coverage"] == 100 and rows[-1]["coverage"] == pytest.approx(100 * 20 / 24)
    assert rows[-1]["accuracy"] == 100
    assert ev.threshold_for(100)["coverage"] == pytest.approx(100 * 20 / 24)
    labels = torch.tensor([0, 0, 0, 0, 0, 1])
    assert ev.per_class(labels, ["sky", "gray"])["sky"] == 100
    assert set(ev.confident_mistakes()) <= set(torch.nonzero(ev.index == 5).flatten().tolist())


def test_notebook_8s_evaluation_is_read_back_from_the_cache(tiny, monkeypatch):
    """The tool's predictions on the test split are kept in the cache: the same evaluation read back (every
    probability), without predicting again (make test computes them, the browser test and a re-run read them)."""
    net = NetworkInNetwork(3, 16, 3, 4)
    test = O.evaluation.E.load_split(tiny, "test")
    orienter = O.Orienter(net, test.mean, test.std, 32)
    first = O.evaluation.cached_evaluation(orienter, tiny)
    fresh = O.evaluate(orienter, test.images)
    assert torch.equal(first.probabilities, fresh.probabilities) and torch.equal(first.true, fresh.true)
    assert torch.equal(first.index, fresh.index) and torch.equal(first.pred, fresh.pred)
    monkeypatch.setattr(O.evaluation, "evaluate", lambda *a, **k: pytest.fail("predicted again"))
    again = O.evaluation.cached_evaluation(orienter, tiny)
    assert torch.equal(again.probabilities, first.probabilities)
    with pytest.raises(pytest.fail.Exception, match="predicted again"):       # another orienter: its own entry
        O.evaluation.cached_evaluation(O.Orienter(net, test.mean, test.std, 32, tta=True), tiny)


def test_upload_widget(oracle):
    widget = O.OrientationWidget(oracle)
    buf = io.BytesIO()
    Image.fromarray(turned(upright(48, 64), 3)).save(buf, format="JPEG", quality=95)
    res = widget.predict_bytes(buf.getvalue(), "holiday.jpg")
    assert (res.turn, res.status, res.fix) == (270, "rotated", "rotate 90° ccw")
    assert res.corrected().shape == (3, 48, 64)
    widget._on_upload({"new": ({"name": "holiday.jpg", "content": memoryview(buf.getvalue())},)})
    assert widget.last.turn == 270 and widget.last.path == "holiday.jpg"
    fig = O.show_result(widget.last, oracle)
    assert len(fig.axes) == 4 and "rotate 90° ccw" in fig.axes[3].get_title()
    assert widget.update(b"garbage", "oops.jpg").status == "skipped"


def test_upload_bars_green_only_when_right_and_a_still(oracle):
    """The answer's bar: green if right, red if wrong, blue for an upload (truth unknown); the widget stores a still."""
    import base64
    from matplotlib.colors import to_hex
    green, red, blue, grey = (to_hex(c) for c in ("tab:green", "tab:red", "tab:blue", "tab:gray"))
    widget = O.OrientationWidget(oracle)
    still = widget.ui._repr_mimebundle_()                                    # before any picture: an invitation
    assert "application/vnd.jupyter.widget-view+json" in still and base64.b64decode(still["image/png"]) == widget.png()
    buf = io.BytesIO()
    Image.fromarray(turned(upright(48, 64), 3)).save(buf, format="PNG")
    res = widget.update(buf.getvalue(), "example.png", truth=270)                     # answer 90° cw (270)
    for truth, colour in [(270, green), (90, red), (None, blue)]:
        bars = O.show_result(res, oracle, truth=truth).axes[2]
        assert [to_hex(p.get_facecolor()) for p in bars.patches] == [grey, grey, grey, colour], truth
    assert "wrong, truly 90° ccw" in O.show_result(res, oracle, truth=90).axes[2].get_title()

    def colours(png):
        return {"#%02x%02x%02x" % c[1] for c in Image.open(io.BytesIO(png)).convert("RGB").getcolors(1 << 20)}

    assert widget.truth == 270 and {green} <= colours(widget.png()) - {red, blue}       # the still shows the example
    widget._on_upload({"new": ({"name": "mine.png", "content": memoryview(buf.getvalue())},)})
    assert widget.truth is None and {blue} <= colours(widget.png()) - {red, green}      # an upload: truth unknown


# ---------------------------------------------------------------- a real (tiny) RotNet, trained here
def test_tiny_rotnet_learns_which_way_is_up(tiny, tmp_path, capsys, monkeypatch):
    """A NIN trained in seconds on 32x32 images with a bright top (conftest) fixes larger, non-square photos;
    the CLI loads it from its cache file."""
    profile = tiny.replace(rotnet_epochs=2, batch_size=10, augment=False)     # 40 steps
    path = O.cached_rotnet_path(profile)
    assert not path.exists()
    orienter = O.Orienter.from_profile(profile)
    assert "not in the cache" in capsys.readouterr().out
    assert path.exists() and orienter.size == 32
    src = tmp_path / "in"
    src.mkdir()
    for k in range(4):
        for s in range(2):
            save(src / f"p{k}{s}.png", turned(cifar_like_photo(seed=10 * k + s), k))
    out = tmp_path / "out"
    assert main(["orient", str(src), "--model", str(path), "--apply", str(out), "--min-confidence", "0"]) == 0
    text = capsys.readouterr().out
    assert "8 files" in text
    results = O.orient_paths(O.Orienter.from_file(path), src)
    right = sum(r.turn == 90 * int(r.path[1]) for r in results)
    assert right >= 7, [(r.path, r.turn, r.confidence) for r in results]
    for r in results:                              # the copies of the images it got right are upright now
        if r.turn == 90 * int(r.path[1]) != 0:
            assert O.orient_image(orienter, out / r.path).turn == 0
    assert O.Orienter.from_profile(profile).name == orienter.name                  # loaded, not retrained
    assert "loaded" in capsys.readouterr().out
    # notebook 8's measurement: cached models only, numbers recorded like the rest of the series
    monkeypatch.setenv("ROTLIB_RESULTS", str(tmp_path / "results"))
    m = O.measure(profile.replace(seeds=(0,)))
    assert m["entries"]["orient.accuracy"]["value"] == pytest.approx(m["evaluations"][0].accuracy, abs=0.01)
    from rotlib.results import results_name
    assert (tmp_path / "results" / f"{results_name(profile.replace(seeds=(0,)))}.json").exists()
    with pytest.raises(FileNotFoundError, match="notebook 2"):
        O.measure(profile.replace(seeds=(7,)))                                  # never trains


# ---------------------------------------------------------------- guards
def test_model_modes_are_restored_module_by_module():
    """A model whose parts have different train/eval modes gets each part's own mode back after a prediction."""
    net = NetworkInNetwork(3, 8, 3, 4).train()
    frozen = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)][:2]
    for m in frozen:
        m.eval()
    before = [m.training for m in net.modules()]
    assert len(set(before)) == 2
    O.Orienter(net, (0.5,) * 3, (0.25,) * 3).predict(torch.from_numpy(upright()).permute(2, 0, 1))
    assert [m.training for m in net.modules()] == before


def test_cli_skips_images_over_the_pixel_limit(photos, tmp_path, capsys, monkeypatch):
    """A 30000x30000 PNG bomb is skipped from its header (the row says why and how to raise the limit);
    --max-pixels sets the limit."""
    from test_decoding import png_bomb
    png_bomb(photos / "i_bomb.png")
    oracle_orienter = O.Orienter(SkyOracle(), (0.5,) * 3, (0.25,) * 3, name="sky-oracle")
    monkeypatch.setattr(O.Orienter, "from_file", classmethod(lambda cls, *a, **k: oracle_orienter))
    assert main(["orient", str(photos), "--model", "oracle.pt"]) == 0
    text = capsys.readouterr().out
    row = next(line for line in text.splitlines() if line.startswith("i_bomb.png"))
    assert "skipped: too large" in row and "30000x30000" in row and "89,478,485" in row and "--max-pixels N" in row
    assert "9 files: 2 upright, 3 rotated" in text and "3 skipped" in text
    assert main(["orient", str(photos), "--model", "oracle.pt", "--max-pixels", "1000"]) == 0
    text = capsys.readouterr().out
    assert "9 files: 0 upright, 0 rotated (0 corrected copies written), 0 unsure (left alone), 9 skipped" in text
    assert main(["orient", str(photos), "--model", "oracle.pt", "--max-pixels", "-1"]) == 2


def test_symlink_loops_in_the_input_are_not_followed(oracle, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    save(src / "sub" / "x.png", turned(upright(), 1))
    (src / "sub" / "loop").symlink_to("..")
    (src / "self.png").symlink_to("self.png")
    results = O.orient_paths(oracle, src, recursive=True)
    assert [(r.path, r.turn) for r in results] == [("sub/x.png", 90)]


def test_a_failed_write_is_said_and_the_tool_exits_non_zero(photos, tmp_path, capsys, monkeypatch):
    """A read-only --apply folder and a full disk: each corrected copy says why it was not written, in words a
    user acts on, and the command exits non-zero (a script must not believe the photos were fixed)."""
    import errno
    import os
    from rotlib import files
    oracle_orienter = O.Orienter(SkyOracle(), (0.5,) * 3, (0.25,) * 3, name="sky-oracle")
    monkeypatch.setattr(O.Orienter, "from_file", classmethod(lambda cls, *a, **k: oracle_orienter))
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):                      # root ignores permissions: stand in the kernel's answer
            def refuse(image, path, *a, **k):
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            monkeypatch.setattr(Image.Image, "save", refuse)
        assert main(["orient", str(photos), "--model", "oracle.pt", "--apply", str(out)]) == 2
    finally:
        out.chmod(0o755)
    captured = capsys.readouterr()
    assert "3 rotated (0 corrected copies written, 3 failed)" in captured.out
    assert "choose a writable folder" in captured.out and "could not be written" in captured.err
    assert list(out.iterdir()) == []                     # nothing half-written
    monkeypatch.undo()
    monkeypatch.setattr(O.Orienter, "from_file", classmethod(lambda cls, *a, **k: oracle_orienter))

    def full(image, path, *a, **k):                      # the disk fills up during the write
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    monkeypatch.setattr(Image.Image, "save", full)
    out = tmp_path / "full"
    assert main(["orient", str(photos), "--model", "oracle.pt", "--apply", str(out)]) == 2
    text = capsys.readouterr().out
    assert "the disk is full" in text and "ROTLIB_CACHE" in text
    assert list(out.iterdir()) == []                     # the partial temporary file is gone
    # torch.save on a full disk raises a RuntimeError, not ENOSPC: the free space tells
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: type("usage", (), {"free": 1000})())
    with pytest.raises(files.WriteError, match="the disk is full .1,000 bytes free"):
        files.write_atomic(tmp_path / "ckpt.pt", lambda tmp: (_ for _ in ()).throw(RuntimeError("unexpected pos")))
    assert not (tmp_path / "ckpt.pt").exists()


# ---------------------------------------------------------------- the packaged model (no checkout needed)
def test_the_packaged_model_is_the_shipped_quick_rotnet_byte_for_byte():
    from rotlib.orient import packaged
    from rotlib.store import sha256
    source = packaged.source()
    assert source.parent.name == "models", f"{source}: the quick RotNet is not shipped"
    assert packaged.manifest()["of"] == source.stem, "refresh it: python -m rotlib.orient.packaged"
    assert sha256(packaged.weights()) == sha256(source) == packaged.manifest()["sha256"]
    assert packaged.WEIGHTS.stat().st_size < 5_000_000
    orienter = O.Orienter.packaged()
    assert (orienter.size, orienter.channels, orienter.mean) == (32, 3, tuple(float(m) for m in O.orienter._DATASET_STATS["cifar10-5k"][0]))


def test_a_damaged_packaged_model_is_refused_with_what_to_do(tmp_path, monkeypatch):
    from rotlib.orient import packaged
    bad = tmp_path / "upright.pt"
    bad.write_bytes(packaged.WEIGHTS.read_bytes()[:-10])
    monkeypatch.setattr(packaged, "WEIGHTS", bad)
    with pytest.raises(packaged.PackagedModelError, match="reinstall rotlib"):
        O.Orienter.packaged()
    monkeypatch.setattr(packaged, "MANIFEST", tmp_path / "missing.json")
    with pytest.raises(packaged.PackagedModelError, match="manifest .* missing or damaged"):
        O.Orienter.packaged()


def test_orient_uses_the_packaged_model_unless_a_model_or_profile_is_named(photos, monkeypatch, capsys):
    """No flags: the packaged RotNet (even with ROTLIB_PROFILE exported); --profile/--dataset: that profile's."""
    used, oracle = [], O.Orienter(SkyOracle(), (0.5,) * 3, (0.25,) * 3, name="sky-oracle")
    monkeypatch.setattr(O.Orienter, "packaged", classmethod(lambda cls, tta=False, device=None: used.append(
        ("packaged", device)) or oracle))
    monkeypatch.setattr(O.Orienter, "from_profile", classmethod(lambda cls, profile, tta=False: used.append(
        ("profile", profile.name)) or oracle))
    monkeypatch.setenv("ROTLIB_PROFILE", "quick")
    assert main(["orient", str(photos)]) == 0
    assert main(["orient", str(photos), "--device", "cpu"]) == 0
    assert main(["orient", str(photos), "--profile", "quick"]) == 0
    assert used == [("packaged", "auto"), ("packaged", "cpu"), ("profile", "quick")]
