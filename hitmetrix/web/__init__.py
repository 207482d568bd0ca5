"""The HTTP layer: capture routes, the read API, the tracker script and the demo site."""
