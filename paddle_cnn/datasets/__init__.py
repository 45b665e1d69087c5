"""Fashion-MNIST, MNIST and CIFAR-10 as Paddle datasets: the Kaggle-style CSVs, the official IDX
files and CIFAR-10 archive, the notebook's 59k/1k train/validation split, and a fast whole-batch loader."""
from .arrays import (
    CLASS_NAMES, Cifar10, open_dataset, FASHION_MNIST_MEAN, FASHION_MNIST_STD, MNIST_MEAN, MNIST_STD, ArrayDataset, BatchLoader,
    FashionMNISTCSV, FashionMNISTIDX, IDXDataset, MNISTIDX, class_names, mean_std, split_indices, train_val_split,
)
from .csv_format import CSVData, load_csv, parse_csv, write_csv
from .errors import DataError, DataFileNotFoundError
from .idx import SPECS, data_root, ensure_files, load_idx, read_idx, write_idx

__all__ = [
    "CLASS_NAMES", "Cifar10", "open_dataset", "FASHION_MNIST_MEAN", "FASHION_MNIST_STD", "MNIST_MEAN", "MNIST_STD", "ArrayDataset",
    "BatchLoader", "FashionMNISTCSV", "FashionMNISTIDX", "IDXDataset", "MNISTIDX", "class_names", "mean_std",
    "split_indices", "train_val_split", "CSVData", "load_csv", "parse_csv", "write_csv", "DataError",
    "DataFileNotFoundError", "SPECS", "data_root", "ensure_files", "load_idx", "read_idx", "write_idx",
]
