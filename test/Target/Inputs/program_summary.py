#!/usr/bin/env python3
"""Prints a program manifest (`moma-pack --manifest P`, on stdin) one line
per module, buffer and launch, with buffer arguments as buffer names, for
FileCheck:

    target sm_90 arena 205056
    module 0 kernels ptx+cubin 103 kernel(s)
    buffer ids input i32 [2, 16] at 0 (128 bytes)
    launch 0 forward_kernel grid 4x1x1 block 256x1x1 smem 0: ids embed.weight scratch.1
"""
import json
import sys


def main():
    m = json.load(sys.stdin)
    print("target %s arena %d" % (m["target"], m["arena"]["size"]))
    for i, module in enumerate(m["modules"]):
        formats = [module["format"]] + [
            a["format"] for a in module.get("alternatives", [])]
        print("module %d %s %s %d kernel(s)" % (i, module.get("name", ""),
                                                "+".join(formats),
                                                len(module["functions"])))
    buffers = sorted(m["buffers"], key=lambda b: (b["offset"], b["name"]))
    for b in m["buffers"]:
        print("buffer %s %s %s %s at %d (%d bytes)" % (
            b["name"], b["role"], b["type"], b["shape"], b["offset"],
            b["size"]))

    def name(offset, args_of_launch):
        # The buffer that starts at the offset; scratch buffers may share
        # bytes, so prefer one that is not scratch, then the first by name.
        starts = [b for b in buffers if b["offset"] == offset]
        if starts:
            return starts[0]["name"]
        inside = [b for b in buffers
                  if b["offset"] <= offset < b["offset"] + b["size"]]
        return "%s+%d" % (inside[0]["name"], offset - inside[0]["offset"]) \
            if inside else "?%d" % offset

    for i, launch in enumerate(m["launches"]):
        args = []
        for a in launch["args"]:
            if a["kind"] == "buffer":
                args.append(name(a["offset"], launch))
            else:
                args.append("%s:%s" % (a["kind"], a.get("value", a.get("bits"))))
        print("launch %d %s grid %s block %s smem %d: %s" % (
            i, launch["function"], "x".join(map(str, launch["grid"])),
            "x".join(map(str, launch["block"])),
            launch["shared_memory_bytes"], " ".join(args)))


if __name__ == "__main__":
    main()
