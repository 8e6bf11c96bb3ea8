"""The compiled pieces (setuptools reads ext_modules only from here; everything else is in pyproject.toml):

- jupybox.linux._spawn, a Python extension: starts processes without fork (see _spawn.c);
- jupybox/linux/jupybox-init, a small static program: every container's first processes and the
  joiner of `exec` (see init.c). Static, because it runs inside containers whose images may have
  no C library at all (busybox-static), and small, because one runs as PID 1 of every container.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

INIT_SOURCES = ["jupybox/linux/init.c"]
INIT_DEPENDS = ["jupybox/linux/job.h"]


class BuildWithInit(build_ext):
    """build_ext, plus the init program linked statically next to the extension."""

    def run(self):
        super().run()
        out_dir = "jupybox/linux" if self.inplace else os.path.join(self.build_lib, "jupybox", "linux")
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, "jupybox-init")
        newest = max(os.path.getmtime(p) for p in INIT_SOURCES + INIT_DEPENDS)
        if os.path.exists(target) and os.path.getmtime(target) >= newest and not self.force:
            return
        objects = self.compiler.compile(INIT_SOURCES, output_dir=self.build_temp,
                                        extra_postargs=["-Os", "-Wall", "-Wno-format-truncation"])
        self.compiler.link_executable(objects, "jupybox-init", output_dir=out_dir,
                                      extra_postargs=["-static", "-s"])


setup(
    ext_modules=[
        Extension("jupybox.linux._spawn", ["jupybox/linux/_spawn.c"], depends=INIT_DEPENDS,
                  extra_compile_args=["-O2", "-Wall"]),
    ],
    cmdclass={"build_ext": BuildWithInit},
)
