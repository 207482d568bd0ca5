"""The durable spool between capture and the loader: append-only segment files on local disk."""

from hitmetrix.spool.segment import CorruptSegmentError
from hitmetrix.spool.writer import Spool, SpoolClosedError, SpoolUnavailableError

__all__ = ["CorruptSegmentError", "Spool", "SpoolClosedError", "SpoolUnavailableError"]
