"""The loader: sealed spool segments into the event store and the blob store, exactly once."""

from hitmetrix.loader.loader import Loader, LoadError
from hitmetrix.loader.prepare import SegmentSource

__all__ = ["LoadError", "Loader", "SegmentSource"]
