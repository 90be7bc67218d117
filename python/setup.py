"""Pure-Python package; the only build step records where libhubert.so was found, so an installed
package finds it without HUBERT_LIB: $HUBERT_LIB at install time, else ../build/libhubert.so, else
the newest ../build*/libhubert.so next to this folder (a source checkout built with CMake)."""
import glob
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def find_lib():
    env = os.environ.get("HUBERT_LIB")
    if env and os.path.isfile(env):
        return os.path.abspath(env)
    default = os.path.join(HERE, "..", "build", "libhubert.so")  # the README's build folder first
    if os.path.isfile(default):
        return os.path.abspath(default)
    cands = [c for c in glob.glob(os.path.join(HERE, "..", "build*", "libhubert.so")) if os.path.isfile(c)]
    return os.path.abspath(max(cands, key=os.path.getmtime)) if cands else ""


class BuildPy(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "hubert_c", "_build_info.py")
        with open(target, "w") as f:
            f.write("# written by setup.py at install time\nLIB_PATH = %r\n" % find_lib())


setup(cmdclass={"build_py": BuildPy})
