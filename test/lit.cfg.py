# -*- Python -*-
# lit configuration of the moma test suite.
import os
import subprocess
import sys

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOMA"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moma_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py",
                   "lit.site.cfg.py", "Inputs", "Unit"]

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()  # FileCheck, not, count, ...
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

config.substitutions.append(("%moma_src", config.moma_src_root))
# The interpreter running lit, for the suite's own helper scripts.
config.substitutions.append(("%python", sys.executable))

# The numerical reference needs Debian's python3 with torch (never the first
# python3 on PATH, which may be another interpreter); tools/moma-plot.py needs
# matplotlib in the same interpreter.
torch_python = "/usr/bin/python3"


def python_imports(modules):
    """Whether torch_python imports ``modules`` (a comma-separated list)."""
    try:
        subprocess.run([torch_python, "-c", f"import {modules}"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return True
    except (OSError, subprocess.CalledProcessError):
        return False


if python_imports("torch, numpy"):
    config.available_features.add("torch")
if python_imports("matplotlib"):
    config.available_features.add("matplotlib")
config.substitutions.append(("%torch_python", torch_python))

if os.path.exists(os.path.join(config.cuda_bin_dir, "ptxas")):
    config.available_features.add("ptxas")
# The toolkit's libdevice, for tests that build a toolkit without ptxas.
config.substitutions.append(
    ("%cuda_libdevice",
     os.path.join(os.path.dirname(config.cuda_bin_dir), "nvvm", "libdevice",
                  "libdevice.10.bc")))

# A CUDA driver that initialises (a GPU machine): enables test/Integration.
# Probed in a child process, so that lit itself never initialises CUDA.
if subprocess.run([sys.executable, "-c",
                   "import ctypes, sys; "
                   "sys.exit(ctypes.CDLL('libcuda.so.1').cuInit(0))"],
                  stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL).returncode == 0:
    config.available_features.add("cuda")

tool_dirs = [config.moma_tools_dir, config.llvm_tools_dir]
tools = ["moma-config-check", "moma-opt", "moma-pack", "moma-run",
         "moma-train", "momac",
         ToolSubst("%ptxas", os.path.join(config.cuda_bin_dir, "ptxas"),
                   unresolved="ignore")]
llvm_config.add_tool_substitutions(tools, tool_dirs)
