"""Image folders as people have them: symbolic links, GIFs, huge photos, tiny validation parts, read-only folders."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from datamodules import DataError, ImageFolder
from datamodules.image_folder import scan_images
from tests.conftest import QUICK, run_script
from tests.fake_data import write_image_folder

LATIN_1 = os.fsdecode(b"caf\xe9")  # a name that is not UTF-8, as Python reads it from the disk ("caf\udce9")
# A UTF-8 terminal that refuses what is not UTF-8, as most are (Python's UTF-8 mode would let it through).
STRICT_UTF8 = {"LC_ALL": "C.UTF-8", "PYTHONUTF8": "0"}


def test_fit_reads_each_image_once_gifs_too_sizes_by_the_median_and_keeps_an_unwritable_cache_in_memory(
    tmp_path: Path,
) -> None:
    """Also a class folder and a file whose names are not UTF-8: in metric names, figures and the image cache."""
    root = write_image_folder(tmp_path / "images", {"train": 8, "test": 2}, classes=("cat", "dog", LATIN_1))
    max((root / "train" / "dog").glob("*.png")).rename(root / "train" / "dog" / f"{LATIN_1}.png")
    cat = root / "train" / "cat"
    (cat / "self").symlink_to(".")  # every cat image again, in a loop
    (cat / "up").symlink_to("..")  # every dog and fox image as a cat
    (cat / "dog.png").symlink_to("../dog/8.png")  # a dog image as a cat
    for name in ("cat", "dog", LATIN_1):
        first = min((root / "train" / name).glob("*.png"))
        Image.open(first).save(first.with_suffix(".gif"))
    Image.new("RGB", (800, 600)).save(cat / "000.png")  # a large photo that sorts first
    (root / ".tensor_cache").write_text("")  # where the cache folder would go: as unwritable as a read-only folder
    args = ["--model", "CNN", "--data", "ImageFolder", "--data.root", str(root), *QUICK, "--data.batch_size", "8"]
    args += ["--data.val_size", "1"]
    result = run_script("fit", *args, cwd=tmp_path, env=STRICT_UTF8)
    assert result.returncode == 0, result.stderr
    tested = json.loads((tmp_path / "lightning_logs/imagefolder-cnn-1/test_metrics.json").read_text())
    assert {"test/class_acc/cat", "test/class_acc/caf\\xe9"} <= set(tested)
    # The 24 PNG files, 3 GIFs and the photo, decoded once though the cache cannot be written.
    assert result.stdout.count("Decoding the 28 images in") == 1, result.stdout
    assert result.stdout.count("Could not cache") == 1 and "give --data.cache_dir" in result.stdout
    assert "Left out 3 symbolic link(s) in" in result.stdout and "cat/dog.png, cat/self, cat/up" in result.stdout
    checkpoint = torch.load(tmp_path / "lightning_logs/imagefolder-cnn-1/checkpoints/last.ckpt", weights_only=False)
    assert checkpoint["ImageFolder"]["input_shape"] == [3, 12, 10]  # the median size, not the photo's
    assert "warning: --data.val_size 1 holds fewer images than the 3 classes" in result.stderr


def test_predict_reads_gifs_and_skips_links_out_and_images_over_the_pixel_limit(
    mnist_mlp: Path, mnist_pngs: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    first = sorted(mnist_pngs.rglob("*.png"))[0]
    shutil.copy(first, folder / "a.png")
    shutil.copy(first, folder / f"{LATIN_1}.png")
    Image.open(first).save(folder / "a.gif")
    Image.new("L", (64, 64)).save(folder / "scan.png")  # 4,096 pixels: over the limit of twice 1,000
    (folder / "self").symlink_to(".")
    out = tmp_path / "p.json"
    args = ["--ckpt_path", str(mnist_mlp), str(folder), "--json", str(out), "--csv", str(tmp_path / "p.csv")]
    result = run_script("predict", *args, cwd=tmp_path, env={"MAX_IMAGE_PIXELS": "1000", **STRICT_UTF8})
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert f"skipped {folder / 'scan.png'}: " in result.stderr and "exceeds limit of 2000 pixels" in result.stderr
    assert f"skipped {folder / 'self'}: a link to a folder outside its own" in result.stderr  # not "cannot read it"
    assert "3 image(s) classified, 2 skipped" in result.stderr
    gif, png, latin = json.loads(out.read_text())
    assert (png["file"], gif["file"], latin["file"]) == (
        str(folder / "a.png"),
        str(folder / "a.gif"),
        f"{folder}/caf\\xe9.png",
    )
    assert png["predictions"] == gif["predictions"] == latin["predictions"]  # the same grey pixels
    assert f"{folder}/caf\\xe9.png  " in result.stdout  # the table, in a terminal that takes only UTF-8
    assert len((tmp_path / "p.csv").read_text(encoding="utf-8").splitlines()) == 4  # a header and every image


def test_links_are_read_once_and_never_out_of_their_folder(tmp_path: Path) -> None:
    folder = write_image_folder(tmp_path, {"train": 2}, classes=("cat", "dog"))
    cat = folder / "train" / "cat"
    (cat / "sub").mkdir()
    (cat / "1.png").rename(cat / "sub" / "1.png")
    (cat / "a_link_to_sub").symlink_to("sub")  # sorts first, but the folder is read where it is
    (cat / "sub" / "back").symlink_to("..")
    (cat / "alias.png").symlink_to("0.png")
    (cat / "dog.png").symlink_to("../dog/2.png")
    (cat / "elsewhere.png").symlink_to(tmp_path / "train" / "dog" / "3.png")
    files, left_out = scan_images(cat, within=folder / "train")
    assert [path.relative_to(cat) for path in files] == [Path("0.png"), Path("sub/1.png")]
    assert sorted(str(path.relative_to(cat)) for path, _ in left_out) == [
        "a_link_to_sub",
        "alias.png",
        "dog.png",
        "elsewhere.png",
        "sub/back",
    ]
    # Without a split folder to stay in (predict.py, test.py --images), a link to a file elsewhere is read.
    assert Path(cat / "elsewhere.png") in scan_images(cat)[0]


def test_a_validation_fraction_holds_one_image_per_class_at_least(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {"train": 8, "test": 2})
    data = ImageFolder(str(root), val_size=0.1, num_workers=0)  # 0.1 of 24 images: 2, fewer than the 3 classes
    data.setup("fit")
    assert sorted(data.val_set.labels.tolist()) == [0, 1, 2]


def test_cache_dir_holds_the_cache_elsewhere(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 4, "test": 1})
    ImageFolder(str(root), in_memory=True, num_workers=0, cache_dir=str(tmp_path / "cache")).prepare_data()
    assert sorted(path.name.split("-")[0] for path in (tmp_path / "cache").iterdir()) == ["test", "train"]
    assert not (root / ".tensor_cache").exists()


def test_images_too_large_for_a_default_size_need_an_image_size(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, {"train": 2}, size=(8, 1100))
    with pytest.raises(DataError, match=r"are 8x1100 pixels \(the median of 6\), too large .* --data.image_size"):
        ImageFolder(str(root))
    assert ImageFolder(str(root), image_size=16).input_shape == (3, 16, 16)
