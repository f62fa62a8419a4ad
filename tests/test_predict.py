"""scripts/predict.py end to end: top-k tables and files, other image sizes and modes, unreadable files."""

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import assert_user_error, fit_accuracy, run_script


def test_predict_a_folder_writes_top_k_csv_and_json_and_skips_unreadable_files(
    mnist_mlp: Path,
    mnist_pngs: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.png").write_text("not an image")
    out_csv, out_json = tmp_path / "p.csv", tmp_path / "p.json"
    args = ["--top_k", "3", "--csv", str(out_csv), "--json", str(out_json)]
    result = run_script(
        "predict", "--ckpt_path", str(mnist_mlp), str(mnist_pngs), str(tmp_path / "broken.png"), *args, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "broken.png" in result.stderr and "Traceback" not in result.stderr
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 100 and len(result.stdout.splitlines()) == 100
    for row in rows:
        probabilities = [float(row[f"probability_{rank}"]) for rank in (1, 2, 3)]
        assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1 + 1e-5
    # The files lie in folders named after their class: top-1 agrees with them as often as the test accuracy says.
    agree = sum(row["class_1"] == Path(row["file"]).parent.name for row in rows) / len(rows)
    assert agree == fit_accuracy(mnist_mlp)
    predictions = json.loads(out_json.read_text())
    assert [(p["file"], p["predictions"][0]["class"]) for p in predictions] == [(r["file"], r["class_1"]) for r in rows]
    # Mirror images of a model trained on digits: refused, though image files say nothing of what they hold.
    flipped = run_script("predict", "--ckpt_path", str(mnist_mlp), str(mnist_pngs), "--tta", "flip", cwd=tmp_path)
    assert_user_error(flipped, "--tta flip averages over mirror images", "trained on MNIST")


def test_predict_converts_images_of_another_size_and_colour_mode(
    mnist_mlp: Path,
    mnist_pngs: Path,
    tmp_path: Path,
) -> None:
    sixteen_bits = set()  # every other image as a 16-bit copy, the same picture: it must be predicted the same
    for n, path in enumerate(sorted(mnist_pngs.rglob("*.png"))):
        with Image.open(path) as image:
            if n % 2:
                image.convert("RGB").resize((56, 56), Image.Resampling.NEAREST).save(tmp_path / f"{path.stem}.png")
            else:
                Image.fromarray(np.asarray(image, dtype=np.uint16) * 257).save(tmp_path / f"{path.stem}.png")
                sixteen_bits.add(path.stem)
    predicted = {}
    for name, folder in (("grey", mnist_pngs), ("converted", tmp_path)):
        out = tmp_path / f"{name}.json"
        result = run_script(
            "predict", "--ckpt_path", str(mnist_mlp), str(folder), "--quiet", "true", "--json", str(out), cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        predicted[name] = {Path(p["file"]).stem: p["predictions"][0] for p in json.loads(out.read_text())}
    grey, converted = predicted["grey"], predicted["converted"]
    assert len(converted) == len(grey) == 100
    assert all(converted[stem] == grey[stem] for stem in sixteen_bits)
    assert sum(converted[stem]["class"] == grey[stem]["class"] for stem in grey) >= 90
