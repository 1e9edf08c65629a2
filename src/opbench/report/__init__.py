"""Presentation only: tables (and, later, plots and HTML) built from results. Nothing here measures."""
