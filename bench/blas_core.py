"""Prints the BLAS library and kernel core that PyTorch runs in this environment.

Debian's python3-torch calls the system BLAS (libblas.so.3, an alternative that points at
OpenBLAS when libopenblas0 is installed); OpenBLAS picks its kernels at load time from the CPU it
recognises, or from OPENBLAS_CORETYPE. Usage: python3 bench/blas_core.py -> "torch_blas=<path>
core=<name>".
"""
import ctypes
import os

import torch  # noqa: F401  (loads the BLAS library)

torch.mm(torch.ones(64, 64), torch.ones(64, 64))  # make sure the BLAS path is initialised
paths = sorted({line.split()[-1] for line in open("/proc/self/maps")
                if "blas" in line.split()[-1] and ".so" in line.split()[-1]})
core = "unknown"
for path in paths:
    try:
        lib = ctypes.CDLL(path)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
        break
    except (OSError, AttributeError):
        continue
print(f"torch_blas={','.join(os.path.realpath(p) for p in paths) or 'none'} core={core}")
