"""codebench: a Jupyter research workbench for code language models."""

__version__ = "0.1.0"
