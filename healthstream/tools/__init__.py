"""Offline tools over files of events, no broker: replay, explain, backtest, calibrate, reports."""
