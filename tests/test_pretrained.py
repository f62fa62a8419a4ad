"""Fine-tuning a pretrained backbone through scripts/fit.py, offline: local weights, torch.hub, clear errors."""

from pathlib import Path

import pytest
import torch
import torchvision

from tests.conftest import QUICK, assert_user_error, run_fit, run_script


def offline(tmp_path: Path) -> dict[str, str]:
    """Environment without a weights cache, where every download fails at once (a proxy on a closed port)."""
    proxy = "http://127.0.0.1:9"
    return {"TORCH_HOME": str(tmp_path / "torch"), "https_proxy": proxy, "HTTPS_PROXY": proxy, "no_proxy": ""}


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 state_dict file with its ImageNet head, as torchvision's weight files are (random values)."""
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_fine_tuning_resnet18_from_a_local_weights_file(image_root: Path, resnet18_file: Path, tmp_path: Path) -> None:
    model = ["--model", "Pretrained", "--model.weights", str(resnet18_file), "--model.input_size", "32"]
    data = ["--data", "ImageFolder", "--data.root", str(image_root)]
    epochs = [*QUICK, "--max_epochs", "2", "--data.batch_size", "8"]
    result = run_script("fit", *model, *data, *epochs, cwd=tmp_path, env=offline(tmp_path))
    assert result.returncode == 0, result.stderr
    last = tmp_path / "lightning_logs" / "imagefolder-pretrained-1" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=False)
    assert checkpoint["hyper_parameters"]["weights"] is None  # it reloads without the weights file
    # Epoch 0 trained the head (and BatchNorm) alone: its weight, then the biases and BatchNorm without weight
    # decay; BackboneFinetuning added the backbone's group at epoch 1.
    groups = checkpoint["optimizer_states"][0]["param_groups"]
    assert [len(group["params"]) for group in groups[:2]] == [1, 41]  # 20 BatchNorms' weights and biases, head bias
    assert groups[1]["weight_decay"] == 0 and groups[0]["weight_decay"] > 0
    assert len(groups) == 3 and len(groups[2]["params"]) == 20  # resnet18's 20 convolutions
    conv1 = torch.load(resnet18_file, weights_only=True)["conv1.weight"]
    assert not torch.equal(checkpoint["state_dict"]["backbone.conv1.weight"], conv1)
    result = run_script("predict", "--ckpt_path", str(last), str(image_root), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 24


def test_a_torch_hub_model_from_a_local_repository_trains_from_scratch(image_root: Path, tmp_path: Path) -> None:
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "hubconf.py").write_text("from torchvision.models import mobilenet_v3_small  # noqa: F401\n")
    model = ["--model", "Pretrained", "--model.hub", str(tmp_path / "hub"), "--model.backbone", "mobilenet_v3_small"]
    data = ["--data", "ImageFolder", "--data.root", str(image_root)]
    result = run_fit(
        *model,
        "--model.weights",
        "null",
        "--model.input_size",
        "32",
        *data,
        *QUICK,
        "--data.batch_size",
        "8",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Test accuracy:" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model.weights", "ResNet18_Weights.IMAGENET1K_V1"], "cannot download the weights ResNet18_Weights"),
        (["--model.hub", "pytorch/vision", "--model.weights", "null"], "cannot download the torch.hub model"),
        (["--model.weights", "ResNet18_Weights.NO_SUCH"], "unknown weights 'ResNet18_Weights.NO_SUCH' for resnet18"),
    ],
)
def test_weights_that_cannot_be_had_offline_end_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    result = run_script(
        "fit", "--model", "Pretrained", *args, "--data", "Digits", *QUICK, cwd=tmp_path, env=offline(tmp_path)
    )
    assert_user_error(result, message, "--model.weights null")
