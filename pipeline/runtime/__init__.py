"""The process around the jobs: what it needs from its dependencies beyond their public APIs (compat)."""
