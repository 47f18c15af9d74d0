"""Output formats, one module each: the terminal table, CSV, Markdown, JSON and HTML."""
