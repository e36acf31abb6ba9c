"""Runs moma functions on the CPU through `moma-opt --moma-to-cpu` and
`mlir-runner`, and compares their results with expected arrays.

Usage from a check script (run with Debian's python3, which has numpy and
torch for the reference):

    import opcheck
    runner = opcheck.Runner(moma_opt="moma-opt")
    outputs = runner.run(func_text, inputs, result_types, modalities=["text", "image"])
    opcheck.assert_close("route slot_gate", outputs[1], expected, rtol=1e-5)

`func_text` is one `func.func @op(...) -> (...)` in moma IR whose arguments
and results are static tensors of f32, f64 or i32. `inputs` are numpy arrays
in argument order (their dtype must match the argument types). The harness
wraps the function in a module that declares the given modalities (token
ranges are irrelevant for op checks: modality i owns ids [i, i + 1) unless
`token_ranges` is given), writes a `@main` that materialises the inputs as
exact hex constants, calls `@op`, and prints every result bit-exactly (float
results are bitcast to integers before printing, so nothing is lost to
decimal formatting). Results come back as numpy arrays of the result types.
"""

import os
import re
import subprocess
import tempfile

import numpy as np

LLVM_LIB = "/usr/lib/llvm-22/lib"
MLIR_RUNNER = "/usr/lib/llvm-22/bin/mlir-runner"
OPENMP_LIB = "/usr/lib/x86_64-linux-gnu/libomp.so.5"

_ELEMENT = {
    np.dtype(np.float32): ("f32", "i32", np.int32),
    np.dtype(np.float64): ("f64", "i64", np.int64),
    np.dtype(np.int32): ("i32", "i32", np.int32),
    np.dtype(np.int64): ("i64", "i64", np.int64),
}
_NUMPY = {"f32": np.float32, "f64": np.float64, "i32": np.int32}


def tensor_type(shape, element):
    """MLIR tensor type text, e.g. tensor<2x8xf32> or tensor<f32>."""
    dims = "x".join(str(d) for d in shape)
    return f"tensor<{dims}x{element}>" if shape else f"tensor<{element}>"


def parse_tensor_type(text):
    """'tensor<2x8xf32>' -> ((2, 8), 'f32')."""
    m = re.fullmatch(r"tensor<((?:\d+x)*)(\w+)>", text.strip())
    if not m:
        raise ValueError(f"not a static tensor type: {text}")
    dims = tuple(int(d) for d in m.group(1).split("x") if d)
    return dims, m.group(2)


def _constant(name, array):
    element = _ELEMENT[array.dtype][0]
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"))
    hex_data = data.tobytes().hex().upper()
    ttype = tensor_type(array.shape, element)
    if array.size == 0:
        return f"    %{name} = tensor.empty() : {ttype}\n"
    return f'    %{name} = arith.constant dense<"0x{hex_data}"> : {ttype}\n'


class Runner:
    """Compiles and runs moma functions; keeps the tools to use."""

    def __init__(self, moma_opt="moma-opt", runner=MLIR_RUNNER):
        self.moma_opt = moma_opt
        self.runner = runner

    def build_module(self, func_text, inputs, result_types, modalities,
                     token_ranges=None):
        """The whole test module as text."""
        if token_ranges is None:
            token_ranges = [(i, i + 1) for i in range(len(modalities))]
        decl = ", ".join(
            f'#moma.modality<{i}, "{name}", tokens = {b} to {e}>'
            for i, (name, (b, e)) in enumerate(zip(modalities, token_ranges)))
        body = ""
        args = []
        for i, array in enumerate(inputs):
            body += _constant(f"in{i}", array)
            args.append(f"%in{i}")
        arg_types = [tensor_type(a.shape, _ELEMENT[a.dtype][0]) for a in inputs]
        results = [f"%r{i}" for i in range(len(result_types))]
        call = f"    {', '.join(results)} = call @op({', '.join(args)}) : " \
               f"({', '.join(arg_types)}) -> ({', '.join(result_types)})\n"
        body += call
        printers = set()
        for i, rtype in enumerate(result_types):
            shape, element = parse_tensor_type(rtype)
            bits = {"f32": "i32", "f64": "i64", "i32": "i32"}[element]
            value = f"%r{i}"
            if element != bits:
                int_type = tensor_type(shape, bits)
                body += (f"    %b{i} = arith.bitcast {value} : {rtype} to "
                         f"{int_type}\n")
                value, rtype = f"%b{i}", int_type
            memref = rtype.replace("tensor", "memref")
            body += (f"    %m{i} = bufferization.to_buffer {value} : {rtype} "
                     f"to {memref}\n")
            body += (f"    %u{i} = memref.cast %m{i} : {memref} to "
                     f"memref<*x{bits}>\n")
            printer = "printMemrefI32" if bits == "i32" else "printMemrefI64"
            printers.add((printer, bits))
            body += f"    call @{printer}(%u{i}) : (memref<*x{bits}>) -> ()\n"
        decls = "".join(
            f"  func.func private @{p}(memref<*x{b}>) attributes "
            f"{{llvm.emit_c_interface}}\n" for p, b in sorted(printers))
        return (f"module attributes {{moma.modalities = [{decl}]}} {{\n"
                f"{func_text}\n{decls}"
                f"  func.func @main() {{\n{body}    return\n  }}\n}}\n")

    def run(self, func_text, inputs, result_types, modalities=("text",),
            token_ranges=None, keep=None):
        """Runs `func_text` on `inputs`; returns the results as arrays."""
        module = self.build_module(func_text, inputs, result_types,
                                   list(modalities), token_ranges)
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "op.mlir")
            with open(source, "w") as f:
                f.write(module)
            if keep:
                with open(keep, "w") as f:
                    f.write(module)
            lowered = subprocess.run(
                [self.moma_opt, source, "--moma-to-cpu"],
                capture_output=True, text=True)
            if lowered.returncode != 0:
                raise RuntimeError(f"moma-opt failed:\n{lowered.stderr}")
            # The parallel loops of moma-to-cpu run on the LLVM OpenMP
            # runtime.
            libs = ",".join([os.path.join(LLVM_LIB, lib) for lib in
                             ("libmlir_runner_utils.so",
                              "libmlir_c_runner_utils.so")] + [OPENMP_LIB])
            ran = subprocess.run(
                [self.runner, "-e", "main", "-entry-point-result=void",
                 f"-shared-libs={libs}"],
                input=lowered.stdout, capture_output=True, text=True)
            if ran.returncode != 0:
                raise RuntimeError(f"mlir-runner failed:\n{ran.stderr}")
        return self._parse(ran.stdout, result_types)

    @staticmethod
    def _parse(stdout, result_types):
        blocks = stdout.split("Unranked Memref")[1:]
        if len(blocks) != len(result_types):
            raise RuntimeError(
                f"expected {len(result_types)} printed results, got "
                f"{len(blocks)}:\n{stdout}")
        arrays = []
        for block, rtype in zip(blocks, result_types):
            shape, element = parse_tensor_type(rtype)
            data = block.split("data =", 1)[1]
            values = [int(v) for v in re.findall(r"-?\d+", data)]
            bits = np.int64 if element == "f64" else np.int32
            raw = np.array(values, dtype=bits).reshape(shape)
            arrays.append(raw.view(_NUMPY[element]) if element != "i32"
                          else raw)
        return arrays


def assert_close(what, actual, expected, rtol=1e-5, atol=1e-6):
    """Raises AssertionError naming `what` and the worst element."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected "
                             f"{expected.shape}")
    if actual.dtype.kind in "iu":
        if not np.array_equal(actual, expected):
            where = np.argwhere(actual != expected)[0]
            raise AssertionError(
                f"{what}: differs at {tuple(where)}: {actual[tuple(where)]} "
                f"!= {expected[tuple(where)]}\nactual {actual}\n"
                f"expected {expected}")
        return
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    bound = atol + rtol * np.abs(expected.astype(np.float64))
    if not np.all(diff <= bound) or np.isnan(actual).any() != np.isnan(expected).any():
        worst = np.unravel_index(np.argmax(diff - bound), diff.shape)
        raise AssertionError(
            f"{what}: |{actual[worst]} - {expected[worst]}| = {diff[worst]} "
            f"exceeds {bound[worst]} at {worst}")
