#!/usr/bin/env python3
"""Assembles every PTX module of compiled programs with ptxas and checks the
resource report: every kernel of every module must assemble for the
program's target (or --arch) with no spills (`N bytes spill stores`, `N
bytes spill loads` both 0).

usage: ptxas_check.py --moma-pack moma-pack --ptxas ptxas [--arch sm_90]
                      PROGRAM.momaprog...

Prints one line per program (kernels, most registers, stack, spills) and
exits 1 if a module does not assemble or a kernel spills.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--moma-pack", default="moma-pack")
    parser.add_argument("--ptxas", default="ptxas")
    parser.add_argument("--arch", help="default: the program's target")
    parser.add_argument("programs", nargs="+")
    args = parser.parse_args()
    failures = 0
    for program in args.programs:
        manifest = json.loads(subprocess.run(
            [args.moma_pack, "--manifest", program], check=True,
            stdout=subprocess.PIPE, universal_newlines=True).stdout)
        arch = args.arch or manifest["target"]
        with tempfile.TemporaryDirectory() as tmp:
            listing = subprocess.run(
                [args.moma_pack, "--extract", tmp, program], check=True,
                stdout=subprocess.PIPE, universal_newlines=True).stdout
            files = [line.split("\t")[0] for line in listing.splitlines()
                     if line.split("\t")[1:2] == ["ptx"]]
            kernels, registers, stack, spills, problems = 0, 0, 0, [], []
            for ptx in files:
                proc = subprocess.run(
                    [args.ptxas, "-arch=" + arch, "-v", ptx, "-o",
                     os.path.join(tmp, "out.cubin")],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    universal_newlines=True)
                if proc.returncode != 0:
                    problems.append("ptxas failed on %s:\n%s" % (
                        os.path.basename(ptx), proc.stdout[-3000:]))
                    continue
                kernel = None
                for line in proc.stdout.splitlines():
                    m = re.search(r"Compiling entry function '([^']+)'", line)
                    if m:
                        kernel = m.group(1)
                        kernels += 1
                    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill "
                                  r"stores, (\d+) bytes spill loads", line)
                    if m:
                        stack = max(stack, int(m.group(1)))
                        if int(m.group(2)) or int(m.group(3)):
                            spills.append("%s (%s)" % (kernel, line.strip()))
                    m = re.search(r"Used (\d+) registers", line)
                    if m:
                        registers = max(registers, int(m.group(1)))
            declared = sum(len(mod["functions"]) for mod in manifest["modules"]
                           if mod["format"] == "ptx")
            if kernels != declared:
                problems.append("ptxas compiled %d entry functions, the "
                                "manifest declares %d" % (kernels, declared))
            if spills:
                problems.append("kernels that spill: " + "; ".join(spills))
        status = "FAIL" if problems else "ok"
        print("%s %s %s: %d kernel(s) in %d module(s), at most %d registers "
              "and %d bytes of stack, %d spilling" % (
                  status, os.path.basename(program), arch, kernels,
                  len(files), registers, stack, len(spills)))
        for problem in problems:
            print("  " + problem)
        failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
