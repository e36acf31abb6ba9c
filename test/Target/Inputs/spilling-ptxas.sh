#!/bin/sh
# A ptxas that assembles like the real one ($MOMA_REAL_PTXAS) and then warns
# that a kernel spills, the way ptxas --warn-on-spills does, for
# gpu-program.test: momac passes the warning on.
"$MOMA_REAL_PTXAS" "$@" || exit $?
echo "ptxas warning : Registers are spilled to local memory in function 'forward_kernel_3', 8 bytes spill stores, 8 bytes spill loads" >&2
