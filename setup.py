"""The one compiled piece: jupybox.linux._spawn (see jupybox/linux/_spawn.c for why it is C).

Everything else is declared in pyproject.toml; setuptools reads ext_modules only from here.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("jupybox.linux._spawn", ["jupybox/linux/_spawn.c"], extra_compile_args=["-O2", "-Wall"]),
    ],
)
