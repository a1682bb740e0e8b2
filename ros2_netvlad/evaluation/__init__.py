"""Scoring place recognition: metrics (Recall@N, precision-recall), offline evaluation of a query
set against a map (``offline``) and the reports (JSON, Markdown, plots). Imports sources, model
and maps."""
