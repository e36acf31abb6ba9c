# -*- Python -*-
# The gtest binaries of test/Unit, run by lit's GoogleTest format.
import lit.formats

config.name = "MOMA-Unit"
config.test_format = lit.formats.GoogleTest(".", "unittests")
config.test_source_root = config.unit_test_dir
config.test_exec_root = config.unit_test_dir
