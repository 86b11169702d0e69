"""Drift measured while serving (sliding windows against each model's reference profile)
and opt-in payload logging; fed by the data plane's observers, off the request path."""
