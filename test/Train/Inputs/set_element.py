"""Copies a safetensors file with one element of one f32 tensor changed.

Usage: set_element.py IN OUT NAME INDEX VALUE

Writes OUT: IN with element INDEX (row-major) of the f32 tensor NAME set to
VALUE (a Python float: 'nan', 'inf', '1.5'), for test/Train's tests of
non-finite losses.
"""
import json
import struct
import sys

src, dst, name, index, value = sys.argv[1:]
data = bytearray(open(src, "rb").read())
(size,) = struct.unpack_from("<Q", data, 0)
header = json.loads(data[8:8 + size])
info = header[name]
if info["dtype"] != "F32":
    raise SystemExit(f"{name}: {info['dtype']}, not F32")
begin, end = info["data_offsets"]
offset = 8 + size + begin + 4 * int(index)
if offset + 4 > 8 + size + end:
    raise SystemExit(f"{name}: no element {index}")
struct.pack_into("<f", data, offset, float(value))
open(dst, "wb").write(data)
