"""Compiles probe sources with the exact flags of each LLVM-free directory.

Usage: check-llvm-free.py BUILD/compile_commands.json SCRATCH_DIR

For each directory that must not see LLVM or MLIR (lib/Format, lib/Runtime,
tools/moma-run, tools/moma-train, test/Unit/Runtime) it takes the compile
command CMake wrote for one of its sources and compiles, with -fsyntax-only,
a file including `llvm/ADT/StringRef.h`, one including `mlir/IR/Value.h`
(both must fail: the header is not found) and one including only moma's format header (must
compile, so that the failures are the headers' and not the command's). The
same LLVM probe compiled with a compiler source's flags (lib/Target) must
compile, so that the probe itself is valid. Last, every public header of the
compiler (include/moma/Target, include/moma/Frontend, include/moma/InitAll.h)
is preprocessed with those flags: none may include an absl header, directly
or not. Prints one line per check; exits 1 if any check fails.
"""
import glob
import json
import os
import shlex
import subprocess
import sys

LLVM_FREE = ["lib/Format/", "lib/Runtime/", "tools/moma-run/",
             "tools/moma-train/", "test/Unit/Runtime/"]
COMPILER = "lib/Target/"
PROBES = {
    "llvm": '#include "llvm/ADT/StringRef.h"\n',
    "mlir": '#include "mlir/IR/Value.h"\n',
    "format": '#include "moma/Format/ProgramFile.h"\n',
}


def command_for(entries, directory):
    """The argument list compiling the first C++ source of `directory`."""
    for entry in entries:
        path = os.path.relpath(entry["file"], ROOT)
        if path.startswith(directory) and path.endswith(".cpp"):
            args = entry.get("arguments") or shlex.split(entry["command"])
            return path, args, entry["directory"]
    raise SystemExit("no compile command for a source of " + directory)


def syntax_only(args, probe):
    """`args` compiling `probe` with -fsyntax-only instead of its source."""
    out = [args[0]]
    skip = False
    for arg in args[1:]:
        if skip:
            skip = False
            continue
        if arg in ("-o", "-c", "-MT", "-MF", "-MQ"):
            skip = True
            continue
        if arg in ("-MD", "-MMD"):
            continue
        out.append(arg)
    return out + ["-fsyntax-only", probe]


def compiles(args, cwd, probe):
    result = subprocess.run(syntax_only(args, probe), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    return result.returncode == 0, result.stdout


def main():
    global ROOT
    entries = json.load(open(sys.argv[1]))
    scratch = sys.argv[2]
    os.makedirs(scratch, exist_ok=True)
    ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    probes = {}
    for name, text in PROBES.items():
        probes[name] = os.path.join(scratch, name + "-probe.cpp")
        with open(probes[name], "w") as f:
            f.write(text + "int main() { return 0; }\n")
    failures = 0
    for directory in LLVM_FREE:
        source, args, cwd = command_for(entries, directory)
        for name in ("llvm", "mlir"):
            ok, output = compiles(args, cwd, probes[name])
            header = PROBES[name].split('"')[1]
            rejected = not ok and ("'%s' file not found" % header) in output
            print("%s %s with the flags of %s: %s" % (
                "ok" if rejected else "FAIL", header, source,
                "not found" if rejected else "compiles"))
            failures += not rejected
        ok, output = compiles(args, cwd, probes["format"])
        print("%s moma/Format/ProgramFile.h with the flags of %s: %s" % (
            "ok" if ok else "FAIL", source, "compiles" if ok else output))
        failures += not ok
    source, args, cwd = command_for(entries, COMPILER)
    ok, output = compiles(args, cwd, probes["llvm"])
    print("%s llvm/ADT/StringRef.h with the flags of %s: %s" % (
        "ok" if ok else "FAIL", source, "compiles" if ok else output))
    failures += not ok
    headers = sorted(glob.glob(os.path.join(ROOT, "include/moma/Target/*.h")) +
                     glob.glob(os.path.join(ROOT, "include/moma/Frontend/*.h")))
    headers.append(os.path.join(ROOT, "include/moma/InitAll.h"))
    for header in headers:
        args_e = [a for a in syntax_only(args, header) if a != "-fsyntax-only"]
        result = subprocess.run(args_e[:-1] + ["-E", "-H", "-x", "c++",
                                               header, "-o", os.devnull],
                                cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                universal_newlines=True)
        absl = [line.split()[-1] for line in result.stdout.splitlines()
                if "/absl/" in line and line.startswith(".")]
        ok = result.returncode == 0 and not absl
        print("%s %s: %s" % ("ok" if ok else "FAIL",
                             os.path.relpath(header, ROOT),
                             "no absl" if ok else
                             (absl[0] if absl else result.stdout)))
        failures += not ok
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
