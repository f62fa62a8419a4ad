"""Every command after training on a checkpoint of every model class the project ships, and of a user's own model.

Each command either works or refuses in one line (CommandError): quantize.py's static and qat methods
refuse Airbench94. The commands run in this process (their ``main`` would parse ``sys.argv``), on
checkpoints trained by scripts/fit.py in a subprocess on a tiny image folder.
"""

import textwrap
from pathlib import Path

import pytest
import torch

from cli.commands import test as test_command
from cli.commands.calibrate import calibrate
from cli.commands.export import export_checkpoint
from cli.commands.predict import predict_images
from cli.commands.quantize import NOT_STATIC, quantize_checkpoint
from cli.errors import CommandError
from tests.conftest import QUICK, run_fit
from tests.fake_data import write_image_folder

TINY_NET = """
import math
from torch import nn
from models import ImageClassifier

class TinyNet(ImageClassifier):
    def __init__(self, num_classes: int, input_shape: tuple[int, int, int], width: int = 16, **kwargs):
        super().__init__(num_classes, input_shape, **kwargs)
        layers = [nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(), nn.Linear(width, num_classes)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)
"""

MODELS = {
    "MLP": ["--model", "MLP", "--model.hidden_sizes", "[16]"],
    "CNN": ["--model", "CNN", "--model.channels", "[4,8]", "--model.hidden_size", "16"],
    "ResNet9": ["--model", "ResNet9", "--model.width", "0.125"],
    "Airbench94": ["--model", "Airbench94", "--model.widths", "[8,8,8]", "--model.whiten_images", "20"],
    "Pretrained": ["--model", "Pretrained", "--model.input_size", "16"],  # weights given in the test
    "TinyNet": ["--model", "my_nets.TinyNet", "--model.width", "8"],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_command_after_training_takes_every_model(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "images", {"train": 10, "test": 2}, size=(16, 16))
    (tmp_path / "my_nets.py").write_text(textwrap.dedent(TINY_NET))
    model = MODELS[name]
    if name == "Pretrained":  # offline: a local weights file in torchvision's layout (random values)
        import torchvision

        torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
        model = [*model, "--model.weights", str(tmp_path / "resnet18.pth")]
    data = ["--data", "ImageFolder", "--data.root", str(root), "--data.val_size", "6"]
    result = run_fit(*model, *data, *QUICK, "--data.batch_size", "8", "--calibrate", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = next((tmp_path / "lightning_logs").iterdir())
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # my_nets.py, as the commands find it in the folder they run in

    checkpoint = ["--ckpt_path", str(run)]  # the run: its calibrated best checkpoint
    test_command.test_checkpoint([*checkpoint, "--json", "metrics.json"])
    predict_images([*checkpoint, str(root / "test"), "--quiet", "true"])
    export_checkpoint([*checkpoint, "--formats", "state_dict", "torchscript", "--output_dir", "exported"])
    calibrate([str(run)])
    for method in ("dynamic", "static", "qat"):
        args = [*checkpoint, "--method", method, "--latency_runs", "2", "--calibration_batches", "2"]
        if method != "dynamic" and name in NOT_STATIC:
            with pytest.raises(CommandError, match=f"--method {method} cannot quantize {name}"):
                quantize_checkpoint(args)
        else:
            quantize_checkpoint([*args, "--qat_batches", "2"])
    printed = capsys.readouterr().out
    assert printed.count("int8 dynamic") >= 2 and "state_dict " in printed and "Temperature:" in printed
