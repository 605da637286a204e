"""Evaluation: alignment protocols (``align``), suites declared as YAML (``suites``), the prediction
cache (``cache``) and the suite run: ``runner`` (``run_suite``, the depth task), ``plan`` (which
datasets), ``models`` (which models, their record facts), ``loop`` (``evaluate_dataset``: one dataset
through one model), ``scoring`` (``score_sample``: one sample), ``records`` (records, CSVs, manifest);
the DA-2K task in ``ordinal``.

Import the submodules directly; this package import stays light (no torch)."""
