"""edgekit's version, in a module of its own so any layer may read it.

Must not import anything.
"""

__version__ = "0.1.0"
