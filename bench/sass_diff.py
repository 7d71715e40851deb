#!/usr/bin/env python3
"""Compares the machine code (SASS) of every kernel in two builds of a CUDA object file.

The flat scoring kernel's speed moves with code it never runs (README, "Why the scoring falls
short"; bench/results/2026-11-23-h100-experiments-r21/row_copy_warps/), so a change to
src/cuda/score.cu or topk.cu should say which kernels it left byte-identical. Typical use:

    cp build/release/CMakeFiles/hisa.dir/src/cuda/score.cu.o /tmp/old.o   # before the change
    ... edit, cmake --build build/release ...
    bench/sass_diff.py /tmp/old.o build/release/CMakeFiles/hisa.dir/src/cuda/score.cu.o

It prints, per kernel: `same`, `DIFF n` (n changed instruction lines, addresses and encodings
ignored), `old only` or `new only`, and exits 1 when any kernel differs. The anonymous
namespace (named after the file and a hash) shows as (anon) in the names.

cuobjdump is not part of the CUDA toolkit this project builds with here; PyPI carries it:
`pip install nvidia-cuda-cuobjdump` (found below in site-packages), or pass --cuobjdump PATH.
"""
import argparse
import difflib
import glob
import os
import re
import shutil
import site
import subprocess
import sys


def find_cuobjdump(given):
    if given:
        return given
    found = shutil.which("cuobjdump")
    if found:
        return found
    roots = site.getsitepackages() + [site.getusersitepackages()]
    for root in roots:
        for path in sorted(glob.glob(os.path.join(root, "nvidia", "*", "bin", "cuobjdump"))):
            return path
    sys.exit("sass_diff: cuobjdump not found; `pip install nvidia-cuda-cuobjdump` or pass "
             "--cuobjdump PATH")


def kernels(cuobjdump, obj):
    """Kernel name -> list of instructions (text between the address and the ';')."""
    try:
        text = subprocess.run([cuobjdump, "-sass", obj], check=True, capture_output=True,
                              text=True).stdout
    except subprocess.CalledProcessError as e:
        sys.exit(f"sass_diff: {cuobjdump} -sass {obj} failed: {e.stderr.strip()}")
    out, name = {}, None
    for line in text.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            # <length>_GLOBAL__N__<hash>_<length>_<file>_cu_<hash>: the anonymous namespace.
            name = re.sub(r"\d+_GLOBAL__N__[0-9a-f]{8}_\d+_\w*?_cu_[0-9a-f]{8}", "(anon)",
                          m.group(1))
            out[name] = []
            continue
        m = re.match(r"\s+/\*[0-9a-f]{4,}\*/\s+(.*?)\s*;", line)
        if name and m:
            # Branch targets are addresses: they move with any change above them.
            out[name].append(re.sub(r"\b(BRA|CALL\.REL\.NOINC|BSSY|SSY|PBK)\b(.*?)0x[0-9a-f]+",
                                    r"\1\2<addr>", m.group(1)))
    if not out:
        sys.exit(f"sass_diff: no kernels in {obj}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--cuobjdump", help="path of cuobjdump (default: PATH, then site-packages)")
    ap.add_argument("--new-name", nargs=2, action="append", default=[],
                    metavar=("PATTERN", "REPLACEMENT"),
                    help="rewrite the new build's kernel names (re.sub) before pairing them, "
                         "e.g. after a template parameter was added")
    args = ap.parse_args()
    tool = find_cuobjdump(args.cuobjdump)
    old, new = kernels(tool, args.old), kernels(tool, args.new)
    for pattern, replacement in args.new_name:
        new = {re.sub(pattern, replacement, name): code for name, code in new.items()}
    differ = False
    for name in sorted(set(old) | set(new)):
        if name not in new:
            status, differ = "old only", True
        elif name not in old:
            status, differ = "new only", True
        elif old[name] == new[name]:
            status = "same"
        else:
            changed = sum(1 for d in difflib.unified_diff(old[name], new[name], n=0, lineterm="")
                          if d[:1] in "+-" and not d.startswith(("+++", "---")))
            status, differ = f"DIFF {changed}", True
        print(f"{status:10} {name}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
