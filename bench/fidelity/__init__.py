"""Replay fidelity: pages recorded in real Chromium with the real tracker, replayed in the dashboard, and
live and replay screenshots compared with SSIM at the same moments (`make fidelity`)."""
