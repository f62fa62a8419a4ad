"""The HPARAMS columns and hparams.yaml's content, in this process."""

import yaml

from callbacks.hparams import hparams_columns, own_arguments
from datamodules import Digits
from models import CNN, MLP


def hyperparameters(model: object, data: object) -> dict:
    """What ``run_hyperparameters`` returns for a run of ``model`` on ``data``, without a Trainer."""
    trainer = {"max_epochs": 3, "precision": "32-true", "accumulate_grad_batches": 1, "gradient_clip_val": None}
    return {
        "model": {"class": type(model).__name__, **own_arguments(model.hparams)},
        "data": {"class": type(data).__name__, **own_arguments(data.hparams)},
        "trainer": trainer,
        "seed": 42,
    }


def test_every_model_gets_the_same_columns_and_its_own_options_in_model_args() -> None:
    data = Digits(batch_size=32, num_workers=0)
    mlp = hyperparameters(MLP(10, (1, 8, 8), hidden_sizes=(64, 32)), data)
    cnn = hyperparameters(CNN(10, (1, 8, 8)), data)
    mlp_columns, cnn_columns = hparams_columns(mlp), hparams_columns(cnn)
    assert list(mlp_columns) == list(cnn_columns)  # same names, same order: no run drops out of a view
    assert (mlp_columns["model"], cnn_columns["model"]) == ("MLP", "CNN")
    assert "hidden_sizes=[64, 32]" in mlp_columns["model_args"] and "channels=" in cnn_columns["model_args"]
    assert mlp_columns["batch_size"] == "32" and mlp_columns["max_epochs"] == "3" and mlp_columns["lr"] == 0.001
    assert not {"num_workers", "pin_memory", "in_memory", "fold", "_class_path", "_instantiator"} & set(mlp_columns)
    # hparams.yaml's content is plain YAML: tuples are lists.
    assert yaml.safe_load(yaml.safe_dump(mlp))["model"]["hidden_sizes"] == [64, 32]
