"""The process a command runs in, set up once before anything is parsed: the user's modules importable, the
libraries' noise off, and NVIDIA's NVML left alone where there is no driver."""

import ctypes
import functools
import os
import signal
import sys
import threading
import warnings
from typing import Any

from docstring_parser import DocstringStyle
from jsonargparse import set_parsing_settings

from cli import interrupted_while_loading
from loggers.lightning_messages import STARTUP_NOISE, drop_lightning_messages

# Printed on every run by the libraries; nothing that a user of these commands can act on.
IGNORED_WARNINGS = (
    # Raised inside Lightning itself.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # cross_validate.py and search.py build the CLI from the part of the command line that is fit.py's.
    r"LightningCLI's args parameter is intended",
    # A run without a validation part (--data.val_size 0) gives Lightning an empty list of validation loaders.
    r"Total length of `list` across ranks is zero",
    # The summary's size in MB is that of float32 weights, which is what a checkpoint holds under mixed precision too.
    r"Precision \S+ is not supported by the model summary",
    # callbacks.StepLogInterval logs short epochs more often instead.
    r"The number of training batches \(\d+\) is smaller than the logging interval",
    # A resumed run's checkpoints folder holds its earlier checkpoints (a new run's folder is its own).
    r"Checkpoint directory .* exists and is not empty",
    # Under DDP, for the values computed from torchmetrics objects, which compute() has summed over the processes
    # already (ImageClassifier._log_class_metrics): sync_dist would only add a collective call per class.
    r"It is recommended to use `self.log\('(val_class_acc/|test/class_acc/|val/auroc|test/auroc)",
    # test.py and predict.py need none of the training's callbacks that a checkpoint names.
    r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided",
)


def skip_nvml_without_driver() -> None:
    """Stop ``torch.cuda.is_available()`` from looking for NVIDIA's NVML library where there is none.

    Lightning sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` on import, so that looking for a GPU does
    not initialize CUDA (which forked processes could not use). Where NVML's library cannot be
    loaded (no NVIDIA driver), torch falls back to the plain CUDA check anyway, but only after
    trying to load the library again on every call, and its optimizers make one call on every
    step: a step of the MNIST MLP took 17.7 ms with the variable and 15.8 ms without on a 2-core
    CPU. Without the library the answer is the same, so the variable goes.
    """
    if os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        ctypes.CDLL("libnvidia-ml.so.1")  # the name torch loads
    except OSError:
        del os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


def quiet_log_writer_errors(args: threading.ExceptHookArgs, report: Any = threading.__excepthook__) -> None:
    """Leave out the traceback of an OSError in TensorBoard's writer thread (a full or unwritable log disk): the
    writer raises it again in the training process, which reports it in one line; report any other."""
    if not (issubclass(args.exc_type, OSError) and type(args.thread).__name__ == "_AsyncWriterThread"):
        report(args)


def prepare_process() -> None:
    """Set up this process for a command of this project; every command calls it first."""
    # `--model my_file.MyNet` imports my_file.py from the folder the command is run in, as Python does for scripts.
    # The only change to sys.path in the project.
    if sys.path[:1] != [os.getcwd()]:
        sys.path.insert(0, os.getcwd())
    quiet_libraries()
    skip_nvml_without_driver()
    threading.excepthook = quiet_log_writer_errors
    if signal.getsignal(signal.SIGINT) is interrupted_while_loading:  # loaded: Ctrl-C as Python handles it
        signal.signal(signal.SIGINT, signal.default_int_handler)


@functools.cache
def quiet_libraries() -> None:
    """Set the libraries' warnings, messages and docstring parsing for this project, once per process."""
    for message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    # The docstrings of this project and Lightning are Google style: trying every style took a tenth of the start-up.
    set_parsing_settings(docstring_parse_style=DocstringStyle.GOOGLE)
    drop_lightning_messages(*STARTUP_NOISE)  # fit prints one line of what the run uses instead (describe_run)
