"""Every dataset the project knows, one record each: files, shape, classes, normalisation, reader.

timm's ``pretrained_cfg`` and torchvision's ``Weights.meta`` keep what a consumer needs to know
about a model in one record; this is the same for data. The run config's choices, the input
contract, the image framing of ``predict``, the augmentation padding, the ETA's image counts and
the readers all look a dataset up here, so a new one is a record (and, if its format is new, a
reader module), not an edit in six places.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

PathLike = Union[str, Path]
Stat = Union[float, Tuple[float, ...]]


@dataclass(frozen=True)
class DataFile:
    """One official file: its name in ``DATA/<folder>/``, md5, where to fetch it, and what it holds."""

    name: str
    md5: str
    role: str  # train-images, train-labels, test-images, test-labels, archive, cube, ground-truth
    urls: Tuple[str, ...] = ()
    key: Optional[str] = None  # the variable inside a .mat file
    checked: str = ""  # where the md5 was cross-checked


def files_table(kind: Optional[str] = None) -> str:
    """A markdown table of every registered dataset's files (of ``kind`` if given): where each goes,
    its key, md5 and where that md5 was checked (``paddle-cnn datasets --markdown``)."""
    lines = ["| dataset | file | key | md5 | md5 checked against |", "|---|---|---|---|---|"]
    for name in list_datasets(kind):
        info = get_dataset(name)
        for f in info.files:
            lines.append(f"| {name} | `{info.folder}/{f.name}` | {f'`{f.key}`' if f.key else '-'} | {f.md5} | "
                         f"{f.checked or '-'} |")
    return "\n".join(lines)


@dataclass(frozen=True)
class DatasetInfo:
    """What every consumer reads about one dataset."""

    name: str  # as given to --dataset
    title: str
    kind: str  # "images" (a picture per sample) or "scene" (a hyperspectral cube: a labelled pixel per sample)
    shape: Tuple[int, ...]  # what a net sees by default: (C, H, W), or (C, bands, H, W) for a scene's windows
    classes: Dict[str, Tuple[str, ...]]  # by language: "en", and "zh" where the tutorials name them
    files: Tuple[DataFile, ...]
    load: Callable[..., tuple]  # (split, root, download, verify) -> arrays; see each reader
    sizes: Dict[str, int]  # samples per split of the official files ({"all": N} for a scene's labelled pixels)
    mean: Optional[Stat] = None  # normalisation 'NAME': (x / 255 - mean) / std; None: no statistics of its own
    std: Optional[Stat] = None
    colour: bool = False  # images are (H, W, 3) RGB rather than grey (H, W)
    framing: Optional[Tuple[int, int]] = None  # predict: (object box, canvas) a photo is framed into
    centre_by_mass: bool = False  # predict: centre the object by its mass (as MNIST was made), not its box
    augment_pad: int = 2  # flip-crop shifts by up to this many pixels
    homepage: str = ""
    notes: Dict[str, str] = field(default_factory=dict)
    folder_name: str = ""  # the sub-folder of the data root holding the files; "" is the dataset's name

    @property
    def folder(self) -> str:
        return self.folder_name or self.name

    @property
    def num_classes(self) -> int:
        return len(self.classes["en"])

    def file(self, role: str) -> DataFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(f"{self.name} has no {role!r} file")

    def class_names(self, lang: str = "en") -> Tuple[str, ...]:
        if lang not in self.classes:
            raise ValueError(f"lang must be one of {sorted(self.classes)}, got {lang!r}")
        return self.classes[lang]


_REGISTRY: Dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    if info.name in _REGISTRY:
        raise ValueError(f"dataset {info.name!r} is registered twice")
    if info.kind not in ("images", "scene"):
        raise ValueError(f"{info.name}: kind must be 'images' or 'scene', got {info.kind!r}")
    _REGISTRY[info.name] = info
    return info


def get_dataset(name: str) -> DatasetInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}") from None


def list_datasets(kind: Optional[str] = None) -> Tuple[str, ...]:
    return tuple(n for n, info in _REGISTRY.items() if kind is None or info.kind == kind)


def normalisations() -> Tuple[str, ...]:
    """The names ``normalize`` takes: 'unit' ([0, 1]) and every dataset with statistics of its own."""
    return ("unit",) + tuple(n for n, info in _REGISTRY.items() if info.mean is not None)


# -- the readers, imported when a dataset is read (they import this module for the records)

def _idx(name: str):
    def load(split: str, root: Optional[PathLike], download: bool = True, verify: bool = True):
        from . import idx

        return idx.load_idx(name, split, root, download_missing=download, verify=verify)
    return load


def _cifar10(split: str, root: Optional[PathLike], download: bool = True, verify: bool = True):
    from . import cifar

    return cifar.load_cifar10(split, root, download_missing=download, verify=verify)


def _scene(name: str):
    def load(split: str, root: Optional[PathLike], download: bool = True, verify: bool = True):
        from . import hyperspectral

        return hyperspectral.load_scene(name, root, download=download, verify=verify)
    return load


_FASHION_URL = "https://dataset.bj.bcebos.com/fashion_mnist/"
_MNIST_URL = "https://dataset.bj.bcebos.com/mnist/"
_EHU = "https://www.ehu.eus/ccwintco/uploads/"  # the Grupo de Inteligencia Computacional (UPV/EHU) page


def _idx_files(prefix: str, md5s: Tuple[str, str, str, str]) -> Tuple[DataFile, ...]:
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
    roles = ("train-images", "train-labels", "test-images", "test-labels")
    return tuple(DataFile(n, m, r, (prefix + n,)) for n, m, r in zip(names, md5s, roles))


# The IDX md5s and URLs are the ones paddle.vision.datasets.{MNIST,FashionMNIST} use.
FASHION_MNIST = register_dataset(DatasetInfo(
    name="fashion-mnist", title="Fashion-MNIST", kind="images", shape=(1, 28, 28),
    classes={"en": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                    "Ankle boot"),
             # The names the AI Studio Fashion-MNIST notebook prints.
             "zh": ("T恤", "裤子", "套衫", "裙子", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴")},
    files=_idx_files(_FASHION_URL, ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                                    "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")),
    load=_idx("fashion-mnist"), sizes={"train": 60000, "test": 10000},
    # Pixel mean and std of the 60k training images scaled to [0, 1]; pinned by a real-data test.
    mean=0.2860, std=0.3530, framing=(28, 28), homepage="https://github.com/zalandoresearch/fashion-mnist"))

MNIST = register_dataset(DatasetInfo(
    name="mnist", title="MNIST", kind="images", shape=(1, 28, 28),
    classes={"en": tuple(str(d) for d in range(10)), "zh": tuple(str(d) for d in range(10))},
    files=_idx_files(_MNIST_URL, ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                                  "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")),
    load=_idx("mnist"), sizes={"train": 60000, "test": 10000},
    mean=0.1307, std=0.3081, framing=(20, 28), centre_by_mass=True,  # digits: 20x20 in a 28x28 frame
    homepage="http://yann.lecun.com/exdb/mnist/"))

CIFAR10 = register_dataset(DatasetInfo(
    name="cifar10", title="CIFAR-10", kind="images", shape=(3, 32, 32),
    classes={"en": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
             "zh": ("飞机", "汽车", "鸟", "猫", "鹿", "狗", "青蛙", "马", "船", "卡车")},
    # The official archive; paddle.vision.datasets.Cifar10 checks the same md5.
    files=(DataFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "archive",
                    ("https://dataset.bj.bcebos.com/cifar/cifar-10-python.tar.gz",  # Paddle's mirror
                     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")),),  # the authors' copy
    load=_cifar10, sizes={"train": 50000, "test": 10000},
    # Per-channel (R, G, B) mean and std of the 50k training images scaled to [0, 1], the values widely
    # published for the official files (not recomputed here: these machines have no copy; the
    # 0.2023/0.1994/0.2010 also often quoted are not the std of the pixels).
    mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616), colour=True, augment_pad=4, folder_name="cifar-10",
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html"))

# The three scenes of the HybridSN paper. Their md5s agree across every public listing we could read;
# the ground truths were also hashed here from the copies in the official HybridSN repository.
_LISTS = "three public checksum lists (a download script and two documents)"
_HASHED = "hashed here from gokriznastic/HybridSN's data/ copy"
INDIAN_PINES = register_dataset(DatasetInfo(
    name="indian-pines", title="Indian Pines (AVIRIS)", kind="scene", shape=(1, 30, 25, 25),
    classes={"en": ("Alfalfa", "Corn-notill", "Corn-mintill", "Corn", "Grass-pasture", "Grass-trees",
                    "Grass-pasture-mowed", "Hay-windrowed", "Oats", "Soybean-notill", "Soybean-mintill",
                    "Soybean-clean", "Wheat", "Woods", "Buildings-Grass-Trees-Drives", "Stone-Steel-Towers")},
    files=(DataFile("Indian_pines_corrected.mat", "66dbc9f4a9b7c9b1445f60a87b505101", "cube",
                    (_EHU + "6/67/Indian_pines_corrected.mat",), key="indian_pines_corrected",
                    checked=_LISTS + " and a torchvision-style loader"),
           DataFile("Indian_pines_gt.mat", "9414943dac1d80faaa9165c8b460510c", "ground-truth",
                    (_EHU + "c/c4/Indian_pines_gt.mat",), key="indian_pines_gt",
                    checked=_LISTS + ", a torchvision-style loader; " + _HASHED)),
    load=_scene("indian-pines"), sizes={"all": 10249},
    homepage="https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes",
    notes={"size": "145 x 145 pixels, 200 bands (water absorption bands removed)"}))

PAVIA_UNIVERSITY = register_dataset(DatasetInfo(
    name="pavia-university", title="Pavia University (ROSIS)", kind="scene", shape=(1, 15, 25, 25),
    classes={"en": ("Asphalt", "Meadows", "Gravel", "Trees", "Painted metal sheets", "Bare Soil", "Bitumen",
                    "Self-Blocking Bricks", "Shadows")},
    files=(DataFile("PaviaU.mat", "165a3c7488995f54a19add47c7eed4cd", "cube", (_EHU + "e/ee/PaviaU.mat",),
                    key="paviaU", checked=_LISTS),
           DataFile("PaviaU_gt.mat", "b8c3ba44b077c26e24220463aa855bd3", "ground-truth",
                    (_EHU + "5/50/PaviaU_gt.mat",), key="paviaU_gt", checked=_LISTS + "; " + _HASHED)),
    load=_scene("pavia-university"), sizes={"all": 42776},
    homepage="https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes",
    notes={"size": "610 x 340 pixels, 103 bands"}))

SALINAS = register_dataset(DatasetInfo(
    name="salinas", title="Salinas (AVIRIS)", kind="scene", shape=(1, 15, 25, 25),
    classes={"en": ("Brocoli_green_weeds_1", "Brocoli_green_weeds_2", "Fallow", "Fallow_rough_plow",
                    "Fallow_smooth", "Stubble", "Celery", "Grapes_untrained", "Soil_vinyard_develop",
                    "Corn_senesced_green_weeds", "Lettuce_romaine_4wk", "Lettuce_romaine_5wk",
                    "Lettuce_romaine_6wk", "Lettuce_romaine_7wk", "Vinyard_untrained", "Vinyard_vertical_trellis")},
    files=(DataFile("Salinas_corrected.mat", "485d8802f4a6b4ebc0767d48dd0da06b", "cube",
                    (_EHU + "a/a3/Salinas_corrected.mat",), key="salinas_corrected", checked=_LISTS),
           DataFile("Salinas_gt.mat", "7b8da653a61bb0271b27b37fb926390f", "ground-truth",
                    (_EHU + "f/fa/Salinas_gt.mat",), key="salinas_gt", checked=_LISTS + "; " + _HASHED)),
    load=_scene("salinas"), sizes={"all": 54129},
    homepage="https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes",
    notes={"size": "512 x 217 pixels, 204 bands (water absorption bands removed)"}))
