"""Build hook for the optional compiled line scan, bracket count and sample walk; everything else is in pyproject.toml."""

from setuptools import Extension, setup

# optional: without a C compiler the install still succeeds and the stream uses the Python
# twin of the scan (backends/stream/fastpath.py), only slower.
setup(
    ext_modules=[
        Extension(
            "reconwatch.backends.stream._scan",
            ["src/reconwatch/backends/stream/_scan.c"],
            optional=True,
        ),
        # optional as well: ingest/fast.py counts with bytes.translate without it, ~3x the CPU.
        Extension(
            "reconwatch.ingest._brackets",
            ["src/reconwatch/ingest/_brackets.c"],
            optional=True,
        ),
        # optional as well: ingest/dataset.py walks the sampled events in Python without it.
        Extension(
            "reconwatch.ingest._walk",
            ["src/reconwatch/ingest/_walk.c"],
            optional=True,
        ),
    ]
)
