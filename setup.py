"""Install paddle_cnn. Paddle itself comes from an extra: the CPU and GPU builds are different packages."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="paddle-cnn",
    version="0.1.0",
    description="Classic CNNs from the AI Studio tutorials, trained through paddle.Model with honest numbers.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["paddle_cnn", "paddle_cnn.*", "experiments", "experiments.*"]),
    package_data={"paddle_cnn.fast": ["*.cc"]},
    install_requires=[
        "numpy",
        "pandas",
        "matplotlib",
        # Same cv2 API as opencv-python, but imports on servers without libGL.
        "opencv-python-headless",
        "visualdl",
        "tqdm",  # the live progress bar on terminals
        "safetensors",  # checkpoints that never run code when loaded
        "Pillow",  # EXIF orientation and image headers (size limits) in predict
        "scipy",  # MATLAB .mat files of the hyperspectral scenes
        "h5py",  # MATLAB v7.3 .mat files (HDF5)
    ],
    extras_require={
        # The oneDNN headers the fast conv/pool operators compile against (paddle_cnn/fast); they link
        # against the libdnnl.so.3 the paddlepaddle wheel ships. 2023.2 is oneDNN 3.2, within the ABI of
        # Paddle 3.3's oneDNN 3.6; newer onednn-devel wheels need Intel's SYCL runtimes.
        "cpu": ["paddlepaddle>=3.0", "onednn-devel-cpu-gomp==2023.2.0"],
        # PyPI's paddlepaddle-gpu stops at 2.6; Paddle 3.x CUDA wheels come from Paddle's own package index,
        # one per CUDA version, so README installs that first and this extra adds nothing PyPI cannot serve.
        "gpu": [],
        # scikit-learn only checks our numpy PCA, stratified split and kappa against the official HybridSN code's.
        "test": ["pytest>=7", "hypothesis>=6", "scikit-learn", "mplfonts==0.0.11"],
        # Chinese class names in pictures (--lang zh): mplfonts ships Noto Sans CJK SC (MIT; the font is OFL).
        "zh": ["mplfonts==0.0.11"],
    },
    entry_points={"console_scripts": ["paddle-cnn=paddle_cnn.cli:main"]},
)
