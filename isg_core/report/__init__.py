"""Presenting results: tables and figures written with their command, unit labels, generated
findings, the notebooks' opening and closing text, the notebook runner, the static site and the
architecture diagrams."""
