"""codebench: a Jupyter research workbench for code language models."""

from codebench import quiet as _quiet

__version__ = "0.1.0"

_quiet.install()  # filters third-party log lines nobody can act on (see codebench/quiet.py)
