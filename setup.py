"""Builds the Cython kernels in csrc/ as extension modules of the ds2stream package."""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

# -O3 lets gcc vectorise the kernels' inner loops over a block of frames, -fno-math-errno lets
# it vectorise sqrtf too, and -march=native lets it use AVX2/AVX-512 (the spectrogram runs 1.3x
# faster with it). Set DS2STREAM_PORTABLE_BUILD=1 to build for any x86-64 (e.g. a wheel that
# runs on other machines).
COMPILE_ARGS = ["-O3", "-fno-math-errno"]
if os.environ.get("DS2STREAM_PORTABLE_BUILD", "0") in ("", "0"):
    COMPILE_ARGS.append("-march=native")

extensions = [
    Extension("ds2stream._spectrogram", ["csrc/spectrogram.pyx"], extra_compile_args=COMPILE_ARGS),
    Extension("ds2stream._ctc_greedy", ["csrc/ctc_greedy.pyx"], extra_compile_args=COMPILE_ARGS),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": "3",
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
