"""Image files of every bit depth and colour mode decode to the 8-bit pixels training uses, on every path."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import ExifTags, Image

from datamodules import DataError, ImageFiles, ImageFolder
from datamodules.image_folder import load_image

GREYS = np.array([[0, 1, 100, 127], [128, 200, 254, 255]], dtype=np.uint8)  # the 8-bit values each file holds


def palette_image() -> Image.Image:
    rgb = np.stack([GREYS, 255 - GREYS, GREYS // 2], axis=-1)
    return Image.fromarray(rgb).quantize(colors=8, method=Image.Quantize.MAXCOVERAGE)


def off_grid() -> np.ndarray:
    """16-bit values that round to ``GREYS`` without being multiples of 257."""
    return (GREYS.astype(np.int32) * 257 + 100).clip(max=65535).astype(np.uint16)


# (file name, the image written, the grey values it must decode to)
WRITTEN = {
    "16-bit PNG": ("a.png", lambda: Image.fromarray(GREYS.astype(np.uint16) * 257), GREYS),
    "16-bit TIFF": ("a.tif", lambda: Image.fromarray(GREYS.astype(np.uint16) * 257), GREYS),
    "32-bit integer TIFF": ("a.tif", lambda: Image.fromarray(GREYS.astype(np.int32) * 257), GREYS),
    "float TIFF": ("a.tif", lambda: Image.fromarray(GREYS.astype(np.float32) / 255), GREYS),
    "16-bit PNG, off the 8-bit grid": ("a.png", lambda: Image.fromarray(off_grid()), GREYS),
    "bilevel PNG": ("a.png", lambda: Image.fromarray(GREYS >= 128), np.where(GREYS >= 128, 255, 0)),
    "grey+alpha PNG, opaque": ("a.png", lambda: Image.fromarray(GREYS).convert("LA"), GREYS),
    # Fully transparent pixels are black whatever colour they hide; half transparent ones half as bright.
    "grey+alpha PNG, transparent": (
        "a.png",
        lambda: Image.merge("LA", [Image.fromarray(GREYS), Image.fromarray(np.full_like(GREYS, 0))]),
        np.zeros_like(GREYS),
    ),
    "RGBA PNG, half transparent": (
        "a.png",
        lambda: Image.merge("RGBA", [Image.fromarray(GREYS)] * 3 + [Image.fromarray(np.full_like(GREYS, 128))]),
        np.rint(GREYS.astype(float) * 128 / 255),
    ),
}


@pytest.mark.parametrize("case", list(WRITTEN))
def test_each_mode_decodes_to_its_8_bit_values(tmp_path: Path, case: str) -> None:
    name, make, expected = WRITTEN[case]
    make().save(tmp_path / name)
    decoded = np.asarray(load_image(str(tmp_path / name), "L"), dtype=np.int32)
    assert np.abs(decoded - expected).max() <= 1, (Image.open(tmp_path / name).mode, decoded)
    rgb = np.asarray(load_image(str(tmp_path / name), "RGB"), dtype=np.int32)
    assert rgb.shape == (*GREYS.shape, 3) and np.abs(rgb - expected[..., None]).max() <= 1


def test_palette_image_decodes_to_its_colours(tmp_path: Path) -> None:
    image = palette_image()
    image.save(tmp_path / "p.png")
    assert Image.open(tmp_path / "p.png").mode == "P"
    assert np.array_equal(np.asarray(load_image(str(tmp_path / "p.png"), "RGB")), np.asarray(image.convert("RGB")))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.full((2, 2), 2.0, dtype=np.float32), "(F mode) holds values from 2 to 2, outside 0 to 1"),
        (np.full((2, 2), 70_000, dtype=np.int32), "(I mode) holds values from 70000 to 70000, outside 0 to 65535"),
    ],
    ids=["float above 1", "32-bit above 16 bits"],
)
def test_values_out_of_the_modes_range_are_an_error_not_clipped(tmp_path: Path, values: np.ndarray, message: str):
    Image.fromarray(values).save(tmp_path / "a.tif")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_image(str(tmp_path / "a.tif"), "L")


def saved_as(pixels: np.ndarray, kind: str, path: Path) -> None:
    """8-bit grey ``pixels`` saved at ``path`` as ``kind``: as they are ("8-bit"), as 16-bit values, or stored
    rotated with the EXIF orientation tag that turns them upright again, as phones store photos."""
    if kind == "16-bit":
        Image.fromarray(pixels.astype(np.uint16) * 257).save(path)
    elif kind == "EXIF-rotated":
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to show"
        Image.fromarray(pixels).rotate(90, expand=True).save(path, exif=exif)
    else:
        Image.fromarray(pixels).save(path)


def write_pair(root: Path, kind: str) -> None:
    """root/train/<class>/<n>.png: the same two images per class, saved as ``kind`` (see ``saved_as``)."""
    for label, name in enumerate(("dark", "light")):
        (root / "train" / name).mkdir(parents=True)
        for n in range(2):
            saved_as((GREYS // (2 - label) + n).astype(np.uint8), kind, root / "train" / name / f"{n}.png")


@pytest.mark.parametrize("kind", ["16-bit", "EXIF-rotated"])
@pytest.mark.parametrize("in_memory", [True, False])
def test_copies_train_cache_and_predict_as_their_8_bit_originals(tmp_path: Path, in_memory: bool, kind: str) -> None:
    loaded = {}
    for copy in ("8-bit", kind):
        write_pair(tmp_path / copy, copy)
        data = ImageFolder(str(tmp_path / copy), in_memory=in_memory, val_size=1, test_size=1, num_workers=0)
        data.prepare_data()  # decodes into the cache when in memory
        data.setup("fit")
        train = torch.stack([data.train_set[i][0] for i in range(len(data.train_set))])
        files = ImageFiles([str(tmp_path / copy / "train")], ["dark", "light"], data.input_shape, [0.5], [0.5])
        files.setup("predict")  # what predict.py and test.py --images read
        loaded[copy] = (data.input_shape, train, files.test_set.images)
    assert loaded[kind][0] == loaded["8-bit"][0] == (1, *GREYS.shape)  # the default size is the upright one
    assert torch.equal(loaded["8-bit"][1], loaded[kind][1]) and torch.equal(loaded["8-bit"][2], loaded[kind][2])
    assert loaded[kind][2].max() > 200  # not all clipped to white, not all black


def test_the_first_frame_of_an_animated_gif_is_read(tmp_path: Path) -> None:
    frames = [Image.fromarray(GREYS), Image.fromarray(255 - GREYS)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    assert np.array_equal(np.asarray(load_image(str(tmp_path / "a.gif"), "L")), GREYS)


def test_an_image_over_the_pixel_limit_is_one_error_that_says_how_to_allow_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    Image.new("L", (8, 8)).save(tmp_path / "a.png")  # 64 pixels, over PIL's refusal at twice the limit
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "10")
    with pytest.raises(DataError, match=r"a.png \(Image size \(64 pixels\) exceeds limit .*: shrink it, or raise"):
        load_image(str(tmp_path / "a.png"), "L")
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "0")  # no limit
    assert load_image(str(tmp_path / "a.png"), "L").size == (8, 8)
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "many")
    with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS=many: give a number of pixels, or 0 for no limit"):
        load_image(str(tmp_path / "a.png"), "L")
