"""Datasets of vision/: folder, ImageNet-V2 and CIFAR errors, the built-in digits and procedural data, class counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from trainkit.data import DataSource
from trainkit.data.digits import SPLIT_SIZES
from trainkit.data.procedural import _place_pairs
from vision.config import DataConfig
from vision.data import (
    PROCEDURAL_CLASSES,
    CheckedImageFolder,
    DataError,
    ImageNetV2Folder,
    build_dataset,
    check_num_classes,
    cifar_dataset,
    digits_dataset,
    parse_data_spec,
    procedural_dataset,
    render_procedural,
)
from vision.data.build import check_same_classes


def _write_image(path: Path, value: int = 128, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (value, value, value)).save(path)
    return path


def _make_split(root: Path, classes: dict[str, int]) -> None:
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            _write_image(root / name / f"{name}_{i}.png", value=20 * i)


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    _make_split(tmp_path / "train", {"cat": 3, "dog": 3})
    _make_split(tmp_path / "val", {"cat": 2, "dog": 2})
    return tmp_path


def test_folder_dataset_reads_both_splits(image_root: Path) -> None:
    data = DataConfig(dataset=f"folder:{image_root}")
    train, val = build_dataset(data, "train"), build_dataset(data, "val")
    assert (len(train), len(val)) == (6, 4)
    assert train.classes == ["cat", "dog"]
    image, target = train[5]
    assert image.size == (8, 8) and target == 1


def test_missing_data_folder_names_it_and_the_layout(tmp_path: Path) -> None:
    missing = tmp_path / "imagenet"
    with pytest.raises(DataError, match=r"data folder not found: .*imagenet.*train/<class>/<image>"):
        build_dataset(DataConfig(dataset=f"folder:{missing}"), "train")


def test_missing_split_folder_is_named(image_root: Path) -> None:
    (image_root / "val" / "cat").rename(image_root / "cat_moved")
    (image_root / "val" / "dog").rename(image_root / "dog_moved")
    (image_root / "val").rmdir()
    with pytest.raises(DataError, match=r"has no val/ folder"):
        build_dataset(DataConfig(dataset=f"folder:{image_root}"), "val")


def test_folder_without_class_folders_is_refused(tmp_path: Path) -> None:
    _write_image(tmp_path / "train" / "loose.png")
    with pytest.raises(DataError, match="no class folders in"):
        build_dataset(DataConfig(dataset=f"folder:{tmp_path}"), "train")


def test_empty_class_folder_is_named(image_root: Path) -> None:
    (image_root / "train" / "emu").mkdir()
    (image_root / "train" / "emu" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"empty class folder.*train/emu"):
        build_dataset(DataConfig(dataset=f"folder:{image_root}"), "train")


def _corrupt(image_root: Path) -> tuple[Path, Path]:
    garbage = image_root / "train" / "cat" / "cat_garbage.jpg"
    garbage.write_bytes(b"this is not a jpeg")
    good = (image_root / "train" / "dog" / "dog_0.png").read_bytes()
    truncated = image_root / "train" / "dog" / "dog_truncated.png"
    truncated.write_bytes(good[: len(good) // 2])
    return garbage, truncated


def test_corrupt_image_error_names_the_file(image_root: Path) -> None:
    garbage, _ = _corrupt(image_root)
    dataset = build_dataset(DataConfig(dataset=f"folder:{image_root}"), "train")
    index = [p for p, _ in dataset.samples].index(str(garbage))
    with pytest.raises(DataError, match=rf"cannot read image {garbage}.*skip_corrupt_images"):
        dataset[index]


def test_truncated_image_error_names_the_file(image_root: Path) -> None:
    _, truncated = _corrupt(image_root)
    dataset = CheckedImageFolder(image_root / "train")
    index = [p for p, _ in dataset.samples].index(str(truncated))
    with pytest.raises(DataError, match=str(truncated)):
        dataset[index]


def test_skip_corrupt_counts_files_across_worker_processes(image_root: Path) -> None:
    garbage, truncated = _corrupt(image_root)
    data = DataConfig(dataset=f"folder:{image_root}", skip_corrupt_images=True)
    train = build_dataset(data, "train", transform=lambda im: np.asarray(im).mean())
    loader = DataLoader(train, batch_size=2, num_workers=2)
    targets = [int(t) for _, batch in loader for t in batch]
    assert len(targets) == len(train) == 8  # corrupt files are replaced by a readable neighbour
    assert sorted(train.corrupt_files()) == sorted([str(garbage), str(truncated)])


def test_skip_corrupt_marks_val_images_with_target_minus_one(image_root: Path) -> None:
    bad = image_root / "val" / "dog" / "dog_bad.png"
    bad.write_bytes(b"\x89PNG broken")
    data = DataConfig(dataset=f"folder:{image_root}", skip_corrupt_images=True)
    val = build_dataset(data, "val")
    targets = [val[i][1] for i in range(len(val))]
    assert targets.count(-1) == 1 and val.corrupt_files() == [str(bad)]


def test_imagenetv2_maps_folder_names_as_integers(tmp_path: Path) -> None:
    for index in range(12):  # sorted as strings, "10" would come right after "1"
        _write_image(tmp_path / str(index) / f"img{index}.jpeg")
    dataset = ImageNetV2Folder(tmp_path)
    by_folder = {Path(path).parent.name: target for path, target in dataset.samples}
    assert by_folder == {str(i): i for i in range(12)}
    assert dataset.classes[10] == "10" and dataset.class_to_idx["2"] == 2


def test_imagenetv2_refuses_wnid_folders_and_training(tmp_path: Path) -> None:
    _write_image(tmp_path / "n01440764" / "a.png")
    with pytest.raises(DataError, match="named by class index"):
        ImageNetV2Folder(tmp_path)
    with pytest.raises(DataError, match="test set only"):
        build_dataset(DataConfig(dataset=f"imagenetv2:{tmp_path}"), "train")


def test_cifar_missing_files_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar10 not found: .*cifar-10-batches-py lacks data_batch_1.*extract"):
        build_dataset(DataConfig(dataset=f"cifar10:{tmp_path}"), "train")
    inner = tmp_path / "cifar-100-python"
    inner.mkdir()
    with pytest.raises(DataError, match="pass the parent folder"):
        cifar_dataset("cifar100", inner, "val")


def test_cifar_files_failing_the_checksum_are_reported(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test", "meta"):
        (folder / name).write_bytes(b"truncated")
    with pytest.raises(DataError, match="checksum"):
        cifar_dataset("cifar100", tmp_path, "train")


def test_digits_split_is_fixed_stratified_and_of_documented_size() -> None:
    train, val = digits_dataset("train", size=32), digits_dataset("val", size=32)
    assert (len(train), len(val)) == (SPLIT_SIZES["train"], SPLIT_SIZES["val"])
    assert np.bincount(val.targets).min() >= 35  # about 20% of each class of ~180
    again = digits_dataset("val", size=32)
    assert np.array_equal(again.images, val.images) and again.targets == val.targets
    assert not (train.images == val.images[0]).all(axis=(1, 2, 3)).any()
    image, _ = digits_dataset("train", size=24, channels=1)[0]
    assert image.mode == "L" and image.size == (24, 24)
    assert train[0][0].mode == "RGB" and train[0][0].size == (32, 32)


def test_procedural_is_deterministic_by_seed_and_sized_as_configured() -> None:
    a = procedural_dataset("train", train_size=300, val_size=100, size=32, seed=7)
    b = procedural_dataset("train", train_size=300, val_size=100, size=32, seed=7)
    c = procedural_dataset("train", train_size=300, val_size=100, size=32, seed=8)
    val = procedural_dataset("val", train_size=300, val_size=100, size=32, seed=7)
    assert len(a) == 300 and len(val) == 100 and a.images.shape == (300, 32, 32, 3)
    assert np.array_equal(a.images, b.images) and a.targets == b.targets
    assert not np.array_equal(a.images, c.images)
    assert not np.array_equal(a.images[:100], val.images)
    assert len(PROCEDURAL_CLASSES) >= 10 and a.classes == PROCEDURAL_CLASSES
    assert set(a.targets) == set(range(len(PROCEDURAL_CLASSES)))
    grey, _ = render_procedural(50, size=48, seed=1, channels=1)
    assert grey.shape == (50, 48, 48, 1)


def test_procedural_geometry_matches_the_relation_labels() -> None:
    relation = np.repeat(np.arange(3), 400)  # above, below, beside
    geo = _place_pairs(np.random.default_rng(0), relation, 32)
    dx, dy = geo["xb"] - geo["xa"], geo["yb"] - geo["ya"]  # image rows grow downwards
    tan20 = np.tan(np.deg2rad(20.0)) + 1e-9
    above, below, beside = relation == 0, relation == 1, relation == 2
    assert (dy[above] < 0).all() and (np.abs(dx[above]) <= tan20 * np.abs(dy[above])).all()
    assert (dy[below] > 0).all() and (np.abs(dx[below]) <= tan20 * np.abs(dy[below])).all()
    assert (np.abs(dy[beside]) <= tan20 * np.abs(dx[beside])).all()
    assert 0.3 < (dx[beside] > 0).mean() < 0.7  # left and right both occur: a horizontal flip keeps the class
    for x, y, r in (("xa", "ya", "ra"), ("xb", "yb", "rb")):  # both shapes fully inside the image
        assert (geo[x] - geo[r] >= 1 - 1e-6).all() and (geo[x] + geo[r] <= 31 + 1e-6).all()
        assert (geo[y] - geo[r] >= 1 - 1e-6).all() and (geo[y] + geo[r] <= 31 + 1e-6).all()
    assert (np.hypot(dx, dy) > geo["ra"] + geo["rb"]).all()  # never touching


def test_class_count_mismatch_names_both_numbers(image_root: Path) -> None:
    with pytest.raises(DataError, match=r"says 5 classes but the data has 2"):
        build_dataset(DataConfig(dataset=f"folder:{image_root}", num_classes=5), "train")
    with pytest.raises(DataError, match=r"says 100 classes but the data has 10"):
        check_num_classes(100, digits_dataset("val"), "model.num_classes")


def test_train_and_val_with_different_classes_are_refused(image_root: Path) -> None:
    _make_split(image_root / "train", {"emu": 1})
    data = DataConfig(dataset=f"folder:{image_root}")
    with pytest.raises(DataError, match=r"only in train: \['emu'\]"):
        check_same_classes(build_dataset(data, "train"), build_dataset(data, "val"))


def test_parse_data_spec() -> None:
    assert parse_data_spec("imagenet:/data/in1k").source == DataSource("folder", "/data/in1k", "imagenet:/data/in1k")
    assert parse_data_spec("procedural", builtin_size=48).builtin_size == 48
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        parse_data_spec("mnist:/x")
    with pytest.raises(DataError, match="cifar10:ROOT"):
        parse_data_spec("cifar10")
