"""Running Hitmetrix: finding the node that serves a data directory, and checking a data directory (doctor)."""
