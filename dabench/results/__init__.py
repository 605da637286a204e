"""Results store, tables, paper tables and regression reports (see docs/architecture.md).

- ``store``: versioned JSON records (``write_record``, ``load_records``, ``records_dataframe``).
- ``published``: the paper's numbers from ``dabench/configs/published/*.yaml`` (data with sources).
- ``tables``: comparison tables (Markdown / LaTeX / CSV / HTML) with best/second marking.
- ``paper`` + ``figures``: ``dabench paper`` (every paper table, bar charts, scatter, qualitative grid).
- ``regress``: direction-aware baseline comparison for CI (``dabench regress``); ``ci``: the CI run.
"""
