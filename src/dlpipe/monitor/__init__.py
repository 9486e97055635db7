"""Monitoring: the prediction store the server writes (store.py, recorder.py), the drift tests
(drift.py), data-quality checks (quality.py), live and estimated performance (performance.py),
windows and alerts (report.py) and the dashboard (dashboard.py)."""
