"""Results store, tables, paper tables and regression reports (see docs/architecture.md)."""
