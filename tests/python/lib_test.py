"""Tests of python/shardnet/_lib.py: the ctypes structs have the layout of src/shardnet.h's
(compiled and compared field by field), the loaded library is the build's and of the package's
version, a wrong library is an ImportError, and idle OpenMP threads wait as the program's do."""
import ctypes
import ctypes.util
import os
import subprocess
import sys
import unittest

import shardnet
from shardnet import _lib
from sn_testutil import TempDirTest

SOURCE = os.environ.get("SN_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class StructLayouts(TempDirTest):

    def test_structs_match_the_header(self):
        lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "shardnet.h"',
                 "int main(void) {"]
        expect = []
        for cname, st in _lib.STRUCTS.items():
            lines.append('  printf("%%zu\\n", sizeof(%s));' % cname)
            expect.append(ctypes.sizeof(st))
            for field, _ in st._fields_:
                lines.append('  printf("%%zu\\n", offsetof(%s, %s));' % (cname, field))
                expect.append(getattr(st, field).offset)
        lines += ["  return 0;", "}"]
        src, exe = self.path("layout.c"), self.path("layout")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        subprocess.run(["cc", "-std=c11", "-I", os.path.join(SOURCE, "src"), src, "-o", exe],
                       check=True)
        got = [int(v) for v in subprocess.run([exe], capture_output=True, text=True,
                                              check=True).stdout.split()]
        self.assertEqual(got, expect)


class Loading(unittest.TestCase):

    def test_version_and_path(self):
        self.assertEqual(shardnet.version(), shardnet.__version__)
        self.assertTrue(os.path.isfile(shardnet.__library__), shardnet.__library__)
        self.assertIn("libshardnet.so", os.path.basename(shardnet.__library__))

    def run_python(self, code, **env):
        e = dict(os.environ)
        for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
            e.pop(k, None)
        e.update(env)
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=e)

    def test_wrong_library_is_an_import_error(self):
        p = self.run_python("import shardnet", SHARDNET_LIBRARY="/nonexistent/libshardnet.so")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ImportError", p.stderr)
        self.assertIn("/nonexistent/libshardnet.so", p.stderr)
        p = self.run_python("import shardnet",
                            SHARDNET_LIBRARY=ctypes.util.find_library("c") or "libc.so.6")
        self.assertIn("ImportError", p.stderr)
        self.assertIn("has no function sn_", p.stderr)

    def test_openmp_waits_like_the_program(self):
        code = "import os, shardnet; print(os.environ['OMP_WAIT_POLICY'])"
        self.assertEqual(self.run_python(code).stdout.strip(), "passive")
        p = self.run_python(code, OMP_WAIT_POLICY="active")
        self.assertEqual(p.stdout.strip(), "active")

if __name__ == "__main__":
    unittest.main()
