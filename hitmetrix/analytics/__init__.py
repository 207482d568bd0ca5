"""Queries over the store: sessions now; funnels, retention, paths, heatmaps later."""
