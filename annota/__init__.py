"""annota: the server side of a data-annotation platform."""

__version__ = "2.1.0"
