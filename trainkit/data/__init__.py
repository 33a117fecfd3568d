"""Image datasets shared by vision and DINO, and the one data grammar that names them (``trainkit.data.spec``).

``parse_data(spec)`` reads ``digits``, ``procedural``, ``folder:ROOT`` / ``imagenet:ROOT``, ``imagenetv2:ROOT``,
``cifar10:ROOT`` or ``cifar100:ROOT``; ``build_image_dataset(source, split, transform)`` returns that split with a
``classes`` list. Errors are ``DataError`` (one line naming the folder or file and the fix). torchvision, PIL and
scikit-learn are needed here, so ``import trainkit`` does not import this package.
"""

from .build import BuiltinOptions, build_image_dataset, check_num_classes, check_same_classes, dataset_channels
from .cifar import cifar_dataset
from .digits import DIGIT_CLASSES, digits_dataset
from .errors import DataError, DataSpecError
from .folders import SKIP_OPTION, CheckedImageFolder, ImageNetV2Folder
from .procedural import PROCEDURAL_CLASSES, procedural_dataset, render_procedural
from .spec import GRAMMAR, DataSource, parse_data

__all__ = [
    "DIGIT_CLASSES",
    "GRAMMAR",
    "PROCEDURAL_CLASSES",
    "SKIP_OPTION",
    "BuiltinOptions",
    "CheckedImageFolder",
    "DataError",
    "DataSource",
    "DataSpecError",
    "ImageNetV2Folder",
    "build_image_dataset",
    "check_num_classes",
    "check_same_classes",
    "cifar_dataset",
    "dataset_channels",
    "digits_dataset",
    "parse_data",
    "procedural_dataset",
    "render_procedural",
]
