#!/bin/sh
# A stand-in for a ptxas too old for the PTX momac writes (ISA 8.0): it fails
# the way CUDA 11.4's ptxas does, for gpu-program.test.
echo "ptxas fatal   : Unsupported .version 8.0; current version is '7.4'" >&2
exit 255
