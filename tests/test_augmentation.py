"""Training augmentations (each image drawn on its own, never in evaluation) and test-time augmentation."""

import types

import pytest
import torch
from torch.utils.data import TensorDataset

from datamodules import CIFAR10, MNIST, Digits, FashionMNIST
from datamodules.augment import AlternatingFlips, auto_augment, cutout, mix, random_crop_flip
from datamodules.batches import LoaderBatches, ShardedBatchSampler, TensorBatches, TensorImages
from models import CNN, Airbench94, ImageClassifier, ResNet9
from models.tta import tta_logits

N = 64


def same_images(dtype: torch.dtype) -> torch.Tensor:
    """N copies of one random 3x16x16 image: whatever differs between them after augmenting was drawn per image."""
    image = torch.randint(1, 256, (1, 3, 16, 16), dtype=torch.uint8)
    return image.expand(N, -1, -1, -1).clone().to(dtype)


def distinct(images: torch.Tensor) -> int:
    return len({image.numpy().tobytes() for image in images})


AUGMENTATIONS = {
    "crop_zeros": lambda x: random_crop_flip(x, 2, "zeros", torch.zeros(len(x), dtype=torch.bool)),
    "crop_reflect_flip": lambda x: random_crop_flip(x, 2, "reflect"),
    "cutout": lambda x: cutout(x, 4, 1.0),
    "randaugment": lambda x: auto_augment(x, "randaugment"),
    "trivialaugment": lambda x: auto_augment(x, "trivialaugment"),
}


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_image_is_drawn_on_its_own_keeps_shape_and_dtype_and_repeats_under_a_seed(
    name: str, dtype: torch.dtype
) -> None:
    images = same_images(dtype) / (255 if dtype.is_floating_point else 1)  # floats in [0, 1], as torchvision's
    augment = AUGMENTATIONS[name]
    torch.manual_seed(0)
    out = augment(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert distinct(out) >= 8, "one draw for the whole batch would leave every image the same"
    torch.manual_seed(0)
    assert torch.equal(augment(images), out)


def test_reflect_padding_mirrors_the_border_without_repeating_it() -> None:
    images = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4).expand(500, -1, -1, -1)
    padded = torch.nn.functional.pad(images[:1].float(), (2, 2, 2, 2), mode="reflect")[0].to(torch.uint8)
    crops = {padded[:, top : top + 4, left : left + 4].numpy().tobytes() for top in range(5) for left in range(5)}
    out = random_crop_flip(images, 2, "reflect", torch.zeros(500, dtype=torch.bool))
    seen = {image.numpy().tobytes() for image in out}
    assert seen == crops  # every shift of torch's reflect padding, and nothing else


def test_mixup_and_cutmix_weights_are_per_image_and_match_the_soft_targets() -> None:
    torch.manual_seed(0)
    images = torch.arange(N, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 16, 16).contiguous()
    labels = torch.arange(N) % 10
    for mixup_alpha, cutmix_alpha in ((1.0, 0.0), (0.0, 1.0)):
        mixed, targets = mix(images, labels, 10, mixup_alpha, cutmix_alpha, p=1.0, switch_p=0.5)
        assert mixed.shape == images.shape and targets.shape == (N, 10)
        assert torch.allclose(targets.sum(1), torch.ones(N))
        own = targets[torch.arange(N), labels]  # labels i and i-1 differ: the weight of the image itself
        # Image i is i everywhere and its partner i-1: the mean pixel gives the weight mixup or cutmix used.
        partner = images.roll(1, 0)
        weight = ((mixed - partner) / (images - partner).where(images != partner, 1)).mean((1, 2, 3))
        assert torch.allclose(own[1:], weight[1:], atol=1e-5)
        assert len(set(own.round(decimals=4).tolist())) > N // 2, "one weight per image, not one per batch"
    unchanged, hard = mix(images, labels, 10, 1.0, 1.0, p=0.0, switch_p=0.5)
    assert torch.equal(unchanged, images) and torch.equal(hard.argmax(1), labels)


def test_alternating_flip_flips_each_image_in_every_other_epoch_from_the_seed_alone() -> None:
    flips = AlternatingFlips(1000, seed=3)
    indices = torch.randperm(1000)[:200]
    first, second, third = (flips(indices, epoch) for epoch in range(3))
    assert 60 < int(first.sum()) < 140, "random in the first epoch"
    assert torch.equal(second, ~first) and torch.equal(third, first)
    assert torch.equal(AlternatingFlips(1000, seed=3)(indices, 1), second), "a resumed run flips the same"
    assert not torch.equal(AlternatingFlips(1000, seed=4)(indices, 0), first)


@pytest.mark.parametrize("loader", [TensorBatches, LoaderBatches])
def test_batches_know_the_sample_indices_of_the_batch_at_hand_also_after_resuming(loader: type) -> None:
    images, labels = torch.arange(50, dtype=torch.uint8).view(-1, 1, 1, 1), torch.arange(50)
    data = TensorImages(images, labels) if loader is TensorBatches else TensorDataset(images, labels)
    batches = loader(data, ShardedBatchSampler(50, 8, shuffle=True, seed=1))
    for batch in batches:
        assert torch.equal(batches.indices, batch[1])
    batches.load_state_dict({"epoch": 0, "taken": 3})  # a run resumed after its third batch
    assert [batch[1].tolist() for batch in batches] == [index.tolist() for index in batches.sampler.index_batches()]


def fake_trainer(training: bool) -> types.SimpleNamespace:
    return types.SimpleNamespace(training=training)


def test_datamodule_augments_training_batches_only_each_image_on_its_own_and_repeats_under_a_seed() -> None:
    options = {"augment": "crop", "cutout": 2, "auto_augment": "randaugment", "mixup_alpha": 0.4, "cutmix_alpha": 1.0}
    dm = Digits(**options)
    dm.setup("fit")
    images, labels = dm.train_set.images[:1].expand(N, -1, -1, -1), dm.train_set.labels[:1].expand(N)
    plain = dm.preprocess(images, train=False)
    dm.trainer = fake_trainer(training=False)
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(x, plain) and torch.equal(y, labels), "evaluation batches are never augmented"
    dm.trainer = fake_trainer(training=True)
    torch.manual_seed(5)
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert x.shape == plain.shape and x.dtype == torch.float32 and y.shape == (N, 10)
    assert distinct(x) > N // 2
    torch.manual_seed(5)
    again, soft = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(again, x) and torch.equal(soft, y)
    float_x, float_y = dm.on_after_batch_transfer((plain, labels), 0)  # float batches: augmented, not normalized
    assert float_x.dtype == torch.float32 and float_y.shape == (N, 10) and distinct(float_x) > N // 2


def test_presets_are_sized_to_the_images_and_the_old_augment_is_the_cifar_default() -> None:
    cifar = CIFAR10().augmentation
    assert (cifar.translate, cifar.padding_mode, cifar.flip) == (4, "zeros", "random")
    airbench = CIFAR10(augment="airbench", cutout=12).augmentation
    assert (airbench.translate, airbench.padding_mode, airbench.flip, airbench.cutout) == (
        2,
        "reflect",
        "alternating",
        12,
    )
    assert Digits(augment="crop").augmentation.translate == 1
    assert FashionMNIST(augment="crop_flip").augmentation.flip == "random"  # a mirrored shoe is still a shoe
    assert MNIST().augmentation.translate == 0


@pytest.mark.parametrize(
    ("module", "options", "message"),
    [
        (MNIST, {"augment": "crop_flip"}, "no flips"),
        (Digits, {"flip": "alternating"}, "no flips"),
        (CIFAR10, {"cutout_p": 1.5}, "cutout_p is a probability"),
        (CIFAR10, {"translate": -1}, "translate must be 0"),
        (CIFAR10, {"augment": "autumn"}, "unknown --data.augment"),
    ],
)
def test_bad_augmentations_are_refused_clearly(module: type, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        module(**options)


def test_flip_translate_tta_is_airbench_six_views_for_any_model_in_eval_mode_only() -> None:
    torch.manual_seed(0)
    model = CNN(10, (3, 16, 16), channels=(4, 8), hidden_size=16, tta="flip_translate").eval()
    x = torch.randn(5, 3, 16, 16)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    with torch.no_grad():

        def mirrored(view: torch.Tensor) -> torch.Tensor:
            return (model(view) + model(view.flip(-1))) / 2

        expected = mirrored(x) / 2 + (mirrored(padded[..., :16, :16]) + mirrored(padded[..., 2:, 2:])) / 4
        assert torch.allclose(model.tta_logits(x), expected, atol=1e-5)
        assert torch.allclose(model.predict_step(x, 0), expected.softmax(-1), atol=1e-5)
        assert torch.allclose(tta_logits(model, x, "flip"), mirrored(x), atol=1e-5)
    model.train()
    torch.manual_seed(1)
    plain = model(x)
    torch.manual_seed(1)
    assert torch.equal(model.tta_logits(x), plain)


def test_tta_is_refused_for_digits() -> None:
    model = CNN(10, (1, 8, 8), channels=(4,), tta="flip")
    model._trainer = types.SimpleNamespace(datamodule=Digits())
    with pytest.raises(ValueError, match="a mirror turns into other shapes"):
        model.setup("fit")


def test_the_models_that_flip_by_default_do_not_for_digits() -> None:
    """ResNet9 and Airbench94 stopped on Digits and MNIST with their own default tta; asked for, it is refused."""
    for model, flip_tta in (
        (ResNet9(10, (1, 8, 8), width=0.125), "flip"),
        (Airbench94(10, (1, 16, 16)), "flip_translate"),
    ):
        for data, expected in ((Digits(), "none"), (CIFAR10(), flip_tta)):
            model.tta = model.hparams.tta = None
            model._trainer = types.SimpleNamespace(datamodule=data)
            ImageClassifier.setup(model, "fit")  # (Airbench94's own also whitens from the data)
            assert model.tta == model.hparams.tta == expected  # the checkpoint keeps it for test.py and predict.py
    asked = ResNet9(10, (1, 8, 8), width=0.125, tta="flip")
    asked._trainer = types.SimpleNamespace(datamodule=Digits())
    with pytest.raises(ValueError, match="a mirror turns into other shapes"):
        asked.setup("fit")
