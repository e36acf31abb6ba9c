#!/usr/bin/env python3
"""Prints "cubin sm_NN" for each cubin named on the command line: the
architecture that ptxas recorded in bits 8-15 of the ELF header's e_flags
(0x5a = 90), or what is wrong with the file."""
import sys


def describe(path):
    data = open(path, "rb").read()
    if data[:4] != b"\x7fELF" or len(data) < 52:
        return "not an ELF file"
    if data[4] != 2:
        return "not a 64-bit ELF file"
    machine = int.from_bytes(data[18:20], "little")
    if machine != 190:  # EM_CUDA
        return "ELF for machine %d, not CUDA (190)" % machine
    flags = int.from_bytes(data[48:52], "little")
    return "cubin sm_%d" % ((flags >> 8) & 0xff)


for path in sys.argv[1:]:
    print(describe(path))
