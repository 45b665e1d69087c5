"""The datasets of the tutorials as Paddle datasets: one registry record each (files, shape,
classes, normalisation, reader), the Kaggle-style CSVs, the official IDX files and CIFAR-10
archive, the notebook's 59k/1k train/validation split, and a fast whole-batch loader."""
from . import registry
from .arrays import (
    CLASS_NAMES, FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, ArrayDataset, BatchLoader, Cifar10,
    FashionMNISTCSV, FashionMNISTIDX, IDXDataset, MNISTIDX, class_names, mean_std, open_dataset, split_indices,
    train_val_split,
)
from .csv_format import CSVData, load_csv, parse_csv, write_csv
from .errors import DataError, DataFileNotFoundError
from .idx import SPECS, data_root, ensure_files, load_idx, read_idx, write_idx
from .registry import DataFile, DatasetInfo, get_dataset, list_datasets, register_dataset

__all__ = [
    "registry", "DataFile", "DatasetInfo", "get_dataset", "list_datasets", "register_dataset",
    "CLASS_NAMES", "Cifar10", "open_dataset", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "MNIST_MEAN", "MNIST_STD",
    "ArrayDataset", "BatchLoader", "FashionMNISTCSV", "FashionMNISTIDX", "IDXDataset", "MNISTIDX", "class_names",
    "mean_std", "split_indices", "train_val_split", "CSVData", "load_csv", "parse_csv", "write_csv", "DataError",
    "DataFileNotFoundError", "SPECS", "data_root", "ensure_files", "load_idx", "read_idx", "write_idx",
]
