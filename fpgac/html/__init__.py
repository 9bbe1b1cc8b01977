"""Self-contained HTML reports (inline SVG charts, no script) of a build folder and of a sweep."""
