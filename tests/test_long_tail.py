"""scripts/long_tail.py: a long-tailed image folder of links, as Cao et al. 2019 build CIFAR-10-LT."""

import os
from pathlib import Path

from datamodules import ImageFolder
from datamodules.long_tail import long_tailed_counts
from tests.conftest import assert_user_error, run_script
from tests.fake_data import write_image_folder


def test_cifar10_lt_counts_are_cao_et_al_s() -> None:
    counts = long_tailed_counts(5000, 10, 100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50] and sum(counts) == 12_406


def test_long_tail_links_the_first_images_of_each_class_and_keeps_test_whole(tmp_path: Path) -> None:
    source = write_image_folder(tmp_path / "balanced", {"train": 8, "test": 2})
    result = run_script("long_tail", str(source), "lt", "--ratio", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "lt/train: 14 images (cat 8, dog 4, fox 2)" in result.stdout, result.stdout
    assert "lt/test: 6 images (cat 2, dog 2, fox 2)" in result.stdout
    # The first files in name order, as hard links to the originals (no space taken, read by ImageFolder).
    kept = sorted(path.name for path in (tmp_path / "lt" / "train" / "dog").iterdir())
    assert kept == sorted(path.name for path in (source / "train" / "dog").iterdir())[:4]
    linked = tmp_path / "lt" / "train" / "dog" / kept[0]
    assert os.path.samefile(linked, source / "train" / "dog" / kept[0]) and not linked.is_symlink()
    data = ImageFolder(root=str(tmp_path / "lt"), val_size=0, num_workers=0)
    data.setup("fit")
    assert (len(data.train_set), len(data.test_set)) == (14, 6)

    assert_user_error(run_script("long_tail", str(source), "lt", cwd=tmp_path), "lt exists and is not empty")
    assert_user_error(run_script("long_tail", str(source), "lt2", "--ratio", "0.5", cwd=tmp_path), "at least 1")
    assert_user_error(run_script("long_tail", str(tmp_path), "lt3", cwd=tmp_path), "no image folder at")
