"""A small, strict safetensors reader and writer (no third-party package).

File layout (https://github.com/huggingface/safetensors, "format"):

* bytes 0..8: ``N``, the header length, unsigned 64-bit little-endian;
* bytes 8..8+N: the header, a UTF-8 JSON object.  Each key except
  ``__metadata__`` names a tensor: ``{"dtype": "F32", "shape": [2, 3],
  "data_offsets": [begin, end]}``, offsets relative to the start of the data
  section; ``__metadata__`` (optional) maps strings to strings;
* bytes 8+N..: the data section: each tensor's elements, row-major,
  little-endian.

The reader rejects (with :class:`SafetensorsError` naming the file and the
tensor): files shorter than 8 bytes, a header length beyond the end of the
file or above 100 MB, a header that is not a UTF-8 JSON object or has
duplicate keys, unknown dtypes, shapes that are not lists of non-negative
integers, ``data_offsets`` that are not ``[begin, end]`` with
``begin <= end``, a byte size other than ``prod(shape) * itemsize``, ranges
outside the data section, and ranges that overlap or leave holes (the tensors
must cover the data section exactly, as the reference Rust implementation
requires).

The writer pads the header with spaces to a multiple of 8 bytes (so the
data section is 8-byte aligned), stores tensors in the order given, and
writes to a temporary file that is renamed into place only when complete:
a failed write never leaves a partial output file.
"""

import json
import os
import struct
import tempfile

import numpy as np
import torch

from .errors import SafetensorsError

#: safetensors dtype -> (item size in bytes, numpy little-endian dtype used
#: to move the raw bytes, torch dtype of the loaded tensor).  BF16 travels
#: as int16 bits and is reinterpreted.
DTYPES = {
    "F64": (8, "<f8", torch.float64),
    "F32": (4, "<f4", torch.float32),
    "F16": (2, "<f2", torch.float16),
    "BF16": (2, "<i2", torch.bfloat16),
    "I64": (8, "<i8", torch.int64),
    "I32": (4, "<i4", torch.int32),
    "I16": (2, "<i2", torch.int16),
    "I8": (1, "<i1", torch.int8),
    "U8": (1, "<u1", torch.uint8),
    "BOOL": (1, "<u1", torch.bool),
}
TORCH_TO_SAFETENSORS = {v[2]: k for k, v in DTYPES.items()}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
MAX_HEADER = 100 * 1024 * 1024


class TensorInfo:
    """One header entry: name, dtype string, shape tuple, byte range."""

    def __init__(self, name, dtype, shape, begin, end):
        self.name = name
        self.dtype = dtype
        self.shape = tuple(shape)
        self.begin = begin
        self.end = end

    @property
    def numel(self):
        n = 1
        for d in self.shape:
            n *= d
        return n


def _fail(filename, message):
    raise SafetensorsError(f"{filename}: {message}")


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {json.dumps(key)}")
        obj[key] = value
    return obj


def parse_header(filename, file_size, read):
    """Reads and validates the header.

    ``read(offset, size)`` returns bytes of the file.  Returns
    ``(infos, metadata, data_start)`` with ``infos`` in file order.
    """
    if file_size < 8:
        _fail(filename, f"truncated: {file_size} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", read(0, 8))
    if n > MAX_HEADER:
        _fail(filename, f"header length {n} exceeds the {MAX_HEADER}-byte limit")
    if 8 + n > file_size:
        _fail(filename, f"truncated: header length {n} runs past the end of the {file_size}-byte file")
    raw = read(8, n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        _fail(filename, f"header is not valid UTF-8 JSON: {e}")
    if not isinstance(header, dict):
        _fail(filename, "header must be a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            _fail(filename, "__metadata__ must map strings to strings")
    data_size = file_size - 8 - n
    infos = []
    for name, entry in header.items():
        where = f"tensor {name!r}"
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            _fail(filename, f"{where}: entry must be an object with exactly dtype, shape, data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPES:
            _fail(filename, f"{where}: unsupported dtype {dtype!r} (supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            _fail(filename, f"{where}: shape must be a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            _fail(filename, f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end")
        info = TensorInfo(name, dtype, shape, offsets[0], offsets[1])
        expected = info.numel * DTYPES[dtype][0]
        if info.end - info.begin != expected:
            _fail(filename, f"{where}: data_offsets {offsets} hold {info.end - info.begin} bytes, but "
                            f"{dtype} {list(shape)} needs {expected}")
        if info.end > data_size:
            _fail(filename, f"{where}: data_offsets {offsets} out of range (the data section has "
                            f"{data_size} bytes; file truncated?)")
        infos.append(info)
    position = 0
    for info in sorted(infos, key=lambda i: (i.begin, i.end)):
        if info.begin != position:
            problem = "overlaps the previous tensor" if info.begin < position else "leaves a hole before it"
            _fail(filename, f"tensor {info.name!r}: data_offsets [{info.begin}, {info.end}] {problem}")
        position = info.end
    if position != data_size:
        _fail(filename, f"the data section has {data_size} bytes but the tensors cover {position}")
    return infos, (metadata or {}), 8 + n


def _bytes_to_tensor(info, raw):
    _, np_dtype, torch_dtype = DTYPES[info.dtype]
    array = np.frombuffer(raw, dtype=np.dtype(np_dtype)).astype(np.dtype(np_dtype).newbyteorder("="))
    tensor = torch.from_numpy(array.copy()).reshape(info.shape)
    if info.dtype == "BF16":
        tensor = tensor.view(torch.bfloat16)
    elif info.dtype == "BOOL":
        tensor = tensor.to(torch.bool)
    return tensor


class SafetensorsFile:
    """A loaded file: ``tensors`` (name -> torch tensor, file order),
    ``dtypes`` (name -> safetensors dtype string) and ``metadata``."""

    def __init__(self, tensors, dtypes, metadata):
        self.tensors = tensors
        self.dtypes = dtypes
        self.metadata = metadata


def load(filename):
    """Reads and validates a whole safetensors file."""
    try:
        with open(filename, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise SafetensorsError(f"{filename}: cannot read file: {e.strerror}") from None
    infos, metadata, start = parse_header(filename, len(blob), lambda o, s: blob[o:o + s])
    tensors, dtypes = {}, {}
    for info in infos:
        raw = blob[start + info.begin:start + info.end]
        tensors[info.name] = _bytes_to_tensor(info, raw)
        dtypes[info.name] = info.dtype
    return SafetensorsFile(tensors, dtypes, metadata)


def tensor_bytes(tensor, dtype):
    """The little-endian bytes of ``tensor`` stored as safetensors ``dtype``
    (float tensors are converted; BF16 rounds to nearest even)."""
    t = tensor.detach().cpu().contiguous()
    torch_dtype = DTYPES[dtype][2]
    if t.dtype != torch_dtype:
        t = t.to(torch_dtype)
    if dtype == "BF16":
        array = t.view(torch.int16).numpy()
    elif dtype == "BOOL":
        array = t.to(torch.uint8).numpy()
    else:
        array = t.numpy()
    return array.astype(np.dtype(DTYPES[dtype][1])).tobytes()


class Writer:
    """Streams tensors into a new safetensors file.

    The header is written first from ``entries`` (``(name, dtype, shape)``
    in file order); then :meth:`write` must be called once per entry, in the
    same order.  Use as a context manager: the file appears at ``filename``
    only if the block finishes without an exception and every tensor was
    written.
    """

    def __init__(self, filename, entries, metadata=None):
        self.filename = filename
        self.entries = [(name, dtype, tuple(int(d) for d in shape)) for name, dtype, shape in entries]
        self.metadata = metadata or {}
        self.next = 0
        self.file = None
        self.temp = None

    def header_bytes(self):
        header = {}
        if self.metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in self.metadata.items()}
        offset = 0
        names = set()
        for name, dtype, shape in self.entries:
            if name in names or name == "__metadata__":
                raise SafetensorsError(f"{self.filename}: duplicate or reserved tensor name {name!r}")
            names.add(name)
            if dtype not in DTYPES:
                raise SafetensorsError(f"{self.filename}: unsupported dtype {dtype!r}")
            size = DTYPES[dtype][0]
            for d in shape:
                size *= d
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-(8 + len(raw)) % 8)
        return struct.pack("<Q", len(raw)) + raw

    def __enter__(self):
        directory = os.path.dirname(os.path.abspath(self.filename))
        try:
            fd, self.temp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
        except OSError as e:
            raise SafetensorsError(f"{self.filename}: cannot create file: {e.strerror}") from None
        self.file = os.fdopen(fd, "wb")
        self.file.write(self.header_bytes())
        return self

    def write(self, name, tensor):
        """Writes the next tensor; ``name`` and shape must match the header."""
        expected_name, dtype, shape = self.entries[self.next]
        if name != expected_name or tuple(tensor.shape) != shape:
            raise SafetensorsError(f"{self.filename}: tensor {name!r} {list(tensor.shape)} written where "
                                   f"{expected_name!r} {list(shape)} was declared")
        self.file.write(tensor_bytes(tensor, dtype))
        self.next += 1

    def __exit__(self, exc_type, exc, tb):
        ok = exc_type is None and self.next == len(self.entries)
        try:
            self.file.close()
            if ok:
                os.replace(self.temp, self.filename)
        except OSError as e:
            ok = False
            if exc_type is None:
                raise SafetensorsError(f"{self.filename}: cannot write file: {e.strerror}") from None
        finally:
            if not ok and os.path.exists(self.temp):
                os.unlink(self.temp)
        if exc_type is None and self.next != len(self.entries):
            raise SafetensorsError(f"{self.filename}: only {self.next} of {len(self.entries)} tensors written")
        return False


def save(filename, tensors, metadata=None, dtype=None):
    """Writes ``tensors`` (name -> tensor, in order) to ``filename``.

    Each tensor keeps its own dtype unless ``dtype`` (a safetensors dtype
    string) is given.
    """
    entries = []
    for name, t in tensors.items():
        d = dtype or TORCH_TO_SAFETENSORS.get(t.dtype)
        if d is None:
            raise SafetensorsError(f"{filename}: tensor {name!r}: unsupported torch dtype {t.dtype}")
        entries.append((name, d, tuple(t.shape)))
    with Writer(filename, entries, metadata) as w:
        for name, t in tensors.items():
            w.write(name, t)
