"""Asset capture: the stylesheets, images and fonts a recording references, fetched from the project's allowed
origins after the recording is stored, kept content-addressed, and served to its replays from the dashboard.

``worker`` runs it (``extractor`` finds the URLs, ``fetcher`` fetches them within ``origin``'s rules, ``store``
keeps them); ``css`` reads and rewrites URLs in stylesheets, here and when the dashboard serves them.
"""

from hitmetrix.assets.fetcher import AssetFetcher
from hitmetrix.assets.store import AssetStore
from hitmetrix.assets.worker import AssetWorker

__all__ = ["AssetFetcher", "AssetStore", "AssetWorker"]
