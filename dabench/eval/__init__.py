"""Evaluation: alignment protocols (``align``), suites declared as YAML (``suites``), the prediction
cache (``cache``) and the suite runner (``runner.run_suite`` / ``runner.evaluate_dataset``).

Import the submodules directly; this package import stays light (no torch)."""
