#!/usr/bin/env python3
"""Runs a command (the arguments) and prints "maxrss N KiB": the peak
resident memory of the child process, for tests that check that memory
does not grow with the number of runs."""
import resource
import subprocess
import sys

status = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
print("maxrss %d KiB" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(status)
