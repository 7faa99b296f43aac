"""Health scoring: profiles, signal scorers, the composite score and its changes."""
